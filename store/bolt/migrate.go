package bolt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	bbolt "go.etcd.io/bbolt"
)

// layoutVersion is the version of the file's layout this code writes.
//
// Version 1 (no meta bucket) kept events by id: bEvents1 (id → record
// JSON), bEvState1 (id → state), bDecisions and bApplied (id \0 item); its
// log (bLog1) and unmatched/failed indexes (bUnmatched1, bFailed1) named
// the event by id, and its dedup values were the expiry alone. Each item's
// timeline was a bucket of its own in bTimelines1, each list one in
// bLists1.
//
// Version 2 keeps events by record sequence (evref.go), the log and the
// indexes naming that sequence, all timelines in one bucket (bTimeline2:
// item id \0 's' u64(n) → entry JSON, item id \0 'i' entry id → u64(n),
// n counting the item's entries) and all lists in one (bList).
//
// Version 3 keeps the timelines as one log of entries chained per item
// (timeline.go).
const layoutVersion = 3

// bTimeline2 is layout 2's timeline bucket, drained by the upgrade.
var bTimeline2 = []byte("timeline")

// The buckets of layout 1 that layout 2 does not have.
var (
	bEvents1    = []byte("events")
	bEvState1   = []byte("event_state")
	bLog1       = []byte("log")
	bUnmatched1 = []byte("unmatched")
	bFailed1    = []byte("failed")
	bTimelines1 = []byte("timelines")
	bLists1     = []byte("lists")
)

var layoutKey = []byte("layout")

// upgradeChunk bounds what one upgrade transaction moves (entries, events
// or nested buckets), so an upgrade of any size needs the memory of one
// chunk, not of the whole file. A variable for tests.
var upgradeChunk = 20000

// checkLayout reports whether the file must be upgraded, and refuses a
// file of a newer layout rather than misread it. A new file is stamped
// with the current layout.
func checkLayout(tx *bbolt.Tx) (bool, error) {
	meta := tx.Bucket(bMeta)
	if v := meta.Get(layoutKey); len(v) == 8 {
		got := binary.BigEndian.Uint64(v)
		if got > layoutVersion {
			return false, fmt.Errorf("the file has layout %d; this version reads up to %d", got, layoutVersion)
		}
		if got == layoutVersion {
			return false, nil
		}
	}
	for _, b := range [][]byte{bEvents1, bLog1, bUnmatched1, bFailed1, bTimelines1, bLists1, bTimeline2} {
		if tx.Bucket(b) != nil {
			return true, nil
		}
	}
	return false, meta.Put(layoutKey, u64(layoutVersion))
}

// upgradeStep moves one chunk of a layout-1 or layout-2 file towards the
// current layout in tx and reports whether the upgrade is complete (then
// the file is stamped) and how many events and timeline entries it moved. Every step leaves the
// file consistent for the next one: what it moved is deleted from the
// earlier layout's buckets in the same
// transaction, so a crash between steps resumes where it stopped on the
// next Open (the gateway serves nothing until the upgrade is complete).
//
// The order matters: the log and the indexes are converted first, while
// the layout-1 state of every event (its record sequence: the log
// sequence of its latest entry, unique since each is handed out once) is
// still there to look up; then the events; then the timelines and lists
// into their layout-2 buckets; last the layout-2 timelines into layout 3's.
func upgradeStep(tx *bbolt.Tx) (done bool, moved upgraded, err error) {
	for _, m := range [][2][]byte{{bLog1, bLog}, {bUnmatched1, bUnmatched}, {bFailed1, bFailed}} {
		if tx.Bucket(m[0]) != nil {
			return false, moved, convertIndex(tx, m[0], m[1])
		}
	}
	if tx.Bucket(bEvents1) != nil {
		moved.events, err = moveEvents(tx)
		return false, moved, err
	}
	for _, f := range [][2][]byte{{bTimelines1, bTimeline2}, {bLists1, bList}} {
		if tx.Bucket(f[0]) != nil {
			if _, err := tx.CreateBucketIfNotExists(f[1]); err != nil {
				return false, moved, err
			}
			return false, moved, flatten(tx, f[0], f[1])
		}
	}
	if tx.Bucket(bTimeline2) != nil {
		moved.entries, err = chainTimelines(tx)
		return false, moved, err
	}
	return true, moved, tx.Bucket(bMeta).Put(layoutKey, u64(layoutVersion))
}

