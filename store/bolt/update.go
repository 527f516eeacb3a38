package bolt

import (
	"context"
	"errors"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/stagegate/stagegate/store"
)

// UpdateItem sets fields and the responsible user of an item and appends
// u.Entry, once per entry id, in one transaction.
func (s *Store) UpdateItem(ctx context.Context, u store.ItemUpdate) (store.Item, bool, error) {
	if u.ItemID == "" || u.Entry.ID == "" {
		return store.Item{}, false, errors.New("bolt: update item: item id and entry id are required")
	}
	if u.At.IsZero() {
		u.At = s.now()
	}
	entry := u.Entry
	entry.ItemID = u.ItemID
	if entry.At.IsZero() {
		entry.At = u.At
	}
	var out store.Item
	applied := false
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		out, applied = store.Item{}, false
		items := tx.Bucket(bItems)
		if err := getJSON(items, []byte(u.ItemID), &out); err != nil {
			return clean(err)
		}
		if tb := tx.Bucket(bTimelines).Bucket([]byte(u.ItemID)); tb != nil && tb.Get(append([]byte{'i'}, entry.ID...)) != nil {
			return nil
		}
		if len(u.Fields) > 0 && out.Fields == nil {
			out.Fields = map[string]string{}
		}
		for k, v := range u.Fields {
			out.Fields[k] = v
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
		_, err := appendEntry(tx, entry)
		return err
	})
	if err != nil {
		return store.Item{}, false, fmt.Errorf("bolt: update item %s: %w", u.ItemID, err)
	}
	return out, applied, nil
}
