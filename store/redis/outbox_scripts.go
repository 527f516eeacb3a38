package redis

import "github.com/redis/go-redis/v9"

// The outbox scripts; the move script adds the entries (scripts.go).

// claimOutboxScript claims due entries, one per stage entry (grp): none
// while an entry of the group runs under a live lease, else the group's due
// entry with the lowest index. Reply: one HGETALL per entry.
//
// KEYS: due set. ARGV: prefix, now (ms), max, lease (ms), how many due
// entries to look at.
var claimOutboxScript = redis.NewScript(`
local P, now, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[5]))
local lease_end = string.format('%d', now + tonumber(ARGV[4]))
local out, seen = {}, {}
local function claim(id, st)
  local k = P .. 'outbox:' .. id
  redis.call('ZREM', P .. 'outbox:st:' .. st, id)
  redis.call('ZADD', P .. 'outbox:st:running', ARGV[2], id)
  redis.call('ZADD', KEYS[1], lease_end, id)
  redis.call('HINCRBY', k, 'attempts', 1)
  redis.call('HINCRBY', k, 'claim', 1)
  redis.call('HSET', k, 'status', 'running', 'lease', lease_end, 'updated', ARGV[2])
  table.insert(out, redis.call('HGETALL', k))
end
for _, id in ipairs(ids) do
  if #out >= n then
    break
  end
  local cur = redis.call('HMGET', P .. 'outbox:' .. id, 'status', 'grp')
  local st, grp = cur[1], cur[2]
  if st ~= 'pending' and st ~= 'running' then
    redis.call('ZREM', KEYS[1], id)
  elseif not grp or grp == '' then
    claim(id, st)
  elseif not seen[grp] then
    seen[grp] = true
    local head, head_st, blocked = nil, nil, false
    for _, sid in ipairs(redis.call('ZRANGE', P .. 'outbox:grp:' .. grp, 0, -1)) do
      local s = redis.call('HMGET', P .. 'outbox:' .. sid, 'status', 'due', 'lease')
      if s[1] == 'running' and (tonumber(s[3]) or 0) > now then
        blocked = true
        break
      end
      if not head and ((s[1] == 'pending' and (tonumber(s[2]) or 0) <= now) or s[1] == 'running') then
        head, head_st = sid, s[1]
      end
    end
    if not blocked then
      claim(head or id, head_st or st)
    end
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
local grp = redis.call('HGET', KEYS[1], 'grp')
if st ~= 'pending' and grp and grp ~= '' then
  redis.call('ZREM', ARGV[1] .. 'outbox:grp:' .. grp, ARGV[2])
end
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
local grp = redis.call('HMGET', KEYS[1], 'grp', 'idx')
if grp[1] and grp[1] ~= '' then
  redis.call('ZADD', ARGV[1] .. 'outbox:grp:' .. grp[1], grp[2] or '0', ARGV[2])
end
return {'ok', redis.call('HGETALL', KEYS[1])}
`)

// eventOutboxLua defines addEventOutbox(prefix, first ARGV index), which
// adds an event's own outbox entries (store.BatchEntry.Outbox) whose id is
// new: at ARGV[first] their count, then per entry EVENT_OUTBOX_ARGS values:
// item id (” for none), id, fixed JSON, due (ms), created (ms), group,
// index (eventOutboxArgs). applyEventScript calls it with the ack.
const eventOutboxLua = `
local EVENT_OUTBOX_ARGS = 7

local function addEventOutbox(P, first)
  local n = tonumber(ARGV[first] or '0') or 0
  for i = 0, n - 1 do
    local b = first + 1 + i * EVENT_OUTBOX_ARGS
    local item, id = ARGV[b], ARGV[b + 1]
    local k = P .. 'outbox:' .. id
    if redis.call('EXISTS', k) == 0 then
      redis.call('HSET', k, 'd', ARGV[b + 2], 'status', 'pending', 'due', ARGV[b + 3],
        'attempts', '0', 'claim', '0', 'updated', ARGV[b + 4], 'grp', ARGV[b + 5], 'idx', ARGV[b + 6])
      redis.call('ZADD', P .. 'outbox:due', ARGV[b + 3], id)
      redis.call('ZADD', P .. 'outbox:st:pending', ARGV[b + 4], id)
      if item ~= '' then
        redis.call('ZADD', P .. 'outbox:item:' .. item, ARGV[b + 4], id)
      end
      if ARGV[b + 5] ~= '' then
        redis.call('ZADD', P .. 'outbox:grp:' .. ARGV[b + 5], ARGV[b + 6], id)
      end
    end
  end
end
`
