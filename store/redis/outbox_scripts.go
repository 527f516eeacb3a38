package redis

import "github.com/redis/go-redis/v9"

// The outbox scripts; the move script adds the entries (scripts.go).

// claimOutboxScript claims due entries. Reply: one HGETALL per entry.
//
// KEYS: due set. ARGV: prefix, now (ms), max, lease (ms).
var claimOutboxScript = redis.NewScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local lease_end = string.format('%d', tonumber(ARGV[2]) + tonumber(ARGV[4]))
local out = {}
for _, id in ipairs(ids) do
  local k = ARGV[1] .. 'outbox:' .. id
  local st = redis.call('HGET', k, 'status')
  if st == 'pending' or st == 'running' then
    redis.call('ZREM', ARGV[1] .. 'outbox:st:' .. st, id)
    redis.call('ZADD', ARGV[1] .. 'outbox:st:running', ARGV[2], id)
    redis.call('ZADD', KEYS[1], lease_end, id)
    redis.call('HINCRBY', k, 'attempts', 1)
    redis.call('HINCRBY', k, 'claim', 1)
    redis.call('HSET', k, 'status', 'running', 'lease', lease_end, 'updated', ARGV[2])
    table.insert(out, redis.call('HGETALL', k))
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
`)

// finishOutboxScript ends a claim. Reply: {'ok'}, {'notfound'} or
// {'conflict', status, claim}.
//
// KEYS: entry, due set. ARGV: prefix, id, claim, new status (pending, done,
// skipped or failed), note, error message, retry at (ms, for pending), now
// (ms), retention (ms), retention cutoff (ms).
var finishOutboxScript = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'status', 'claim')
if not cur[1] then
  return {'notfound'}
end
if cur[1] ~= 'running' or cur[2] ~= ARGV[3] then
  return {'conflict', cur[1], cur[2] or '0'}
end
local st = ARGV[4]
redis.call('ZREM', ARGV[1] .. 'outbox:st:running', ARGV[2])
redis.call('ZADD', ARGV[1] .. 'outbox:st:' .. st, ARGV[8], ARGV[2])
redis.call('HSET', KEYS[1], 'status', st, 'updated', ARGV[8], 'lease', '0')
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'note', ARGV[5])
end
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[1], 'err', ARGV[6])
end
if st == 'pending' then
  redis.call('HSET', KEYS[1], 'due', ARGV[7])
  redis.call('ZADD', KEYS[2], ARGV[7], ARGV[2])
  return {'ok'}
end
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[1], 'done', ARGV[8])
if st ~= 'failed' then
  redis.call('PEXPIRE', KEYS[1], ARGV[9])
  redis.call('ZREMRANGEBYSCORE', ARGV[1] .. 'outbox:st:' .. st, '-inf', ARGV[10])
end
return {'ok'}
`)

// retryOutboxScript makes a failed entry pending again. Reply: {'ok',
// HGETALL}, {'notfound'} or {'conflict', status}.
//
// KEYS: entry, due set. ARGV: prefix, id, now (ms).
var retryOutboxScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'status')
if not st then
  return {'notfound'}
end
if st ~= 'failed' then
  return {'conflict', st}
end
redis.call('ZREM', ARGV[1] .. 'outbox:st:failed', ARGV[2])
redis.call('ZADD', ARGV[1] .. 'outbox:st:pending', ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('HSET', KEYS[1], 'status', 'pending', 'due', ARGV[3], 'attempts', '0', 'updated', ARGV[3], 'done', '0')
return {'ok', redis.call('HGETALL', KEYS[1])}
`)
