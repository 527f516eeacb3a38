package bolt

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	bbolt "go.etcd.io/bbolt"

	"github.com/stagegate/stagegate/store"
)

// Timelines (layout 3). The entries of all items are one log, numbered
// store-wide in the order they were written, each pointing back at the
// previous entry of its item:
//
//	bTimelineEntry: u64(n) → u64(n of the item's previous entry, 0 for its first) + entry JSON
//	bTimelineHead:  item id → u64(n of the item's newest entry)
//	bTimelineID:    item id \0 entry id → {1}   the id index
//
// So a move appends at the end of one bucket (its commit shares that page
// with the other moves of its batch) and rewrites a head of a few bytes,
// many heads to a page, instead of dirtying a page of its own item's entries
// per move (layout 2 kept each item's entries together: one page per moved
// item per commit, two thirds of what an applied event wrote). Reading a
// timeline follows the chain back from the head, one lookup per entry.
//
// The entry of a move that applies an event is not in the id index (the
// index's keys of a busy item would fill a page of their own again): the
// event's applied marker, written in the same transaction, keeps the event
// from moving the item twice, so that entry is written once; its id is the
// engine's "ev:" + event id, which nothing appends otherwise (the store
// contract allows this, see store.Store.AppendTimeline). The entries of
// AppendTimeline, CreateItem, UpdateItem, manual moves and of an event that
// moves nothing (chain stops, action entries) are indexed and written at
// most once per id.

// indexedMark is the value of a bTimelineID key.
var indexedMark = []byte{1}

// timelineIDKey is the bTimelineID key of entry id of item.
func timelineIDKey(item, id string) []byte {
	b := make([]byte, 0, len(item)+1+len(id))
	return append(append(append(b, item...), sep), id...)
}

// hasEntry reports whether item's timeline has an indexed entry with id
// entryID.
func hasEntry(tx *bbolt.Tx, item, entryID string) bool {
	return tx.Bucket(bTimelineID).Get(timelineIDKey(item, entryID)) != nil
}

// appendEntry adds e to its item's timeline unless the item has an entry
// with e.ID; it reports whether it wrote.
func appendEntry(tx *bbolt.Tx, e store.TimelineEntry) (bool, error) {
	data, err := json.Marshal(e)
	if err != nil {
		return false, err
	}
	return appendEntryJSON(tx, e.ItemID, e.ID, data)
}

// appendEntryJSON is appendEntry with the entry encoded already.
func appendEntryJSON(tx *bbolt.Tx, itemID, entryID string, data []byte) (bool, error) {
	ids := tx.Bucket(bTimelineID)
	idKey := timelineIDKey(itemID, entryID)
	if ids.Get(idKey) != nil {
		return false, nil
	}
	if err := pushEntry(tx, itemID, data); err != nil {
		return false, err
	}
	return true, ids.Put(idKey, indexedMark)
}

// pushEntry appends the encoded entry data to item's chain, without an id
// index entry.
func pushEntry(tx *bbolt.Tx, item string, data []byte) error {
	entries, heads := tx.Bucket(bTimelineEntry), tx.Bucket(bTimelineHead)
	n, err := entries.NextSequence()
	if err != nil {
		return err
	}
	v := make([]byte, 8, 8+len(data))
	if prev := heads.Get([]byte(item)); len(prev) == 8 {
		copy(v, prev)
	}
	if err := entries.Put(u64(n), append(v, data...)); err != nil {
		return err
	}
	return heads.Put([]byte(item), u64(n))
}

// AppendTimeline adds e to the timeline of item e.ItemID, which must exist;
// an entry with an ID the item already has is ignored.
func (s *Store) AppendTimeline(ctx context.Context, e store.TimelineEntry) error {
	if e.ItemID == "" || e.ID == "" {
		return errors.New("bolt: append timeline: item id and entry id are required")
	}
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		if tx.Bucket(bItems).Get([]byte(e.ItemID)) == nil {
			return clean(store.ErrNotFound)
		}
		_, err := appendEntry(tx, e)
		return err
	})
	if err != nil {
		return fmt.Errorf("bolt: append timeline %s: %w", e.ItemID, err)
	}
	return nil
}

// Timeline returns the entries of an item, oldest first.
func (s *Store) Timeline(ctx context.Context, itemID string) ([]store.TimelineEntry, error) {
	var out []store.TimelineEntry
	err := s.view(func(tx *bbolt.Tx) error {
		if tx.Bucket(bItems).Get([]byte(itemID)) == nil {
			return store.ErrNotFound
		}
		entries := tx.Bucket(bTimelineEntry)
		var n uint64
		if v := tx.Bucket(bTimelineHead).Get([]byte(itemID)); len(v) == 8 {
			n = binary.BigEndian.Uint64(v)
		}
		for n != 0 {
			v := entries.Get(u64(n))
			if len(v) < 8 {
				return fmt.Errorf("entry %d: missing or corrupt", n)
			}
			prev := binary.BigEndian.Uint64(v)
			if prev >= n { // entries point back only; anything else would loop
				return fmt.Errorf("entry %d: points at %d", n, prev)
			}
			var e store.TimelineEntry
			if err := json.Unmarshal(v[8:], &e); err != nil {
				return fmt.Errorf("entry %d: %w", n, err)
			}
			out = append(out, e)
			n = prev
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bolt: timeline %s: %w", itemID, err)
	}
	slices.Reverse(out)
	return out, nil
}
