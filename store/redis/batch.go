package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stagegate/stagegate/store"
)

var _ store.BatchApplier = (*Store)(nil)

// lookupScript finds the owner of each identity and, once per owner, the
// owner's items (at most ARGV[2]). Reply: per identity false, {owner} or
// {owner, {HGETALL of each item}}.
//
// KEYS: identity keys. ARGV: prefix, max items per contact.
var lookupScript = redis.NewScript(`
local out, seen = {}, {}
for i = 1, #KEYS do
  local owner = redis.call('GET', KEYS[i])
  if owner then
    local entry = {owner}
    if not seen[owner] then
      seen[owner] = true
      local items = {}
      local ids = redis.call('ZRANGE', ARGV[1] .. 'items:contact:' .. owner, 0, tonumber(ARGV[2]) - 1)
      for _, id in ipairs(ids) do
        local h = redis.call('HGETALL', ARGV[1] .. 'item:' .. id)
        if #h > 0 then items[#items + 1] = h end
      end
      entry[2] = items
    end
    out[i] = entry
  else
    out[i] = false
  end
end
return out
`)

// Lookup reads the named items and the identities' contacts with their
// items in one round trip: one script for the identities, one HGETALL per
// named item, pipelined.
func (s *Store) Lookup(ctx context.Context, req store.LookupRequest) (store.LookupResult, error) {
	res := store.LookupResult{
		Items:        map[string]store.Item{},
		Contacts:     map[store.Identity]string{},
		ContactItems: map[string][]string{},
	}
	var idents *redis.Cmd
	items := make([]*redis.MapStringStringCmd, len(req.ItemIDs))
	err := s.pipelinedScripts(ctx, func(p redis.Pipeliner) error {
		if len(req.Identities) > 0 {
			keys := make([]string, len(req.Identities))
			for i, id := range req.Identities {
				keys[i] = s.identityKey(id)
			}
			idents = lookupScript.Run(ctx, p, keys, s.prefix, store.MaxContactItems)
		}
		for i, id := range req.ItemIDs {
			items[i] = p.HGetAll(ctx, s.key("item", id))
		}
		return nil
	})
	if err != nil {
		return store.LookupResult{}, wrap("lookup", "", err)
	}
	for _, c := range items {
		if len(c.Val()) == 0 {
			continue
		}
		it, err := decodeItem(c.Val())
		if err != nil {
			return store.LookupResult{}, fmt.Errorf("redis: lookup: %w", err)
		}
		res.Items[it.ID] = it
	}
	if idents == nil {
		return res, nil
	}
	list, _ := idents.Val().([]any)
	for i, v := range list {
		entry, ok := v.([]any)
		if !ok || len(entry) == 0 || i >= len(req.Identities) {
			continue
		}
		owner, _ := entry[0].(string)
		res.Contacts[req.Identities[i]] = owner
		if len(entry) < 2 {
			continue
		}
		hashes, _ := entry[1].([]any)
		ids := make([]string, 0, len(hashes))
		for _, h := range hashes {
			m, err := flatMap(h)
			if err != nil {
				return store.LookupResult{}, fmt.Errorf("redis: lookup: %w", err)
			}
			it, err := decodeItem(m)
			if err != nil {
				return store.LookupResult{}, fmt.Errorf("redis: lookup: %w", err)
			}
			res.Items[it.ID] = it
			ids = append(ids, it.ID)
		}
		res.ContactItems[owner] = ids
	}
	return res, nil
}