// upgraded counts what upgrade steps moved, for the log.
type upgraded struct{ events, entries int }

// stateSeq returns the record sequence of a layout-1 event: the sequence
// its state holds, 0 if it has none.
func stateSeq(tx *bbolt.Tx, id []byte) uint64 {
	states := tx.Bucket(bEvState1)
	if states == nil {
		return 0
	}
	if st := states.Get(id); len(st) >= 8 {
		return binary.BigEndian.Uint64(st)
	}
	return 0
}

// kv is a key and its value, copied out of a transaction's pages.
type kv struct{ k, v []byte }

// headChunk copies the first upgradeChunk pairs of b, to move in one step.
func headChunk(b *bbolt.Bucket) []kv {
	var chunk []kv
	c := b.Cursor()
	for k, v := c.First(); k != nil && len(chunk) < upgradeChunk; k, v = c.Next() {
		chunk = append(chunk, kv{bytes.Clone(k), bytes.Clone(v)})
	}
	return chunk
}

// convertIndex moves up to upgradeChunk entries (seq or time key → event
// id) from the layout-1 bucket old to new (same key → u64(record
// sequence)); entries naming an event without a state are dropped, as
// reading them would fail. The bucket's sequence goes along.
func convertIndex(tx *bbolt.Tx, old, new []byte) error {
	ob, nb := tx.Bucket(old), tx.Bucket(new)
	if err := nb.SetSequence(max(nb.Sequence(), ob.Sequence())); err != nil {
		return err
	}
	chunk := headChunk(ob)
	if len(chunk) == 0 {
		return tx.DeleteBucket(old)
	}
	for _, e := range chunk {
		if rseq := stateSeq(tx, e.v); rseq != 0 {
			if err := nb.Put(e.k, u64(rseq)); err != nil {
				return fmt.Errorf("%s: %w", new, err)
			}
		}
		if err := ob.Delete(e.k); err != nil {
			return fmt.Errorf("%s: %w", old, err)
		}
	}
	return nil
}

