package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// maxBlockSlice bounds one blocking XREADGROUP, so that ReadLog notices a
// cancelled context and reclaims stale entries while it waits.
const maxBlockSlice = time.Second

// claimState paces XAUTOCLAIM: one pass over the pending entries list at
// most every few seconds, not on every ReadLog.
type claimState struct {
	mu        sync.Mutex
	every     time.Duration
	next      time.Time // when the next pass may start
	cursor    string    // where the current pass goes on; "" or "0-0" starts over
	pruneNext time.Time // when idle consumers are pruned next
}

// Append records ev in the log atomically with its dedup key, in one
// pipeline with the Appends running at the same time (appender.go). Once sent,
// the write is not abandoned when ctx is cancelled (a client that hangs up
// would only turn a known outcome into an unknown one); ctx's deadline
// still bounds it.
func (s *Store) Append(ctx context.Context, ev *normalize.Event) (store.AppendResult, error) {
	defer s.hold()()
	ctx, cancel := keepDeadline(ctx)
	defer cancel()
	if ev.ID == "" {
		return store.AppendResult{}, errors.New("redis: append: event has no id")
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return store.AppendResult{}, fmt.Errorf("redis: append %s: %w", ev.ID, err)
	}
	keys := []string{s.key("dedup", ev.ID), s.key("event", ev.ID), s.key("log")}
	seq, dup, err := s.groupAppend(ctx, keys, s.window.Milliseconds(), ev.ID, data)
	if dup {
		return store.AppendResult{Duplicate: true}, nil
	}
	if err != nil {
		return store.AppendResult{}, wrap("append", ev.ID, err)
	}
	return store.AppendResult{Seq: seq}, nil
}

// keepDeadline returns a context that ctx's cancellation does not reach but
// that ends at ctx's deadline.
func keepDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	c := context.WithoutCancel(ctx)
	if d, ok := ctx.Deadline(); ok {
		return context.WithDeadline(c, d)
	}
	return c, func() {}
}

// ReadLog hands out log entries to consumer, which must name one live
// process. On its first call for a consumer name it returns the entries that
// name still holds (a process restarted under the same name); then, every
// few seconds, entries that another consumer has held longer than
// ClaimAfter; else new entries, waiting up to block for one.
func (s *Store) ReadLog(ctx context.Context, consumer string, max int, block time.Duration) ([]store.LogEntry, error) {
	if max <= 0 {
		max = 100
	}
	if consumer == "" {
		consumer = Group
	}
	if es, err := s.readOwnPending(ctx, consumer, max); err != nil || len(es) > 0 {
		return es, err
	}
	deadline := time.Now().Add(block)
	for {
		if es, err := s.reclaim(ctx, consumer, max); err != nil || len(es) > 0 {
			return es, err
		}
		wait := min(time.Until(deadline), maxBlockSlice)
		if d, ok := ctx.Deadline(); ok {
			wait = min(wait, time.Until(d)-20*time.Millisecond)
		}
		if wait < time.Millisecond {
			wait = -1 // no BLOCK at all: BLOCK 0 would wait forever
		}
		es, err := s.readGroup(ctx, consumer, ">", max, wait)
		if err != nil || len(es) > 0 {
			return es, err
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("redis: read log: %w", err)
		}
		if !time.Now().Before(deadline) {
			return nil, nil
		}
		if wait < 0 { // the context ends first: sleep it out
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("redis: read log: %w", ctx.Err())
			case <-time.After(time.Until(deadline)):
				return nil, nil
			}
		}
	}
}

// readOwnPending re-reads, once per consumer name and Store, what the
// consumer holds from before, max entries per call.
func (s *Store) readOwnPending(ctx context.Context, consumer string, max int) ([]store.LogEntry, error) {
	s.readMu.Lock()
	from, ok := s.own[consumer]
	s.readMu.Unlock()
	if from == ownDone {
		return nil, nil
	}
	if !ok {
		from = "0"
	}
	es, last, err := s.readGroupLast(ctx, consumer, from, max, -1)
	if err != nil {
		return nil, err
	}
	if len(es) == 0 && last == "" { // all re-read: from now on only new ones
		last = ownDone
	}
	s.readMu.Lock()
	s.own[consumer] = last
	s.readMu.Unlock()
	return es, nil
}

// ownDone marks a consumer whose own pending entries were all re-read.
const ownDone = "done"

