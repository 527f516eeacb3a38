package bolt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	bbolt "go.etcd.io/bbolt"
)

// layoutVersion is the version of the file's layout this code writes.
// Version 1 (no meta bucket) kept events by id: bEvents1 (id → record
// JSON), bEvState1 (id → state), bDecisions and bApplied (id \0 item), and
// its log, dedup and unmatched/failed index entries named the event by
// id; each item's timeline was a bucket of its own in bTimelines1, and each
// list one in bLists1. Version 2 keeps events by record sequence
// (evref.go), all timelines in one bucket (bTimeline) and all lists in one
// (bList).
const layoutVersion = 2

// The buckets of layout 1 that layout 2 does not have.
var (
	bEvents1    = []byte("events")
	bEvState1   = []byte("event_state")
	bTimelines1 = []byte("timelines")
	bLists1     = []byte("lists")
)

var layoutKey = []byte("layout")

// migrate brings a file of layout 1 to layout 2 inside tx (the Open
// transaction, so a crash in the middle leaves the file as it was), and
// stamps a new file with the current layout. A file of a newer layout is
// refused rather than misread. It returns how many events it rewrote.
func migrate(tx *bbolt.Tx) (int, error) {
	meta := tx.Bucket(bMeta)
	if v := meta.Get(layoutKey); len(v) == 8 {
		if got := binary.BigEndian.Uint64(v); got > layoutVersion {
			return 0, fmt.Errorf("the file has layout %d; this version reads up to %d", got, layoutVersion)
		}
		if binary.BigEndian.Uint64(v) == layoutVersion {
			return 0, nil
		}
	}
	n := 0
	if tx.Bucket(bEvents1) != nil {
		var err error
		if n, err = migrate1to2(tx); err != nil {
			return 0, err
		}
	}
	for _, f := range [][2][]byte{{bTimelines1, bTimeline}, {bLists1, bList}} {
		if tx.Bucket(f[0]) != nil {
			if err := flatten(tx, f[0], f[1]); err != nil {
				return 0, fmt.Errorf("%s: %w", f[0], err)
			}
		}
	}
	return n, meta.Put(layoutKey, u64(layoutVersion))
}

// migrate1to2 rewrites the event buckets of layout 1. An event's record
// sequence is the log sequence its state holds (the sequence of its
// latest entry: unique, since each is handed out once). Entries that name
// an event without a record are dropped, as reading them would fail;
// decisions and markers of such events stay where they are, kept by id.
//
// Everything bound for bEvData is collected first and put in key order:
// bbolt splits nodes only at commit, so keys put in random order into one
// transaction each copy the part of a growing node behind them (100,000
// events took a minute that way; in order, about two seconds).
func migrate1to2(tx *bbolt.Tx) (int, error) {
	events, states := tx.Bucket(bEvents1), tx.Bucket(bEvState1)
	dedup, lb := tx.Bucket(bDedup), tx.Bucket(bLog)
	type kv struct{ k, v []byte }
	var out []kv
	rseqs := map[string]uint64{}
	c := events.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		var st []byte
		if states != nil {
			st = bytes.Clone(states.Get(k))
		}
		var rseq uint64
		if len(st) >= 8 {
			rseq = binary.BigEndian.Uint64(st)
		} else {
			// A record without a state: layout 1 wrote both together,
			// so this is damage; keep the record, as waiting.
			var err error
			if rseq, err = lb.NextSequence(); err != nil {
				return 0, err
			}
			st = u64(rseq)
		}
		rseqs[string(k)] = rseq
		out = append(out, kv{evKey(rseq, kindRecord, ""), bytes.Clone(v)}, kv{evKey(rseq, kindState, ""), st})
		// An existing key, in key order: no node grows.
		if d := dedup.Get(k); len(d) >= 8 {
			if err := dedup.Put(bytes.Clone(k), dedupValue(binary.BigEndian.Uint64(d[:8]), rseq)); err != nil {
				return 0, err
			}
		}
	}
	// The log and the indexes named the event by id.
	for _, name := range [][]byte{bLog, bUnmatched, bFailed} {
		b := tx.Bucket(name)
		var all []kv
		if err := b.ForEach(func(k, v []byte) error {
			all = append(all, kv{bytes.Clone(k), bytes.Clone(v)})
			return nil
		}); err != nil {
			return 0, err
		}
		for _, e := range all {
			var err error
			if rseq, ok := rseqs[string(e.v)]; ok {
				err = b.Put(e.k, u64(rseq))
			} else {
				err = b.Delete(e.k)
			}
			if err != nil {
				return 0, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	// Decisions and markers of events with a record join the record.
	for _, p := range []struct {
		name []byte
		kind byte
	}{{bDecisions, kindDecisions}, {bApplied, kindApplied}} {
		b := tx.Bucket(p.name)
		var moved [][]byte
		if err := b.ForEach(func(k, v []byte) error {
			i := bytes.IndexByte(k, sep)
			if i < 0 {
				return nil
			}
			if rseq, ok := rseqs[string(k[:i])]; ok {
				moved = append(moved, bytes.Clone(k))
				out = append(out, kv{evKey(rseq, p.kind, string(k[i+1:])), append([]byte{}, v...)})
			}
			return nil
		}); err != nil {
			return 0, err
		}
		for _, k := range moved {
			if err := b.Delete(k); err != nil {
				return 0, err
			}
		}
	}
	slices.SortFunc(out, func(a, b kv) int { return bytes.Compare(a.k, b.k) })
	evData := tx.Bucket(bEvData)
	for _, e := range out {
		if err := evData.Put(e.k, e.v); err != nil {
			return 0, err
		}
	}
	if err := tx.DeleteBucket(bEvents1); err != nil {
		return 0, err
	}
	if states != nil {
		if err := tx.DeleteBucket(bEvState1); err != nil {
			return 0, err
		}
	}
	return len(rseqs), nil
}

// flatten moves the nested buckets of the layout-1 bucket old into the
// flat bucket flat: key k of nested bucket b becomes b \0 k, the form of
// bTimeline and bList. Both cursors run in key order, so the puts append.
func flatten(tx *bbolt.Tx, old, flat []byte) error {
	ob, fb := tx.Bucket(old), tx.Bucket(flat)
	c := ob.Cursor()
	for name, v := c.First(); name != nil; name, v = c.Next() {
		if v != nil {
			continue // not a bucket
		}
		prefix := append(bytes.Clone(name), sep)
		if err := ob.Bucket(name).ForEach(func(k, v []byte) error {
			return fb.Put(append(bytes.Clone(prefix), k...), bytes.Clone(v))
		}); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return tx.DeleteBucket(old)
}
