package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/stagegate/stagegate/store"
)

// index is one secondary-index key of an item.
type index struct {
	bucket []byte
	key    []byte
}

// stageIndex is the pipeline+stage index key of it.
func stageIndex(it store.Item) index {
	return index{bIdxStage, key(itemTail(it), it.Pipeline, it.Stage)}
}

// itemTail orders index entries by creation time, then id.
func itemTail(it store.Item) []byte {
	return append(u64(timeKey(it.CreatedAt)), it.ID...)
}

// indexes lists every index key of it.
func indexes(it store.Item) []index {
	ix := []index{
		{bIdxAll, itemTail(it)},
		{bIdxPipe, key(itemTail(it), it.Pipeline)},
		stageIndex(it),
	}
	if it.ContactID != "" {
		ix = append(ix, index{bIdxContact, key(itemTail(it), it.ContactID)})
	}
	return ix
}

// CreateItem stores it with version 1 and entry as its first timeline
// entry. An existing item with it.ID is returned unchanged, created false.
func (s *Store) CreateItem(ctx context.Context, it store.Item, entry store.TimelineEntry) (store.Item, bool, error) {
	if it.ID == "" {
		return store.Item{}, false, errors.New("bolt: create item: item id is required")
	}
	if existing, err := s.GetItem(ctx, it.ID); err == nil {
		return existing, false, nil // a retry: no write needed
	}
	if it.CreatedAt.IsZero() {
		it.CreatedAt = s.now()
	}
	if it.UpdatedAt.IsZero() {
		it.UpdatedAt = it.CreatedAt
	}
	it.Version = 1
	if entry.ID == "" {
		entry.ID = store.EntryCreated
	}
	if entry.At.IsZero() {
		entry.At = it.CreatedAt
	}
	entry.ItemID = it.ID
	var out store.Item
	var created bool
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		out, created = store.Item{}, false
		items := tx.Bucket(bItems)
		if items.Get([]byte(it.ID)) != nil {
			return getJSON(items, []byte(it.ID), &out)
		}
		if err := putJSON(items, []byte(it.ID), it); err != nil {
			return err
		}
		for _, ix := range indexes(it) {
			if err := tx.Bucket(ix.bucket).Put(ix.key, nil); err != nil {
				return err
			}
		}
		if _, err := appendEntry(tx, entry); err != nil {
			return err
		}
		out, created = it, true
		return nil
	})
	if err != nil {
		return store.Item{}, false, fmt.Errorf("bolt: create item %s: %w", it.ID, err)
	}
	return out, created, nil
}

// GetItem returns the item with the given id.
func (s *Store) GetItem(ctx context.Context, id string) (store.Item, error) {
	var it store.Item
	err := s.view(func(tx *bbolt.Tx) error {
		return getJSON(tx.Bucket(bItems), []byte(id), &it)
	})
	if err != nil {
		return store.Item{}, fmt.Errorf("bolt: get item %s: %w", id, err)
	}
	return it, nil
}

// ListItems returns the items matching f, oldest first. It walks the
// narrowest index f allows (contact, pipeline+stage, pipeline, all) and
// checks the remaining fields on each item.
func (s *Store) ListItems(ctx context.Context, f store.ItemFilter) ([]store.Item, error) {
	limit := f.PageSize()
	var bucket, prefix []byte
	switch {
	case f.ContactID != "":
		bucket, prefix = bIdxContact, key(nil, f.ContactID)
	case f.Pipeline != "" && f.Stage != "":
		bucket, prefix = bIdxStage, key(nil, f.Pipeline, f.Stage)
	case f.Pipeline != "":
		bucket, prefix = bIdxPipe, key(nil, f.Pipeline)
	default:
		bucket = bIdxAll
	}
	var out []store.Item
	err := s.view(func(tx *bbolt.Tx) error {
		items := tx.Bucket(bItems)
		c := tx.Bucket(bucket).Cursor()
		start := prefix
		var after []byte // the cursor's own key: skipped
		if f.After.ID != "" {
			after = append(append(bytes.Clone(prefix), u64(timeKey(f.After.CreatedAt))...), f.After.ID...)
			start = after
		}
		for k, _ := c.Seek(start); k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, _ = c.Next() {
			if len(k) < len(prefix)+8 || (after != nil && bytes.Equal(k, after)) {
				continue
			}
			var it store.Item
			if err := getJSON(items, k[len(prefix)+8:], &it); err != nil {
				return fmt.Errorf("index %q: %w", k, err)
			}
			if f.Matches(it) {
				out = append(out, it)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bolt: list items: %w", err)
	}
	return out, nil
}