// moveEvents moves up to upgradeChunk layout-1 events (record, state,
// decisions and applied markers) under their record sequence and gives
// their dedup keys the sequence; decisions and markers of events without
// a record stay where they are, kept by id. It returns how many it moved.
func moveEvents(tx *bbolt.Tx) (int, error) {
	events, states := tx.Bucket(bEvents1), tx.Bucket(bEvState1)
	dedup, evData := tx.Bucket(bDedup), tx.Bucket(bEvData)
	chunk := headChunk(events)
	if len(chunk) == 0 {
		if states != nil {
			if err := tx.DeleteBucket(bEvState1); err != nil {
				return 0, err
			}
		}
		return 0, tx.DeleteBucket(bEvents1)
	}
	// bEvData's keys are put in key order: bbolt splits nodes only at
	// commit, so keys put in random order into one transaction each copy
	// the part of a growing node behind them.
	var out []kv
	for _, e := range chunk {
		var st []byte
		if states != nil {
			st = bytes.Clone(states.Get(e.k))
		}
		var rseq uint64
		if len(st) >= 8 {
			rseq = binary.BigEndian.Uint64(st)
		} else {
			// A record without a state: layout 1 wrote both together,
			// so this is damage; keep the record, as waiting.
			var err error
			if rseq, err = tx.Bucket(bLog).NextSequence(); err != nil {
				return 0, err
			}
			st = u64(rseq)
		}
		out = append(out, kv{evKey(rseq, kindRecord, ""), e.v}, kv{evKey(rseq, kindState, ""), st})
		if d := dedup.Get(e.k); len(d) == 8 {
			if err := dedup.Put(e.k, dedupValue(binary.BigEndian.Uint64(d), rseq)); err != nil {
				return 0, err
			}
		}
		for _, p := range []struct {
			name []byte
			kind byte
		}{{bDecisions, kindDecisions}, {bApplied, kindApplied}} {
			b := tx.Bucket(p.name)
			prefix := key(nil, string(e.k))
			for _, pk := range prefixKeys(b, prefix, 0) {
				v := bytes.Clone(b.Get(pk))
				if v == nil {
					v = []byte{}
				}
				out = append(out, kv{evKey(rseq, p.kind, string(pk[len(prefix):])), v})
				if err := b.Delete(pk); err != nil {
					return 0, err
				}
			}
		}
		if err := events.Delete(e.k); err != nil {
			return 0, err
		}
		if states != nil {
			if err := states.Delete(e.k); err != nil {
				return 0, err
			}
		}
	}
	slices.SortFunc(out, func(a, b kv) int { return bytes.Compare(a.k, b.k) })
	for _, e := range out {
		if err := evData.Put(e.k, e.v); err != nil {
			return 0, err
		}
	}
	return len(chunk), nil
}

// flatten moves up to upgradeChunk nested buckets of the layout-1 bucket
// old into the flat bucket flat: key k of nested bucket b becomes b \0 k,
// the form of bTimeline2 and bList.
func flatten(tx *bbolt.Tx, old, flat []byte) error {
	ob, fb := tx.Bucket(old), tx.Bucket(flat)
	var names [][]byte
	c := ob.Cursor()
	for name, v := c.First(); name != nil && len(names) < upgradeChunk; name, v = c.Next() {
		if v == nil { // a nested bucket
			names = append(names, bytes.Clone(name))
		}
	}
	if len(names) == 0 {
		return tx.DeleteBucket(old)
	}
	for _, name := range names {
		prefix := append(bytes.Clone(name), sep)
		if err := ob.Bucket(name).ForEach(func(k, v []byte) error {
			return fb.Put(append(bytes.Clone(prefix), k...), bytes.Clone(v))
		}); err != nil {
			return fmt.Errorf("%s %s: %w", old, name, err)
		}
		if err := ob.DeleteBucket(name); err != nil {
			return fmt.Errorf("%s %s: %w", old, name, err)
		}
	}
	return nil
}

// chainTimelines moves up to upgradeChunk keys of layout 2's timeline
// bucket into layout 3's (timeline.go), deleting the bucket once it is
// empty, and returns how many entries it moved. The keys come in order, an item's id index before its entries
// and those oldest first, so each item's chain ends in its old order
// however the chunks cut it. Keys of another kind were never read and are
// dropped.
func chainTimelines(tx *bbolt.Tx) (int, error) {
	old := tx.Bucket(bTimeline2)
	chunk := headChunk(old)
	if len(chunk) == 0 {
		return 0, tx.DeleteBucket(bTimeline2)
	}
	ids, entries := tx.Bucket(bTimelineID), 0
	for _, e := range chunk {
		if i := bytes.IndexByte(e.k, sep); i > 0 && i+1 < len(e.k) {
			item, kind, tail := string(e.k[:i]), e.k[i+1], e.k[i+2:]
			var err error
			switch kind {
			case 'i':
				err = ids.Put(timelineIDKey(item, string(tail)), indexedMark)
			case 's':
				err = pushEntry(tx, item, e.v)
				entries++
			}
			if err != nil {
				return 0, fmt.Errorf("timeline of %s: %w", item, err)
			}
		}
		if err := old.Delete(e.k); err != nil {
			return 0, err
		}
	}
	return entries, nil
}
