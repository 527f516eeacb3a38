package redis

import "github.com/redis/go-redis/v9"

// scripts lists every script, for Open to load them.
var scripts = []*redis.Script{
	appendScript, ackScript, applyEventScript, lookupScript, retryEventScript, ensureContactScript, createItemScript, moveScript, appendTimelineScript,
	pruneConsumerScript, putRecordScript, deleteRecordScript, appendListScript,
	claimOutboxScript, finishOutboxScript, retryOutboxScript, updateItemScript, recordDecisionsScript,
}

// The Lua scripts. Each runs atomically in Redis; go-redis sends EVALSHA
// and falls back to EVAL when the server does not know the script yet.
// Scripts that touch index keys build their names from the prefix (ARGV)
// exactly like Store.key and Store.stageKey.

// appendEventLua defines append_event(dedup, record, log, window, id,
// data): it records an event with its dedup key and returns its log
// position, or false for a duplicate, which writes nothing. appendScript
// and updateItemScript share it.
const appendEventLua = `
local function append_event(dedup, rec, log, window, id, data)
  if not redis.call('SET', dedup, '1', 'NX', 'PX', window) then
    return false
  end
  local seq = redis.call('XADD', log, '*', 'id', id, 'e', data)
  redis.call('DEL', rec)
  redis.call('HSET', rec, 'e', data, 'seq', seq, 'applied', '0')
  redis.call('PEXPIRE', rec, window)
  return seq
end
`

// appendScript records an event with its dedup key. A duplicate returns nil
// and writes nothing.
//
// KEYS: dedup, event record, log stream.
// ARGV: window (ms), event id, event JSON.
var appendScript = redis.NewScript(appendEventLua + `
return append_event(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3])
`)

// ackLua defines ack(log, record, unmatched, failed, group, stream id,
// applied_at, unmatched flag, failed flag, note, event id, score, keep[,
// record exists[, more record fields]]), the last two for a caller that
// checked already and has fields of its own to set with the outcome: it
// acknowledges and deletes a log entry and records the outcome on the event
// record, keeping the unmatched and failed indexes. The index score is made
// strictly increasing so that the newest acknowledgement always lists
// first. ackScript and applyEventScript share it.
const ackLua = `
local function ack(log, rec, um, fl, group, sid, at, unmatched, failed, note, id, score, keep, recOK, more)
  if sid ~= '' then
    redis.pcall('XACK', log, group, sid)
    redis.call('XDEL', log, sid)
  end
  if recOK == nil then
    recOK = redis.call('EXISTS', rec) == 1
  end
  if not recOK then
    return 0
  end
  if more and #more > 0 then
    redis.call('HSET', rec, 'applied', '1', 'applied_at', at, 'unmatched', unmatched, 'failed', failed, 'note', note, unpack(more))
  else
    redis.call('HSET', rec, 'applied', '1', 'applied_at', at, 'unmatched', unmatched, 'failed', failed, 'note', note)
  end
  redis.call('ZREM', fl, id)
  local index = um
  if failed == '1' then
    index = fl
  elseif unmatched ~= '1' then
    redis.call('ZREM', um, id)
    return 1
  end
  score = tonumber(score)
  local top = redis.call('ZREVRANGE', index, 0, 0, 'WITHSCORES')
  if top[2] and tonumber(top[2]) >= score then
    score = tonumber(top[2]) + 1
  end
  redis.call('ZADD', index, string.format('%.0f', score), id)
  redis.call('ZREMRANGEBYRANK', index, 0, -(tonumber(keep) + 1))
  return 1
end
`

// ackScript acknowledges a log entry (ackLua).
//
// KEYS: log stream, event record, unmatched set, failed set.
// ARGV: group, stream id (empty for none), applied_at, unmatched (0|1),
// failed (0|1), note, event id, score (µs), number of ids kept per index.
var ackScript = redis.NewScript(ackLua + `
return ack(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9])
`)

// ensureContactScript returns the owner of the first identity that has one,
// or creates the contact; then it gives every unowned identity to the owner.
// Reply: {created (0|1), contact JSON or false, identities}.
//
// KEYS: contact record of the candidate, identity keys...
// ARGV: prefix, candidate id, candidate JSON, one "kind:value" per identity key.
var ensureContactScript = redis.NewScript(`
local owner = false
for i = 2, #KEYS do
  owner = redis.call('GET', KEYS[i])
  if owner then break end
end
local created = 0
if not owner then
  owner = ARGV[2]
  if redis.call('SET', KEYS[1], ARGV[3], 'NX') then created = 1 end
end
local ids = ARGV[1] .. 'contact-ids:' .. owner
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], owner, 'NX') then
    redis.call('RPUSH', ids, ARGV[i + 2])
  end
end
return {created, redis.call('GET', ARGV[1] .. 'contact:' .. owner), redis.call('LRANGE', ids, 0, -1)}
`)

