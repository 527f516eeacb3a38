package bolt

import (
	"bytes"
	"encoding/binary"
	"fmt"

	bbolt "go.etcd.io/bbolt"
)

// layoutVersion is the version of the file's layout this code writes.
// Version 1 (no meta bucket) kept events by id: bEvents1 (id → record
// JSON), bEvState1 (id → state), bDecisions and bApplied (id \0 item), and
// its log, dedup and unmatched/failed index entries named the event by
// id. Version 2 keeps them by record sequence (evref.go).
const layoutVersion = 2

// The buckets of layout 1 that layout 2 does not have.
var (
	bEvents1  = []byte("events")
	bEvState1 = []byte("event_state")
)

var layoutKey = []byte("layout")

// migrate brings a file of layout 1 to layout 2 inside tx (the Open
// transaction, so a crash in the middle leaves the file as it was), and
// stamps a new file with the current layout. A file of a newer layout is
// refused rather than misread.
func migrate(tx *bbolt.Tx) error {
	meta := tx.Bucket(bMeta)
	if v := meta.Get(layoutKey); len(v) == 8 {
		if got := binary.BigEndian.Uint64(v); got > layoutVersion {
			return fmt.Errorf("the file has layout %d; this version reads up to %d", got, layoutVersion)
		}
		if binary.BigEndian.Uint64(v) == layoutVersion {
			return nil
		}
	}
	if tx.Bucket(bEvents1) != nil {
		if err := migrate1to2(tx); err != nil {
			return err
		}
	}
	return meta.Put(layoutKey, u64(layoutVersion))
}

// migrate1to2 rewrites the event buckets of layout 1. An event's record
// sequence is the log sequence its state holds (the sequence of its
// latest entry: unique, since each is handed out once). Entries that name
// an event without a record are dropped, as reading them would fail;
// decisions and markers of such events stay where they are, kept by id.
func migrate1to2(tx *bbolt.Tx) error {
	events, states := tx.Bucket(bEvents1), tx.Bucket(bEvState1)
	evData, dedup, lb := tx.Bucket(bEvData), tx.Bucket(bDedup), tx.Bucket(bLog)
	rseqs := map[string]uint64{}
	type kv struct{ k, v []byte }
	var recs []kv
	if err := events.ForEach(func(k, v []byte) error {
		recs = append(recs, kv{bytes.Clone(k), bytes.Clone(v)})
		return nil
	}); err != nil {
		return err
	}
	for _, r := range recs {
		var st []byte
		if states != nil {
			st = bytes.Clone(states.Get(r.k))
		}
		var rseq uint64
		if len(st) >= 8 {
			rseq = binary.BigEndian.Uint64(st)
		} else {
			// A record without a state: layout 1 wrote both together,
			// so this is damage; keep the record, as waiting.
			var err error
			if rseq, err = lb.NextSequence(); err != nil {
				return err
			}
			st = u64(rseq)
		}
		rseqs[string(r.k)] = rseq
		if err := evData.Put(evKey(rseq, kindRecord, ""), r.v); err != nil {
			return err
		}
		if err := evData.Put(evKey(rseq, kindState, ""), st); err != nil {
			return err
		}
		if v := dedup.Get(r.k); len(v) >= 8 {
			if err := dedup.Put(r.k, dedupValue(binary.BigEndian.Uint64(v[:8]), rseq)); err != nil {
				return err
			}
		}
	}
	// The log and the indexes named the event by id.
	rename := func(b *bbolt.Bucket) error {
		var all []kv
		if err := b.ForEach(func(k, v []byte) error {
			all = append(all, kv{bytes.Clone(k), bytes.Clone(v)})
			return nil
		}); err != nil {
			return err
		}
		for _, e := range all {
			rseq, ok := rseqs[string(e.v)]
			if !ok {
				if err := b.Delete(e.k); err != nil {
					return err
				}
				continue
			}
			if err := b.Put(e.k, u64(rseq)); err != nil {
				return err
			}
		}
		return nil
	}
	for _, name := range [][]byte{bLog, bUnmatched, bFailed} {
		if err := rename(tx.Bucket(name)); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	// Decisions and markers of events with a record join the record.
	for _, p := range []struct {
		name []byte
		kind byte
	}{{bDecisions, kindDecisions}, {bApplied, kindApplied}} {
		b := tx.Bucket(p.name)
		var moved []kv
		if err := b.ForEach(func(k, v []byte) error {
			moved = append(moved, kv{bytes.Clone(k), bytes.Clone(v)})
			return nil
		}); err != nil {
			return err
		}
		for _, e := range moved {
			i := bytes.IndexByte(e.k, sep)
			if i < 0 {
				continue
			}
			rseq, ok := rseqs[string(e.k[:i])]
			if !ok {
				continue
			}
			v := e.v
			if v == nil {
				v = []byte{}
			}
			if err := evData.Put(evKey(rseq, p.kind, string(e.k[i+1:])), v); err != nil {
				return err
			}
			if err := b.Delete(e.k); err != nil {
				return err
			}
		}
	}
	if err := tx.DeleteBucket(bEvents1); err != nil {
		return err
	}
	if states != nil {
		return tx.DeleteBucket(bEvState1)
	}
	return nil
}
