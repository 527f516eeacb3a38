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
// id; each item's timeline was a bucket of its own in bTimelines1. Version
// 2 keeps events by record sequence (evref.go) and all timelines in one
// bucket (bTimeline).
const layoutVersion = 2

// The buckets of layout 1 that layout 2 does not have.
var (
	bEvents1    = []byte("events")
	bEvState1   = []byte("event_state")
	bTimelines1 = []byte("timelines")
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
	if tx.Bucket(bTimelines1) != nil {
		if err := flattenTimelines(tx); err != nil {
			return 0, fmt.Errorf("timelines: %w", err)
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

// flattenTimelines moves the item buckets of bTimelines1 into bTimeline,
// in key order (an item's bucket lists its 'i' keys before its 's' keys,
// as bTimeline does under the item's prefix).
func flattenTimelines(tx *bbolt.Tx) error {
	old, flat := tx.Bucket(bTimelines1), tx.Bucket(bTimeline)
	c := old.Cursor()
	for item, v := c.First(); item != nil; item, v = c.Next() {
		if v != nil {
			continue // not a bucket
		}
		tb := old.Bucket(item)
		if err := tb.ForEach(func(k, v []byte) error {
			if len(k) == 0 || (k[0] != tlEntryID && k[0] != tlEntry) {
				return nil
			}
			return flat.Put(timelineKey(string(item), k[0], bytes.Clone(k[1:])), bytes.Clone(v))
		}); err != nil {
			return fmt.Errorf("item %s: %w", item, err)
		}
	}
	return tx.DeleteBucket(bTimelines1)
}