// createItemScript stores a new item, indexes it and adds its first
// timeline entry, unless the item exists. Reply: {created (0|1), HGETALL}.
//
// KEYS: item, timeline, timeline ids, all items, pipeline index, stage
// index, contact index.
// ARGV: item id, score, entry id, entry JSON, has contact (0|1), then the
// item's field/value pairs.
var createItemScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('HGETALL', KEYS[1])}
end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
for i = 4, 6 do
  redis.call('ZADD', KEYS[i], ARGV[2], ARGV[1])
end
if ARGV[5] == '1' then
  redis.call('ZADD', KEYS[7], ARGV[2], ARGV[1])
end
if redis.call('SADD', KEYS[3], ARGV[3]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[4])
end
return {1, redis.call('HGETALL', KEYS[1])}
`)

// moveScript moves an item to another stage and adds its outbox entries
// (those whose id is new; see outbox.go). Reply: {'applied'},
// {'notfound'}, {'conflict'} or {'ok', HGETALL}.
//
// KEYS: item, legacy applied marker, legacy decisions, timeline, timeline
// ids, event record.
// ARGV: prefix, item id, event id (empty for a manual move), expected
// version, target stage, closed (0|1), updated_at, entry id, entry JSON,
// decisions JSON (empty for none), window (ms), number of outbox entries,
// then per entry: id, fixed JSON, due (ms), created (ms).
var moveScript = redis.NewScript(moveLua + markLua + `
if ARGV[3] ~= '' and isApplied(KEYS[6], KEYS[2], ARGV[2], true) then
  return {'applied'}
end
local cur = redis.call('HMGET', KEYS[1], 'version', 'pipeline', 'stage', 'score')
if not cur[1] then
  return {'notfound'}
end
if tonumber(cur[1]) ~= tonumber(ARGV[4]) then
  return {'conflict'}
end
local tik = KEYS[5]
if ARGV[3] ~= '' then
  tik = false -- the applied marker below keeps the entry single
end
moveItem(ARGV[1], KEYS[1], ARGV[2], cur, ARGV[5], ARGV[6], ARGV[7], KEYS[4], tik, ARGV[8], ARGV[9])
if ARGV[3] ~= '' then
  markApplied(KEYS[6], KEYS[2], KEYS[3], ARGV[2], ARGV[10], ARGV[11], redis.call('EXISTS', KEYS[6]) == 1)
end
addOutbox(ARGV[1], ARGV[2], 13, tonumber(ARGV[12] or '0'))
return {'ok', redis.call('HGETALL', KEYS[1])}
`)

// markLua defines where the (event, item) applied marker and decisions
// live: in the event record's hash, as fields a:<item> ("1") and d:<item>
// (ItemDecisions JSON), so they expire with the record and cost no keys of
// their own. When the record is gone (expired, or an event id that was
// never appended) they go to the legacy hashes applied:<event> and
// decisions:<event>, with their own expiry, which is also where gateways
// before this layout wrote them: every check reads both, so an event
// applied before an upgrade is not applied again after it.
//
// isApplied(record, legacy applied, item, legacy) tells whether the pair
// is marked (legacy false: the caller knows no legacy hash exists);
// markApplied(record, legacy applied, legacy decisions, item, decisions
// JSON or ”, window ms, record exists[, pending]) marks it and stores the
// decisions, or, given a pending table and an existing record, adds the
// record's fields to the table for the caller's one HSET;
// keepDecisions(record, legacy decisions, item, JSON, window ms, record
// exists, legacy) stores decisions unless some are stored already.
const markLua = `
local function isApplied(rec, la, item, legacy)
  if redis.call('HEXISTS', rec, 'a:' .. item) == 1 then
    return true
  end
  return legacy and redis.call('HEXISTS', la, item) == 1
end