// applyEventScript writes one event of a batch: each of its item writes
// with its compare-and-set, then, when none conflicted, the ack (ackLua).
// A write names the event whose move on the same item came before it in
// the batch; if that move is not applied, the write conflicts, so a write
// never builds on a state that was not written. Reply: {acked (0|1),
// status per write (0 ok, 1 conflict, 2 already applied, 3 not found)}.
//
// KEYS: log stream, event record, unmatched set, failed set, legacy
// decisions, legacy applied markers (markLua).
// ARGV: prefix, group, stream id (empty: no ack), applied_at, unmatched,
// failed, note, event id, score, keep, window (ms), number of writes; then
// per write: item id, expected version, previous event (” for none), move
// (0|1), to, closed, updated_at, entry id (” for none), entry JSON,
// decisions JSON, number of outbox entries, then per entry the values
// addOutbox takes (moveLua); then the event's own outbox entries
// (eventOutboxArgs).
var applyEventScript = redis.NewScript(ackLua + moveLua + markLua + eventOutboxLua + `
local P = ARGV[1]
local statuses, conflict = {}, false
local recOK = redis.call('EXISTS', KEYS[2]) == 1
local legacy = redis.call('EXISTS', KEYS[5], KEYS[6]) > 0
local pend, marked = {}, {} -- the record's marker fields, set with the ack in one HSET; their items
local b = 13
for w = 1, tonumber(ARGV[12]) do
  local item, expect, prev, move = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  local to, closed, at, eid, entry, dec = ARGV[b + 4], ARGV[b + 5], ARGV[b + 6], ARGV[b + 7], ARGV[b + 8], ARGV[b + 9]
  local nout = tonumber(ARGV[b + 10])
  local ob = b + 11
  b = ob + nout * OUTBOX_ARGS
  local ik = P .. 'item:' .. item
  local cur = redis.call('HMGET', ik, 'version', 'pipeline', 'stage', 'score')
  local st = 0
  if not cur[1] then
    st = 3
  elseif move == '1' and (marked[item] or isApplied(KEYS[2], KEYS[6], item, legacy)) then
    st = 2
  elseif tonumber(cur[1]) ~= tonumber(expect) or
      (prev ~= '' and not isApplied(P .. 'event:' .. prev, P .. 'applied:' .. prev, item, true)) then
    st = 1
    conflict = true
  elseif move == '1' then
    moveItem(P, ik, item, cur, to, closed, at, P .. 'timeline:' .. item, false, eid, entry)
    markApplied(KEYS[2], KEYS[6], KEYS[5], item, dec, ARGV[11], recOK, pend)
    marked[item] = true
    addOutbox(P, item, ob, nout)
  else
    keepDecisions(KEYS[2], KEYS[5], item, dec, ARGV[11], recOK, legacy)
    if eid ~= '' and redis.call('SADD', P .. 'timeline-ids:' .. item, eid) == 1 then
      redis.call('RPUSH', P .. 'timeline:' .. item, entry)
    end
  end
  statuses[w] = st
end
local acked = 0
if not conflict then
  acked = 1
  if ARGV[3] ~= '' then
    ack(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], recOK, pend)
    pend = {}
  end
  addEventOutbox(P, b)
end
if #pend > 0 then
  redis.call('HSET', KEYS[2], unpack(pend))
end
return {acked, statuses}
`)

// ApplyBatch sends one script per event of the batch (applyEventScript), all
// in one pipelined round trip. Each script is atomic on its own; a process
// that dies in the middle of the round trip leaves some events applied and
// acknowledged and the others in the log, to be delivered again.
func (s *Store) ApplyBatch(ctx context.Context, at time.Time, entries []store.BatchEntry) (store.BatchResult, error) {
	defer s.hold()()
	ctx, cancel := keepDeadline(ctx)
	defer cancel()
	if at.IsZero() {
		at = s.now()
	}
	lastMove := map[string]string{} // item → event of its latest move so far in the batch
	args := make([][]any, len(entries))
	for i := range entries {
		a, err := s.applyArgs(&entries[i], at, lastMove)
		if err != nil {
			return store.BatchResult{}, err
		}
		args[i] = a
	}
	cmds := make([]*redis.Cmd, len(entries))
	err := s.pipelinedScripts(ctx, func(p redis.Pipeliner) error {
		for i := range entries {
			id := entries[i].Entry.Event.ID
			keys := []string{s.key("log"), s.key("event", id), s.key("unmatched"), s.key("failed"),
				s.key("decisions", id), s.key("applied", id)}
			cmds[i] = applyEventScript.Run(ctx, p, keys, args[i]...)
		}
		return nil
	})
	if err != nil {
		return store.BatchResult{}, wrap("apply batch", "", err)
	}
	res := store.BatchResult{Writes: make([][]store.WriteStatus, len(entries)), Acked: make([]bool, len(entries))}
	for i, c := range cmds {
		reply, ok := c.Val().([]any)
		if !ok || len(reply) != 2 {
			return store.BatchResult{}, fmt.Errorf("redis: apply batch: unexpected reply %v", c.Val())
		}
		acked, _ := reply[0].(int64)
		res.Acked[i] = acked == 1
		sts, _ := reply[1].([]any)
		if len(sts) != len(entries[i].Writes) {
			return store.BatchResult{}, fmt.Errorf("redis: apply batch: %d statuses for %d writes", len(sts), len(entries[i].Writes))
		}
		res.Writes[i] = make([]store.WriteStatus, len(sts))
		for k, v := range sts {
			n, _ := v.(int64)
			res.Writes[i][k] = store.WriteStatus(n)
		}
	}
	return res, nil
}

