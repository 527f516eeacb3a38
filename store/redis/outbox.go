package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stagegate/stagegate/store"
)

// The outbox (see the key layout in the package doc):
//
//	P outbox:<id>          hash: d (the entry's fixed part as JSON), status, due, attempts,
//	                       claim, lease, err, note, updated, done (times in ms since the epoch),
//	                       grp and idx (its stage entry, OutboxEntry.Group, and Index: the
//	                       claim script reads them); a done or skipped entry expires after
//	                       the dedup window
//	P outbox:due           sorted set: pending entries at their due time, running ones at
//	                       their lease end (ms)
//	P outbox:st:<status>   sorted set per status, score = last update (ms)
//	P outbox:item:<item>   sorted set of an item's entries, score = creation (ms)
//	P outbox:grp:<group>   sorted set of a stage entry's pending and running entries,
//	                       score = index: the claim script runs them one at a time
//
// Entries are added by the move script; the scripts below change them. Each
// checks the claim it is given, so a worker whose lease ended cannot
// overwrite what a newer claim did.

var _ store.Outbox = (*Store)(nil)

// outboxFixed is the part of an entry that never changes, stored as JSON.
type outboxFixed struct {
	ID        string          `json:"id"`
	Key       string          `json:"key"`
	ItemID    string          `json:"item_id"`
	Pipeline  string          `json:"pipeline"`
	Stage     string          `json:"stage"`
	Index     int             `json:"index"`
	Type      string          `json:"type"`
	Name      string          `json:"name,omitempty"`
	Payload   json.RawMessage `json:"payload,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
}

// outboxArgs are the move script's arguments for new entries: per entry its
// id, fixed JSON, due (ms), creation time (ms), group and index (OUTBOX_ARGS
// in moveLua).
func outboxArgs(entries []store.OutboxEntry, now time.Time) ([]any, error) {
	args := []any{len(entries)}
	for _, e := range entries {
		if e.ID == "" {
			return nil, errors.New("outbox entry without id")
		}
		if e.CreatedAt.IsZero() {
			e.CreatedAt = now
		}
		if e.Due.IsZero() {
			e.Due = now
		}
		fixed, err := json.Marshal(outboxFixed{
			ID: e.ID, Key: e.Key, ItemID: e.ItemID, Pipeline: e.Pipeline, Stage: e.Stage,
			Index: e.Index, Type: e.Type, Name: e.Name, Payload: e.Payload, CreatedAt: e.CreatedAt,
		})
		if err != nil {
			return nil, err
		}
		args = append(args, e.ID, fixed, e.Due.UnixMilli(), e.CreatedAt.UnixMilli(), e.Group(), e.Index)
	}
	return args, nil
}

// eventOutboxArgs encodes an event's own outbox entries for
// addEventOutbox (eventOutboxLua): the count, then per entry its item and
// the values outboxArgs gives.
func eventOutboxArgs(entries []store.OutboxEntry, now time.Time) ([]any, error) {
	args := []any{len(entries)}
	for _, e := range entries {
		one, err := outboxArgs([]store.OutboxEntry{e}, now)
		if err != nil {
			return nil, err
		}
		args = append(append(args, e.ItemID), one[1:]...)
	}
	return args, nil
}

// decodeOutbox turns an entry hash into an OutboxEntry.
func decodeOutbox(h map[string]string) (store.OutboxEntry, error) {
	var f outboxFixed
	if err := json.Unmarshal([]byte(h["d"]), &f); err != nil {
		return store.OutboxEntry{}, fmt.Errorf("outbox entry: %w", err)
	}
	e := store.OutboxEntry{
		ID: f.ID, Key: f.Key, ItemID: f.ItemID, Pipeline: f.Pipeline, Stage: f.Stage, Index: f.Index,
		Type: f.Type, Name: f.Name, Payload: f.Payload, CreatedAt: f.CreatedAt,
		Status: h["status"], LastError: h["err"], Note: h["note"],
		Due: msTime(h["due"]), LeaseUntil: msTime(h["lease"]), UpdatedAt: msTime(h["updated"]), DoneAt: msTime(h["done"]),
	}
	e.Attempts, _ = strconv.Atoi(h["attempts"])
	e.Claim, _ = strconv.ParseInt(h["claim"], 10, 64)
	return e, nil
}

// msTime parses milliseconds since the epoch; "" and "0" are the zero time.
func msTime(s string) time.Time {
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// ClaimOutbox marks up to max due entries running until now+lease, in one
// script, and returns them, earliest due first, one per stage entry at a
// time (see store.Outbox). Entries written before groups were recorded
// (no grp field) are claimed on their own.
func (s *Store) ClaimOutbox(ctx context.Context, now time.Time, n int, lease time.Duration) ([]store.OutboxEntry, error) {
	defer s.hold()()
	if n <= 0 {
		return nil, nil
	}
	res, err := claimOutboxScript.Run(ctx, s.rdb, []string{s.key("outbox", "due")},
		s.prefix, now.UnixMilli(), n, max(lease.Milliseconds(), 1), 4*n+256).Slice()
	if err != nil {
		return nil, wrap("claim outbox", "", err)
	}
	out := make([]store.OutboxEntry, 0, len(res))
	for _, r := range res {
		h, err := flatMap(r)
		if err != nil {
			return nil, fmt.Errorf("redis: claim outbox: %w", err)
		}
		e, err := decodeOutbox(h)
		if err != nil {
			return nil, fmt.Errorf("redis: claim outbox: %w", err)
		}
		out = append(out, e)
	}
	return out, nil
}

// finishOutbox runs the finish script: status is the new status; retryAt
// is the due time of a pending one.
func (s *Store) finishOutbox(ctx context.Context, op, id string, claim int64, status, note, msg string, retryAt, now time.Time) error {
	defer s.hold()()
	keys := []string{s.key("outbox", id), s.key("outbox", "due")}
	var retry int64
	if !retryAt.IsZero() {
		retry = retryAt.UnixMilli()
	}
	res, err := finishOutboxScript.Run(ctx, s.rdb, keys, s.prefix, id, claim, status, note, msg,
		retry, now.UnixMilli(), s.window.Milliseconds(), now.Add(-s.window).UnixMilli()).StringSlice()
	if err != nil {
		return wrap(op+" outbox", id, err)
	}
	switch res[0] {
	case "ok":
		return nil
	case "notfound":
		return fmt.Errorf("redis: %s outbox %s: %w", op, id, store.ErrNotFound)
	case "conflict":
		return fmt.Errorf("redis: %s outbox %s: %w: entry is %s under claim %s, not running under claim %d",
			op, id, store.ErrConflict, res[1], res[2], claim)
	}
	return fmt.Errorf("redis: %s outbox %s: unexpected reply %v", op, id, res)
}

// CompleteOutbox ends a running entry as done or skipped.
func (s *Store) CompleteOutbox(ctx context.Context, id string, claim int64, status, note string, now time.Time) error {
	if status != store.OutboxDone && status != store.OutboxSkipped {
		return fmt.Errorf("redis: complete outbox %s: status %q is not done or skipped", id, status)
	}
	return s.finishOutbox(ctx, "complete", id, claim, status, note, "", time.Time{}, now)
}

// FailOutbox records a failed attempt: pending again at retryAt, or failed
// for good when retryAt is zero.
func (s *Store) FailOutbox(ctx context.Context, id string, claim int64, msg string, retryAt, now time.Time) error {
	status := store.OutboxPending
	if retryAt.IsZero() {
		status = store.OutboxFailed
	}
	return s.finishOutbox(ctx, "fail", id, claim, status, "", msg, retryAt, now)
}

// RetryOutbox makes a failed entry pending again, due now, attempts reset.
func (s *Store) RetryOutbox(ctx context.Context, id string, now time.Time) (store.OutboxEntry, error) {
	defer s.hold()()
	keys := []string{s.key("outbox", id), s.key("outbox", "due")}
	res, err := retryOutboxScript.Run(ctx, s.rdb, keys, s.prefix, id, now.UnixMilli()).Slice()
	if err != nil {
		return store.OutboxEntry{}, wrap("retry outbox", id, err)
	}
	status, _ := res[0].(string)
	switch status {
	case "notfound":
		return store.OutboxEntry{}, fmt.Errorf("redis: retry outbox %s: %w", id, store.ErrNotFound)
	case "conflict":
		return store.OutboxEntry{}, fmt.Errorf("redis: retry outbox %s: %w: entry is %v, not failed", id, store.ErrConflict, res[1])
	case "ok":
	default:
		return store.OutboxEntry{}, fmt.Errorf("redis: retry outbox %s: unexpected reply %v", id, res)
	}
	h, err := flatMap(res[1])
	if err != nil {
		return store.OutboxEntry{}, fmt.Errorf("redis: retry outbox %s: %w", id, err)
	}
	return decodeOutbox(h)
}

// GetOutbox returns an entry by id.
func (s *Store) GetOutbox(ctx context.Context, id string) (store.OutboxEntry, error) {
	h, err := s.rdb.HGetAll(ctx, s.key("outbox", id)).Result()
	if err != nil {
		return store.OutboxEntry{}, wrap("get outbox", id, err)
	}
	if len(h) == 0 {
		return store.OutboxEntry{}, fmt.Errorf("redis: get outbox %s: %w", id, store.ErrNotFound)
	}
	e, err := decodeOutbox(h)
	if err != nil {
		return store.OutboxEntry{}, fmt.Errorf("redis: get outbox %s: %w", id, err)
	}
	return e, nil
}

// ListOutbox returns entries matching f, most recently updated first (for
// an item filter without a status: most recently created first). It pages
// through the status or item index, reading the entries with a pipeline.
func (s *Store) ListOutbox(ctx context.Context, f store.OutboxFilter) ([]store.OutboxEntry, error) {
	if f.Limit <= 0 {
		f.Limit = defaultReadLimit
	}
	var idx []string
	switch {
	case f.Status != "":
		idx = []string{s.key("outbox", "st", f.Status)}
	case f.ItemID != "":
		idx = []string{s.key("outbox", "item", f.ItemID)}
	default:
		for _, st := range store.OutboxStatuses {
			idx = append(idx, s.key("outbox", "st", st))
		}
	}
	var out []store.OutboxEntry
	for _, k := range idx {
		for start := int64(0); len(out) < f.Limit; start += readPage {
			ids, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: k, Start: start, Stop: start + readPage - 1, Rev: true}).Result()
			if err != nil {
				return nil, wrap("list outbox", "", err)
			}
			if len(ids) == 0 {
				break
			}
			pipe := s.rdb.Pipeline()
			cmds := make([]*redis.MapStringStringCmd, len(ids))
			for i, id := range ids {
				cmds[i] = pipe.HGetAll(ctx, s.key("outbox", id))
			}
			if _, err := pipe.Exec(ctx); err != nil {
				return nil, wrap("list outbox", "", err)
			}
			for _, c := range cmds {
				h := c.Val()
				if len(h) == 0 {
					continue // expired
				}
				e, err := decodeOutbox(h)
				if err != nil {
					return nil, fmt.Errorf("redis: list outbox: %w", err)
				}
				if (f.Status != "" && e.Status != f.Status) || (f.ItemID != "" && e.ItemID != f.ItemID) {
					continue
				}
				if out = append(out, e); len(out) == f.Limit {
					break
				}
			}
		}
	}
	return out, nil
}

// OutboxDepth counts pending and running entries.
func (s *Store) OutboxDepth(ctx context.Context) (int, error) {
	n, err := s.rdb.ZCard(ctx, s.key("outbox", "due")).Result()
	if err != nil {
		return 0, wrap("outbox depth", "", err)
	}
	return int(n), nil
}

// NextOutboxDue returns the earliest due time of a queued entry.
func (s *Store) NextOutboxDue(ctx context.Context) (time.Time, bool, error) {
	zs, err := s.rdb.ZRangeWithScores(ctx, s.key("outbox", "due"), 0, 0).Result()
	if err != nil {
		return time.Time{}, false, wrap("outbox next due", "", err)
	}
	if len(zs) == 0 {
		return time.Time{}, false, nil
	}
	return time.UnixMilli(int64(zs[0].Score)).UTC(), true, nil
}
