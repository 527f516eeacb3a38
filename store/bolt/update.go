package bolt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/stagegate/stagegate/store"
)

// UpdateItem sets and removes fields and sets the responsible user of an
// item, appends u.Entry and u.More and appends u.Events to the log, once
// per entry id, in one transaction.
func (s *Store) UpdateItem(ctx context.Context, u store.ItemUpdate) (store.Item, bool, error) {
	if u.ItemID == "" || u.Entry.ID == "" {
		return store.Item{}, false, errors.New("bolt: update item: item id and entry id are required")
	}
	if u.At.IsZero() {
		u.At = s.now()
	}
	entries := make([]store.TimelineEntry, 0, 1+len(u.More))
	for _, e := range append([]store.TimelineEntry{u.Entry}, u.More...) {
		e.ItemID = u.ItemID
		if e.At.IsZero() {
			e.At = u.At
		}
		entries = append(entries, e)
	}
	// Encoded outside the committer, like Append's records.
	events := make([][]byte, len(u.Events))
	for i := range u.Events {
		data, err := json.Marshal(store.EventRecord{Event: u.Events[i]})
		if err != nil {
			return store.Item{}, false, fmt.Errorf("bolt: update item %s: event %s: %w", u.ItemID, u.Events[i].ID, err)
		}
		events[i] = data
	}
	now := s.now() // dedup windows run on the store's clock, like Append's
	var out store.Item
	applied := false
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		out, applied = store.Item{}, false
		items := tx.Bucket(bItems)
		if err := getJSON(items, []byte(u.ItemID), &out); err != nil {
			return clean(err)
		}
		if hasEntry(tx, u.ItemID, u.Entry.ID) {
			return nil
		}
		if u.ExpectVersion != 0 && out.Version != u.ExpectVersion {
			return clean(store.ErrConflict)
		}
		if len(u.Fields) > 0 && out.Fields == nil {
			out.Fields = map[string]string{}
		}
		for k, v := range u.Fields {
			out.Fields[k] = v
		}
		for _, k := range u.Remove {
			delete(out.Fields, k)
		}
		if len(out.Fields) == 0 {
			out.Fields = nil
		}
		if u.Responsible != "" {
			out.Responsible = u.Responsible
		}
		out.Version++
		out.UpdatedAt = u.At
		if err := putJSON(items, []byte(out.ID), out); err != nil {
			return err
		}
		applied = true
		for _, e := range entries {
			if _, err := appendEntry(tx, e); err != nil {
				return err
			}
		}
		for i := range u.Events {
			if _, err := s.appendTx(tx, u.Events[i].ID, events[i], nil, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return store.Item{}, false, fmt.Errorf("bolt: update item %s: %w", u.ItemID, err)
	}
	return out, applied, nil
}