local function markApplied(rec, la, ld, item, dec, window, recOK, pend)
  if recOK and pend then
    pend[#pend + 1] = 'a:' .. item
    pend[#pend + 1] = '1'
    if dec ~= '' then
      pend[#pend + 1] = 'd:' .. item
      pend[#pend + 1] = dec
    end
    return
  end
  if recOK then
    if dec ~= '' then
      redis.call('HSET', rec, 'a:' .. item, '1', 'd:' .. item, dec)
    else
      redis.call('HSET', rec, 'a:' .. item, '1')
    end
    return
  end
  if dec ~= '' then
    redis.call('HSET', ld, item, dec)
    redis.call('PEXPIRE', ld, window)
  end
  redis.call('HSET', la, item, '1')
  redis.call('PEXPIRE', la, window)
end

local function keepDecisions(rec, ld, item, dec, window, recOK, legacy)
  if legacy and redis.call('HEXISTS', ld, item) == 1 then
    return
  end
  if recOK then
    redis.call('HSETNX', rec, 'd:' .. item, dec)
  elseif redis.call('HSETNX', ld, item, dec) == 1 then
    redis.call('PEXPIRE', ld, window)
  end
end
`

// moveLua defines moveItem(prefix, item key, item id, {version, pipeline,
// stage, score}, to, closed, updated_at, timeline key, timeline ids key
// (false for a move that applies an event), entry id, entry JSON), which
// moves a checked item (version, stage, stage indexes, timeline entry once
// per id), and addOutbox(prefix, item id, first ARGV index, count), which
// adds the entered stage's outbox
// entries whose id is new (per entry in ARGV, OUTBOX_ARGS values: id,
// fixed JSON, due (ms), created (ms), stage entry group, action index; see
// outbox.go). moveScript and applyEventScript share them.
const moveLua = `
local OUTBOX_ARGS = 6

local function moveItem(P, ik, item, cur, to, closed, at, tk, tik, eid, entry)
  -- cur[1] is the version this script read and checked: one HSET, not
  -- HINCRBY and HSET.
  redis.call('HSET', ik, 'version', string.format('%d', tonumber(cur[1]) + 1), 'stage', to, 'closed', closed, 'updated_at', at)
  if cur[3] ~= to then
    local base = P .. 'items:stage:' .. string.len(cur[2]) .. ':' .. cur[2] .. ':'
    redis.call('ZREM', base .. cur[3], item)
    redis.call('ZADD', base .. to, cur[4], item)
  end
  -- tik false: the entry of a move that applies an event, kept single by
  -- the event's applied marker, so its id needs no place in the id set.
  if not tik or redis.call('SADD', tik, eid) == 1 then
    redis.call('RPUSH', tk, entry)
  end
end

local function addOutbox(P, item, first, n)
  for i = 0, n - 1 do
    local b = first + i * OUTBOX_ARGS
    local id = ARGV[b]
    local k = P .. 'outbox:' .. id
    if redis.call('EXISTS', k) == 0 then
      redis.call('HSET', k, 'd', ARGV[b + 1], 'status', 'pending', 'due', ARGV[b + 2],
        'attempts', '0', 'claim', '0', 'updated', ARGV[b + 3], 'grp', ARGV[b + 4], 'idx', ARGV[b + 5])
      redis.call('ZADD', P .. 'outbox:due', ARGV[b + 2], id)
      redis.call('ZADD', P .. 'outbox:st:pending', ARGV[b + 3], id)
      redis.call('ZADD', P .. 'outbox:item:' .. item, ARGV[b + 3], id)
      if ARGV[b + 4] ~= '' then
        redis.call('ZADD', P .. 'outbox:grp:' .. ARGV[b + 4], ARGV[b + 5], id)
      end
    end
  end
end
`

// appendTimelineScript adds an entry unless the item already has its id.
// Reply: -1 if the item does not exist, 1 if added, 0 if already there.
//
// KEYS: item, timeline, timeline ids. ARGV: entry id, entry JSON.
var appendTimelineScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
if redis.call('SADD', KEYS[3], ARGV[1]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[2])
  return 1
end
return 0
`)

// pruneConsumerScript deletes a consumer of the log's group if it holds no
// entries; checked in the same step, so no entry it just read is dropped.
// Reply: pending entries deleted (0), or -1 if it holds some.
//
// KEYS: log stream. ARGV: group, consumer.
var pruneConsumerScript = redis.NewScript(`
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then
  return -1
end
return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
`)

// putRecordScript stores a record if its version is the expected one (0:
// the key must be absent). Reply: {'conflict', current version} or {'ok',
// new version}.
//
// KEYS: record. ARGV: expected version, value, ttl (ms, 0 for none).
var putRecordScript = redis.NewScript(`
local cur = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if cur ~= tonumber(ARGV[1]) then
  return {'conflict', cur}
end
local v = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HSET', KEYS[1], 'd', ARGV[2])
if ARGV[3] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('PERSIST', KEYS[1])
end
return {'ok', v}
`)

// deleteRecordScript deletes a record if its version is the expected one.
// Reply: {'notfound'}, {'conflict', current version} or {'ok'}.
//
// KEYS: record. ARGV: expected version.
var deleteRecordScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'v')
if not cur then
  return {'notfound'}
end
if tonumber(cur) ~= tonumber(ARGV[1]) then
  return {'conflict', tonumber(cur)}
end
redis.call('DEL', KEYS[1])
return {'ok'}
`)

// appendListScript adds an element unless the list has its id; the next
// sequence number is the number of elements plus one, so numbers are
// gapless. An element appended unique (store.ListAppend.Unique) is neither
// looked up nor put in the id index. A ttl refreshes the expiry of both
// keys. Reply: {seq, 1} for an id already there (nothing changes), {seq, 0}
// for a new element.
//
// KEYS: elements, id index. ARGV: element id, encoded element, ttl (ms, 0
// to leave the expiry alone), "1" for a unique element.
var appendListScript = redis.NewScript(`
local unique = ARGV[4] == '1'
if not unique then
  local known = redis.call('HGET', KEYS[2], ARGV[1])
  if known then
    return {tonumber(known), 1}
  end
end
local seq = redis.call('HLEN', KEYS[1]) + 1
local field = string.format('%d', seq)
if not unique then
  redis.call('HSET', KEYS[2], ARGV[1], field)
end
redis.call('HSET', KEYS[1], field, ARGV[2])
if ARGV[3] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return {seq, 0}
`)
