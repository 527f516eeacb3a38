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

// UpdateItem sets fields and the responsible user of an item and appends
// u.Entry, once per entry id: it reads the item, merges the fields and
// writes with a script that checks the version (and the entry id), retrying
// when another writer came first.
func (s *Store) UpdateItem(ctx context.Context, u store.ItemUpdate) (store.Item, bool, error) {
	defer s.hold()()
	if u.ItemID == "" || u.Entry.ID == "" {
		return store.Item{}, false, errors.New("redis: update item: item id and entry id are required")
	}
	if u.At.IsZero() {
		u.At = s.now()
	}
	entry := entryDefaults(u.Entry, u.ItemID, u.At, "")
	entryJSON, err := json.Marshal(entry)
	if err != nil {
		return store.Item{}, false, fmt.Errorf("redis: update item %s: %w", u.ItemID, err)
	}
	keys := []string{s.key("item", u.ItemID), s.key("timeline", u.ItemID), s.key("timeline-ids", u.ItemID)}
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
		fields := ""
		if len(u.Fields) > 0 {
			merged := map[string]string{}
			for k, v := range it.Fields {
				merged[k] = v
			}
			for k, v := range u.Fields {
				merged[k] = v
			}
			b, err := json.Marshal(merged)
			if err != nil {
				return store.Item{}, false, fmt.Errorf("redis: update item %s: %w", u.ItemID, err)
			}
			fields = string(b)
		}
		res, err := updateItemScript.Run(ctx, s.rdb, keys, strconv.FormatInt(it.Version, 10), entry.ID, entryJSON,
			fields, u.Responsible, formatTime(u.At)).Slice()
		if err != nil {
			return store.Item{}, false, wrap("update item", u.ItemID, err)
		}
		status, _ := res[0].(string)
		switch status {
		case "conflict":
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

// updateItemScript sets an item's fields and responsible user if its
// version is the expected one and its timeline lacks the entry. Reply:
// {'ok', HGETALL}, {'dup', HGETALL}, {'notfound'} or {'conflict'}.
//
// KEYS: item, timeline, timeline ids. ARGV: expected version, entry id,
// entry JSON, fields JSON (empty: unchanged), responsible (empty:
// unchanged), updated_at.
var updateItemScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], 'version')
if not v then
  return {'notfound'}
end
if redis.call('SISMEMBER', KEYS[3], ARGV[2]) == 1 then
  return {'dup', redis.call('HGETALL', KEYS[1])}
end
if v ~= ARGV[1] then
  return {'conflict'}
end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'fields', ARGV[4])
end
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'responsible', ARGV[5])
end
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[1], 'updated_at', ARGV[6])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('RPUSH', KEYS[2], ARGV[3])
return {'ok', redis.call('HGETALL', KEYS[1])}
`)