// readGroup runs XREADGROUP from id, recreating the consumer group once if
// Redis lost it.
func (s *Store) readGroup(ctx context.Context, consumer, id string, max int, block time.Duration) ([]store.LogEntry, error) {
	es, _, err := s.readGroupLast(ctx, consumer, id, max, block)
	return es, err
}

// readGroupLast is readGroup that also returns the id of the last message
// read, decodable or not ("" for none).
func (s *Store) readGroupLast(ctx context.Context, consumer, id string, max int, block time.Duration) ([]store.LogEntry, string, error) {
	args := &redis.XReadGroupArgs{
		Group: Group, Consumer: consumer, Count: int64(max), Block: block,
		Streams: []string{s.key("log"), id},
	}
	res, err := s.rdb.XReadGroup(ctx, args).Result()
	if isNoGroup(err) {
		s.log.Warn("redis: log consumer group missing, recreating it", "stream", s.key("log"))
		if err = s.ensureGroup(ctx); err == nil {
			res, err = s.rdb.XReadGroup(ctx, args).Result()
		}
	}
	if errors.Is(err, redis.Nil) { // BLOCK timed out
		return nil, "", nil
	}
	if err != nil {
		return nil, "", wrap("read log", "", err)
	}
	var msgs []redis.XMessage
	for _, st := range res {
		msgs = append(msgs, st.Messages...)
	}
	if len(msgs) == 0 {
		return nil, "", nil
	}
	return s.decodeEntries(ctx, msgs), msgs[len(msgs)-1].ID, nil
}

// reclaim takes over, for consumer, entries that other consumers have held
// for longer than ClaimAfter (XAUTOCLAIM), when a pass is due.
func (s *Store) reclaim(ctx context.Context, consumer string, count int) ([]store.LogEntry, error) {
	c := &s.claim
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if now.Before(c.next) {
		return nil, nil
	}
	if now.After(c.pruneNext) {
		c.pruneNext = now.Add(10 * time.Minute)
		s.pruneConsumers(ctx, consumer, max(time.Hour, 10*s.claimIdle))
	}
	start := c.cursor
	if start == "" {
		start = "0-0"
	}
	msgs, next, err := s.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
		Stream: s.key("log"), Group: Group, Consumer: consumer,
		MinIdle: s.claimIdle, Start: start, Count: int64(count),
	}).Result()
	if isNoGroup(err) {
		c.next, c.cursor = now.Add(c.every), ""
		return nil, s.ensureGroup(ctx) // a new group has nothing to reclaim
	}
	if err != nil {
		c.next = now.Add(c.every)
		return nil, wrap("reclaim log entries", "", err)
	}
	c.cursor = next
	if next == "0-0" || next == "" { // pass complete: rest until the next one
		c.next = now.Add(c.every)
	}
	if len(msgs) > 0 {
		s.log.Info("redis: reclaimed log entries of a stale consumer",
			"consumer", consumer, "count", len(msgs), "first", msgs[0].ID)
	}
	return s.decodeEntries(ctx, msgs), nil
}

// pruneConsumers deletes consumers that hold nothing and have been idle for
// a long time (processes that ended), so the group does not grow forever.
// A live consumer deleted by mistake is recreated by its next read.
func (s *Store) pruneConsumers(ctx context.Context, self string, idle time.Duration) {
	cs, err := s.rdb.XInfoConsumers(ctx, s.key("log"), Group).Result()
	if err != nil {
		return
	}
	for _, c := range cs {
		if c.Name != self && c.Pending == 0 && c.Idle > idle {
			_ = pruneConsumerScript.Run(ctx, s.rdb, []string{s.key("log")}, Group, c.Name).Err()
		}
	}
}

// decodeEntries turns stream messages into log entries. An entry that cannot
// be decoded would be delivered forever, so it is logged and dropped.
func (s *Store) decodeEntries(ctx context.Context, msgs []redis.XMessage) []store.LogEntry {
	es := make([]store.LogEntry, 0, len(msgs))
	for _, m := range msgs {
		var ev normalize.Event
		data, ok := m.Values["e"].(string)
		err := errors.New("no event field")
		if ok {
			err = json.Unmarshal([]byte(data), &ev)
		}
		if err != nil {
			id, _ := m.Values["id"].(string)
			s.log.Error("redis: dropping undecodable log entry", "seq", m.ID, "event_id", id, "err", err)
			_ = s.Ack(ctx, store.LogEntry{Seq: m.ID, Event: normalize.Event{ID: id}},
				store.Outcome{Note: "undecodable log entry: " + err.Error()})
			continue
		}
		es = append(es, store.LogEntry{Seq: m.ID, Event: ev})
	}
	return es
}