// applyArgs encodes one batch entry as applyEventScript's ARGV; lastMove
// tracks the latest move per item in the batch.
func (s *Store) applyArgs(be *store.BatchEntry, at time.Time, lastMove map[string]string) ([]any, error) {
	id := be.Entry.Event.ID
	now := s.now()
	a := []any{s.prefix, Group, be.Entry.Seq, formatTime(now), flag(be.Outcome.Unmatched), flag(be.Outcome.Failed),
		be.Outcome.Note, id, score(now), UnmatchedKeep, s.window.Milliseconds(), len(be.Writes)}
	for _, w := range be.Writes {
		d := w.Decisions
		d.ItemID = w.ItemID
		dec, err := json.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("redis: apply batch %s: %w", id, err)
		}
		var e *store.TimelineEntry
		move := "0"
		to, closed := "", "0"
		var outbox []any
		if w.Move != nil {
			e, move, to, closed = &w.Move.Entry, "1", w.Move.To, flag(w.Move.Closed)
			if outbox, err = outboxArgs(w.Move.Outbox, at); err != nil {
				return nil, fmt.Errorf("redis: apply batch %s: %w", id, err)
			}
		} else if w.Entry != nil {
			e = w.Entry
		}
		eid, ejson := "", []byte(nil)
		if e != nil {
			en := entryDefaults(*e, w.ItemID, at, "ev:"+id)
			if w.Move != nil && en.Kind == "" {
				en.Kind = store.EntryMove
			}
			eid = en.ID
			if ejson, err = json.Marshal(en); err != nil {
				return nil, fmt.Errorf("redis: apply batch %s: %w", id, err)
			}
		}
		a = append(a, w.ItemID, strconv.FormatInt(w.ExpectVersion, 10), lastMove[w.ItemID], move, to, closed,
			formatTime(at), eid, ejson, dec)
		if len(outbox) == 0 {
			a = append(a, 0)
		} else {
			a = append(a, outbox...) // outboxArgs starts with the count
		}
		if w.Move != nil {
			lastMove[w.ItemID] = id
		}
	}
	ev, err := eventOutboxArgs(be.Outbox, at)
	if err != nil {
		return nil, fmt.Errorf("redis: apply batch %s: %w", id, err)
	}
	return append(a, ev...), nil
}

// pipelinedScripts runs fn's commands in one pipeline. A script in a
// pipeline goes as EVALSHA without the EVAL fallback, so when Redis lost
// its script cache (a restart) the scripts are loaded again and the
// pipeline sent once more; the scripts refused with NOSCRIPT did not run.
func (s *Store) pipelinedScripts(ctx context.Context, fn func(p redis.Pipeliner) error) error {
	_, err := s.rdb.Pipelined(ctx, fn)
	if err == nil || !redis.HasErrorPrefix(err, "NOSCRIPT") {
		return err
	}
	for _, sc := range scripts {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return err
		}
	}
	_, err = s.rdb.Pipelined(ctx, fn)
	return err
}

// retryEventScript puts a parked event back into the log. Reply: the new
// stream id, 'notfound' or 'notparked'.
//
// KEYS: event record, log stream, failed set. ARGV: event id.
var retryEventScript = redis.NewScript(`
local rec = redis.call('HMGET', KEYS[1], 'e', 'failed')
if not rec[1] then
  return 'notfound'
end
if rec[2] ~= '1' then
  return 'notparked'
end
local seq = redis.call('XADD', KEYS[2], '*', 'id', ARGV[1], 'e', rec[1])
redis.call('HSET', KEYS[1], 'seq', seq, 'applied', '0', 'failed', '0', 'note', '')
redis.call('ZREM', KEYS[3], ARGV[1])
return seq
`)

// ListFailed returns the parked events, most recently parked first; limit
// 0 means 100.
func (s *Store) ListFailed(ctx context.Context, limit int) ([]store.EventRecord, error) {
	return s.listIndexed(ctx, "failed", limit)
}

// RetryEvent puts a parked event back into the log (retryEventScript).
func (s *Store) RetryEvent(ctx context.Context, id string) error {
	defer s.hold()()
	keys := []string{s.key("event", id), s.key("log"), s.key("failed")}
	res, err := retryEventScript.Run(ctx, s.rdb, keys, id).Text()
	if err != nil {
		return wrap("retry event", id, err)
	}
	switch res {
	case "notfound":
		return fmt.Errorf("redis: retry event %s: %w", id, store.ErrNotFound)
	case "notparked":
		return fmt.Errorf("redis: retry event %s: event is not parked: %w", id, store.ErrConflict)
	}
	return nil
}
