package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/stagegate/stagegate/store"
)

// Ack acknowledges and deletes the log entry and records the outcome on its
// event, in one script. Acknowledging twice is harmless.
func (s *Store) Ack(ctx context.Context, e store.LogEntry, o store.Outcome) error {
	defer s.hold()()
	now := s.now()
	keys := []string{s.key("log"), s.key("event", e.Event.ID), s.key("unmatched"), s.key("failed")}
	err := ackScript.Run(ctx, s.rdb, keys,
		Group, e.Seq, formatTime(now), flag(o.Unmatched), flag(o.Failed), o.Note,
		e.Event.ID, score(now), UnmatchedKeep).Err()
	return wrap("ack", e.Event.ID, err)
}

// GetEvent returns an accepted event (within the dedup window) and the
// decisions recorded for it, ordered by item id.
func (s *Store) GetEvent(ctx context.Context, id string) (store.EventRecord, []store.ItemDecisions, error) {
	var rec, dec *redis.MapStringStringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		rec = p.HGetAll(ctx, s.key("event", id))
		dec = p.HGetAll(ctx, s.key("decisions", id)) // legacy (markLua)
		return nil
	})
	if err != nil {
		return store.EventRecord{}, nil, wrap("get event", id, err)
	}
	if len(rec.Val()) == 0 {
		return store.EventRecord{}, nil, fmt.Errorf("redis: get event %s: %w", id, store.ErrNotFound)
	}
	r, err := decodeRecord(rec.Val())
	if err != nil {
		return r, nil, fmt.Errorf("redis: get event %s: %w", id, err)
	}
	ds, err := decodeDecisions(recordDecisions(rec.Val(), dec.Val()))
	if err != nil {
		return r, nil, fmt.Errorf("redis: get event %s: %w", id, err)
	}
	return r, ds, nil
}

// recordDecisions returns item id → decisions JSON from the d:<item>
// fields of an event record, completed by the legacy decisions hash for
// the items the record has none for (markLua).
func recordDecisions(rec, legacy map[string]string) map[string]string {
	out := make(map[string]string, len(legacy))
	for k, v := range rec {
		if item, ok := strings.CutPrefix(k, "d:"); ok {
			out[item] = v
		}
	}
	for item, v := range legacy {
		if _, ok := out[item]; !ok {
			out[item] = v
		}
	}
	return out
}

func decodeDecisions(h map[string]string) ([]store.ItemDecisions, error) {
	ds := make([]store.ItemDecisions, 0, len(h))
	for item, data := range h {
		var d store.ItemDecisions
		if err := json.Unmarshal([]byte(data), &d); err != nil {
			return nil, fmt.Errorf("decisions for item %s: %w", item, err)
		}
		ds = append(ds, d)
	}
	slices.SortFunc(ds, func(a, b store.ItemDecisions) int { return strings.Compare(a.ItemID, b.ItemID) })
	return ds, nil
}

// ListUnmatched returns the newest unmatched events, newest first; limit 0
// means 100. Events whose record expired are left out (and forgotten).
func (s *Store) ListUnmatched(ctx context.Context, limit int) ([]store.EventRecord, error) {
	return s.listIndexed(ctx, "unmatched", limit)
}

// listIndexed reads the newest events of an index of acknowledged events
// (unmatched, failed), newest first, forgetting those whose record expired.
func (s *Store) listIndexed(ctx context.Context, index string, limit int) ([]store.EventRecord, error) {
	if limit <= 0 {
		limit = 100
	}
	ids, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: s.key(index), Start: 0, Stop: int64(limit - 1), Rev: true}).Result()
	if err != nil {
		return nil, wrap("list "+index, "", err)
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, s.key("event", id))
		}
		return nil
	})
	if err != nil {
		return nil, wrap("list "+index, "", err)
	}
	recs := make([]store.EventRecord, 0, len(ids))
	var expired []any
	for i, c := range cmds {
		if len(c.Val()) == 0 { // expired with the dedup window
			expired = append(expired, ids[i])
			continue
		}
		r, err := decodeRecord(c.Val())
		if err != nil {
			return nil, fmt.Errorf("redis: list %s: %s: %w", index, ids[i], err)
		}
		recs = append(recs, r)
	}
	if len(expired) > 0 {
		_ = s.rdb.ZRem(ctx, s.key(index), expired...).Err() // best effort
	}
	return recs, nil
}

// RecordDecisions stores d for (eventID, d.ItemID) unless a verdict is
// there already, in the event's record (markLua), so it expires with it.
func (s *Store) RecordDecisions(ctx context.Context, eventID string, d store.ItemDecisions) error {
	defer s.hold()()
	if eventID == "" || d.ItemID == "" {
		return errors.New("redis: record decisions: event id and item id are required")
	}
	data, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("redis: record decisions %s: %w", eventID, err)
	}
	keys := []string{s.key("event", eventID), s.key("decisions", eventID)}
	err = recordDecisionsScript.Run(ctx, s.rdb, keys, d.ItemID, data, s.window.Milliseconds()).Err()
	if errors.Is(err, redis.Nil) {
		err = nil
	}
	return wrap("record decisions", eventID, err)
}

// recordDecisionsScript is RecordDecisions (keepDecisions in markLua).
//
// KEYS: event record, legacy decisions. ARGV: item id, decisions JSON,
// window (ms).
var recordDecisionsScript = redis.NewScript(markLua + `
keepDecisions(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], redis.call('EXISTS', KEYS[1]) == 1, true)
`)
