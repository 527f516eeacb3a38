package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/stagegate/stagegate/store"
)

// maxUpdateAttempts bounds UpdateItem's compare-and-set retries.
const maxUpdateAttempts = 32

// UpdateItem sets and removes fields and sets the responsible user of an
// item, appends u.Entry and u.More and appends u.Events to the log, once
// per entry id: it reads the item, merges the fields and writes with a
// script that checks the version (and the entry id) and appends the events
// with their dedup keys, retrying when another writer came first (unless
// u.ExpectVersion pins the version: then that is ErrConflict).
func (s *Store) UpdateItem(ctx context.Context, u store.ItemUpdate) (store.Item, bool, error) {
	defer s.hold()()
	if u.ItemID == "" || u.Entry.ID == "" {
		return store.Item{}, false, errors.New("redis: update item: item id and entry id are required")
	}
	if u.At.IsZero() {
		u.At = s.now()
	}
	keys := []string{s.key("item", u.ItemID), s.key("timeline", u.ItemID), s.key("timeline-ids", u.ItemID), s.key("log")}
	tail := []any{s.window.Milliseconds(), 1 + len(u.More)}
	for _, e := range append([]store.TimelineEntry{u.Entry}, u.More...) {
		e = entryDefaults(e, u.ItemID, u.At, "")
		b, err := json.Marshal(e)
		if err != nil {
			return store.Item{}, false, fmt.Errorf("redis: update item %s: %w", u.ItemID, err)
		}
		tail = append(tail, e.ID, b)
	}
	for i := range u.Events {
		ev := &u.Events[i]
		b, err := json.Marshal(ev)
		if err != nil {
			return store.Item{}, false, fmt.Errorf("redis: update item %s: event %s: %w", u.ItemID, ev.ID, err)
		}
		keys = append(keys, s.key("dedup", ev.ID), s.key("event", ev.ID))
		tail = append(tail, ev.ID, b)
	}
	for range maxUpdateAttempts {
		h, err := s.rdb.HGetAll(ctx, keys[0]).Result()
		if err != nil {
			return store.Item{}, false, wrap("update item", u.ItemID, err)
		}
		if len(h) == 0 {
			return store.Item{}, false, fmt.Errorf("redis: update item %s: %w", u.ItemID, store.ErrNotFound)
		}
		it, err := decodeItem(h)
		if err != nil {
			return store.Item{}, false, fmt.Errorf("redis: update item %s: %w", u.ItemID, err)
		}
		if u.ExpectVersion != 0 && it.Version != u.ExpectVersion {
			// The fields below are merged into what was read: the script
			// must check that very version, so a pinned one that was not
			// read is a conflict now (unless the entry was written before:
			// the script tells).
			if done, err := s.rdb.SIsMember(ctx, keys[2], u.Entry.ID).Result(); err != nil {
				return store.Item{}, false, wrap("update item", u.ItemID, err)
			} else if done {
				return it, false, nil
			}
			return store.Item{}, false, fmt.Errorf("redis: update item %s: at version %d, not %d: %w", u.ItemID, it.Version, u.ExpectVersion, store.ErrConflict)
		}
		fields, err := mergeFields(it.Fields, u)
		if err != nil {
			return store.Item{}, false, fmt.Errorf("redis: update item %s: %w", u.ItemID, err)
		}
		args := append([]any{strconv.FormatInt(it.Version, 10), fields, u.Responsible, formatTime(u.At)}, tail...)
		res, err := updateItemScript.Run(ctx, s.rdb, keys, args...).Slice()
		if err != nil {
			return store.Item{}, false, wrap("update item", u.ItemID, err)
		}
		status, _ := res[0].(string)
		switch status {
		case "conflict":
			if u.ExpectVersion != 0 {
				return store.Item{}, false, fmt.Errorf("redis: update item %s: %w", u.ItemID, store.ErrConflict)
			}
			continue
		case "notfound":
			return store.Item{}, false, fmt.Errorf("redis: update item %s: %w", u.ItemID, store.ErrNotFound)
		case "ok", "dup":
		default:
			return store.Item{}, false, fmt.Errorf("redis: update item %s: unexpected reply %v", u.ItemID, res)
		}
		h, err = flatMap(res[1])
		if err != nil {
			return store.Item{}, false, fmt.Errorf("redis: update item %s: %w", u.ItemID, err)
		}
		it, err = decodeItem(h)
		if err != nil {
			return store.Item{}, false, fmt.Errorf("redis: update item %s: %w", u.ItemID, err)
		}
		return it, status == "ok", nil
	}
	return store.Item{}, false, fmt.Errorf("redis: update item %s: %w: gave up after %d attempts", u.ItemID, store.ErrConflict, maxUpdateAttempts)
}

// mergeFields is the fields argument of updateItemScript: "" when u
// changes no field, "-" when none is left, else the merged fields' JSON.
func mergeFields(cur map[string]string, u store.ItemUpdate) (string, error) {
	if len(u.Fields) == 0 && len(u.Remove) == 0 {
		return "", nil
	}
	merged := map[string]string{}
	for k, v := range cur {
		merged[k] = v
	}
	for k, v := range u.Fields {
		merged[k] = v
	}
	for _, k := range u.Remove {
		delete(merged, k)
	}
	if len(merged) == 0 {
		return "-", nil
	}
	b, err := json.Marshal(merged)
	return string(b), err
}

// updateItemScript sets an item's fields and responsible user if its
// version is the expected one and its timeline lacks the first entry,
// appends the entries, and appends the events to the log with their dedup
// keys (a duplicate is left out). Reply: {'ok', HGETALL}, {'dup', HGETALL},
// {'notfound'} or {'conflict'}.
//
// KEYS: item, timeline, timeline ids, log stream, then per event its dedup
// key and its record. ARGV: expected version, fields JSON (empty:
// unchanged; "-": none left), responsible (empty: unchanged), updated_at,
// dedup window (ms), the number n of entries, n × (entry id, entry JSON),
// then per event (id, JSON).
var updateItemScript = redis.NewScript(appendEventLua + `
local v = redis.call('HGET', KEYS[1], 'version')
if not v then
  return {'notfound'}
end
if redis.call('SISMEMBER', KEYS[3], ARGV[7]) == 1 then
  return {'dup', redis.call('HGETALL', KEYS[1])}
end
if v ~= ARGV[1] then
  return {'conflict'}
end
if ARGV[2] == '-' then
  redis.call('HDEL', KEYS[1], 'fields')
elseif ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'fields', ARGV[2])
end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'responsible', ARGV[3])
end
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[1], 'updated_at', ARGV[4])
local n = tonumber(ARGV[6])
for i = 0, n - 1 do
  local id, e = ARGV[7 + 2 * i], ARGV[8 + 2 * i]
  if redis.call('SADD', KEYS[3], id) == 1 then
    redis.call('RPUSH', KEYS[2], e)
  end
end
local a = 7 + 2 * n
local k = 5
while ARGV[a] do
  append_event(KEYS[k], KEYS[k + 1], KEYS[4], ARGV[5], ARGV[a], ARGV[a + 1])
  a, k = a + 2, k + 2
end
return {'ok', redis.call('HGETALL', KEYS[1])}
`)
