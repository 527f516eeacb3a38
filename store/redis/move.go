package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/stagegate/stagegate/store"
)

// Move applies req in one script: it refuses with store.ErrAlreadyApplied
// when req.EventID was applied to the item before (checked first, so a
// redelivered event is recognised even after the version moved on), with
// store.ErrNotFound for an unknown item and store.ErrConflict when the
// version is not req.ExpectVersion. Otherwise it bumps the version, sets
// stage, closed and updated_at, moves the item between stage indexes, adds
// req.Entry to the timeline (once per entry id), and for an event stores
// req.Decisions and the applied marker, both kept for the dedup window,
// and adds the req.Outbox entries.
func (s *Store) Move(ctx context.Context, req store.MoveRequest) (store.Item, error) {
	defer s.hold()()
	if req.ItemID == "" || req.To == "" {
		return store.Item{}, errors.New("redis: move: item id and target stage are required")
	}
	if req.At.IsZero() {
		req.At = s.now()
	}
	fallback := "move:" + req.EventID
	if req.EventID == "" {
		fallback = "move:" + randomID()
	}
	entry := entryDefaults(req.Entry, req.ItemID, req.At, fallback)
	if entry.Kind == "" {
		entry.Kind = store.EntryMove
	}
	entryJSON, err := json.Marshal(entry)
	if err != nil {
		return store.Item{}, fmt.Errorf("redis: move %s: %w", req.ItemID, err)
	}
	var decJSON []byte
	if req.Decisions != nil && req.EventID != "" {
		d := *req.Decisions
		if d.ItemID == "" {
			d.ItemID = req.ItemID
		}
		if decJSON, err = json.Marshal(d); err != nil {
			return store.Item{}, fmt.Errorf("redis: move %s: %w", req.ItemID, err)
		}
	}
	outbox, err := outboxArgs(req.Outbox, req.At)
	if err != nil {
		return store.Item{}, fmt.Errorf("redis: move %s: %w", req.ItemID, err)
	}
	keys := []string{
		s.key("item", req.ItemID), s.key("applied", req.EventID), s.key("decisions", req.EventID),
		s.key("timeline", req.ItemID), s.key("timeline-ids", req.ItemID), s.key("event", req.EventID),
	}
	args := append([]any{
		s.prefix, req.ItemID, req.EventID, strconv.FormatInt(req.ExpectVersion, 10),
		req.To, flag(req.Closed), formatTime(req.At), entry.ID, entryJSON, decJSON,
		s.window.Milliseconds(),
	}, outbox...)
	res, err := moveScript.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return store.Item{}, wrap("move", req.ItemID, err)
	}
	status, _ := res[0].(string)
	switch status {
	case "applied":
		return store.Item{}, fmt.Errorf("redis: move %s: event %s: %w", req.ItemID, req.EventID, store.ErrAlreadyApplied)
	case "notfound":
		return store.Item{}, fmt.Errorf("redis: move %s: %w", req.ItemID, store.ErrNotFound)
	case "conflict":
		return store.Item{}, fmt.Errorf("redis: move %s: expected version %d: %w", req.ItemID, req.ExpectVersion, store.ErrConflict)
	case "ok":
	default:
		return store.Item{}, fmt.Errorf("redis: move %s: unexpected reply %v", req.ItemID, res)
	}
	if len(res) != 2 {
		return store.Item{}, fmt.Errorf("redis: move %s: unexpected reply %v", req.ItemID, res)
	}
	h, err := flatMap(res[1])
	if err != nil {
		return store.Item{}, fmt.Errorf("redis: move %s: %w", req.ItemID, err)
	}
	it, err := decodeItem(h)
	if err != nil {
		return store.Item{}, fmt.Errorf("redis: move %s: %w", req.ItemID, err)
	}
	return it, nil
}

// randomID returns 16 random hex digits.
func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// AppendTimeline adds e to the timeline of e.ItemID unless the item has an
// entry with e.ID. It returns store.ErrNotFound for an unknown item.
func (s *Store) AppendTimeline(ctx context.Context, e store.TimelineEntry) error {
	defer s.hold()()
	if e.ItemID == "" || e.ID == "" {
		return errors.New("redis: append timeline: entry id and item id are required")
	}
	if e.At.IsZero() {
		e.At = s.now()
	}
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("redis: append timeline %s: %w", e.ItemID, err)
	}
	keys := []string{s.key("item", e.ItemID), s.key("timeline", e.ItemID), s.key("timeline-ids", e.ItemID)}
	n, err := appendTimelineScript.Run(ctx, s.rdb, keys, e.ID, data).Int()
	if err != nil {
		return wrap("append timeline", e.ItemID, err)
	}
	if n < 0 {
		return fmt.Errorf("redis: append timeline %s: %w", e.ItemID, store.ErrNotFound)
	}
	return nil
}

// Timeline returns an item's entries, oldest first, or store.ErrNotFound
// for an unknown item.
func (s *Store) Timeline(ctx context.Context, itemID string) ([]store.TimelineEntry, error) {
	raw, err := s.rdb.LRange(ctx, s.key("timeline", itemID), 0, -1).Result()
	if err != nil {
		return nil, wrap("timeline", itemID, err)
	}
	if len(raw) == 0 {
		n, err := s.rdb.Exists(ctx, s.key("item", itemID)).Result()
		if err != nil {
			return nil, wrap("timeline", itemID, err)
		}
		if n == 0 {
			return nil, fmt.Errorf("redis: timeline %s: %w", itemID, store.ErrNotFound)
		}
	}
	es := make([]store.TimelineEntry, 0, len(raw))
	for i, r := range raw {
		var e store.TimelineEntry
		if err := json.Unmarshal([]byte(r), &e); err != nil {
			return nil, fmt.Errorf("redis: timeline %s: entry %d: %w", itemID, i, err)
		}
		es = append(es, e)
	}
	return es, nil
}
