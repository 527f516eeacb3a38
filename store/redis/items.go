package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/stagegate/stagegate/store"
)

// CreateItem stores it with version 1, indexes it and adds entry to its
// timeline, in one script. If the item exists it is returned unchanged with
// created false. Empty CreatedAt/UpdatedAt default to now; an entry without
// an id gets "created".
func (s *Store) CreateItem(ctx context.Context, it store.Item, entry store.TimelineEntry) (store.Item, bool, error) {
	defer s.hold()()
	if it.ID == "" {
		return store.Item{}, false, errors.New("redis: create item: item has no id")
	}
	it.Version = 1
	if it.CreatedAt.IsZero() {
		it.CreatedAt = s.now()
	}
	if it.UpdatedAt.IsZero() {
		it.UpdatedAt = it.CreatedAt
	}
	entry = entryDefaults(entry, it.ID, it.CreatedAt, "created")
	if entry.Kind == "" {
		entry.Kind = store.EntryCreated
	}
	fields, err := itemFields(it)
	if err != nil {
		return store.Item{}, false, fmt.Errorf("redis: create item %s: %w", it.ID, err)
	}
	entryJSON, err := json.Marshal(entry)
	if err != nil {
		return store.Item{}, false, fmt.Errorf("redis: create item %s: %w", it.ID, err)
	}
	keys := []string{
		s.key("item", it.ID), s.key("timeline", it.ID), s.key("timeline-ids", it.ID),
		s.key("items"), s.key("items", "pipeline", it.Pipeline), s.stageKey(it.Pipeline, it.Stage),
		s.key("items", "contact", it.ContactID),
	}
	args := append([]any{it.ID, score(it.CreatedAt), entry.ID, entryJSON, flag(it.ContactID != "")}, fields...)
	res, err := createItemScript.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return store.Item{}, false, wrap("create item", it.ID, err)
	}
	if len(res) != 2 {
		return store.Item{}, false, fmt.Errorf("redis: create item %s: unexpected reply %v", it.ID, res)
	}
	h, err := flatMap(res[1])
	if err != nil {
		return store.Item{}, false, fmt.Errorf("redis: create item %s: %w", it.ID, err)
	}
	got, err := decodeItem(h)
	if err != nil {
		return store.Item{}, false, fmt.Errorf("redis: create item %s: %w", it.ID, err)
	}
	created, _ := res[0].(int64)
	return got, created == 1, nil
}

// GetItem returns an item by id.
func (s *Store) GetItem(ctx context.Context, id string) (store.Item, error) {
	h, err := s.rdb.HGetAll(ctx, s.key("item", id)).Result()
	if err != nil {
		return store.Item{}, wrap("get item", id, err)
	}
	if len(h) == 0 {
		return store.Item{}, fmt.Errorf("redis: get item %s: %w", id, store.ErrNotFound)
	}
	it, err := decodeItem(h)
	if err != nil {
		return store.Item{}, fmt.Errorf("redis: get item %s: %w", id, err)
	}
	return it, nil
}

// ListItems returns items matching f, oldest first (by CreatedAt, then id);
// Limit 0 means 100. It reads the narrowest index for f — pipeline and
// stage, contact, pipeline, or all items — page by page, and checks the
// other criteria on the items themselves.
func (s *Store) ListItems(ctx context.Context, f store.ItemFilter) ([]store.Item, error) {
	limit := f.PageSize()
	var index string
	exact := false // the index alone decides membership
	switch {
	case f.Pipeline != "" && f.Stage != "":
		index, exact = s.stageKey(f.Pipeline, f.Stage), f.ContactID == ""
	case f.ContactID != "":
		index, exact = s.key("items", "contact", f.ContactID), f.Pipeline == "" && f.Stage == ""
	case f.Pipeline != "":
		index, exact = s.key("items", "pipeline", f.Pipeline), true
	default:
		index, exact = s.key("items"), f.Stage == ""
	}
	if f.Responsible != "" || !f.UpdatedSince.IsZero() {
		exact = false
	}
	first := int64(0)
	var afterScore string
	if f.After.ID != "" {
		// Start at the first member scored like the cursor; those up to
		// the cursor's id are skipped below.
		afterScore = score(f.After.CreatedAt)
		n, err := s.rdb.ZCount(ctx, index, "-inf", "("+afterScore).Result()
		if err != nil {
			return nil, wrap("list items", "", err)
		}
		first, exact = n, false
	}
	page := int64(limit)
	if !exact {
		page = max(page, 256)
	}
	items := make([]store.Item, 0, min(limit, 256))
	for start := first; len(items) < limit; start += page {
		ids, err := s.rdb.ZRange(ctx, index, start, start+page-1).Result()
		if err != nil {
			return nil, wrap("list items", "", err)
		}
		if len(ids) == 0 {
			break
		}
		cmds := make([]*redis.MapStringStringCmd, len(ids))
		if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range ids {
				cmds[i] = p.HGetAll(ctx, s.key("item", id))
			}
			return nil
		}); err != nil {
			return nil, wrap("list items", "", err)
		}
		for _, c := range cmds {
			if len(c.Val()) == 0 {
				continue // index read before a concurrent change; not an item
			}
			it, err := decodeItem(c.Val())
			if err != nil {
				return nil, fmt.Errorf("redis: list items: %w", err)
			}
			if afterScore != "" && score(it.CreatedAt) == afterScore && it.ID <= f.After.ID {
				continue
			}
			if f.Matches(it) && len(items) < limit {
				items = append(items, it)
			}
		}
		if int64(len(ids)) < page {
			break
		}
	}
	return items, nil
}
