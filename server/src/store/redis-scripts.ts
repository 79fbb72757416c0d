/**
 * Lua scripts of the Redis store. Each runs atomically; WRITE is invariant 1:
 * the version is assigned in the same step that makes the write durable.
 *
 * Keys of one env share the hash tag `{env}` so Redis Cluster keeps an env on
 * one shard. Ops arrive flattened in ARGV (kind, field, valueJson) so Lua never
 * decodes and re-encodes fact values (cjson would turn [] into {}).
 */

// KEYS: meta, log, state, [idem]
// ARGV: epochCandidate, ts, retention, idemTtlSeconds, inlineLimit, channel, opsJson, (kind, field, value)*
export const WRITE = `
local meta, log, state = KEYS[1], KEYS[2], KEYS[3]
if KEYS[4] then
  local prev = redis.call('GET', KEYS[4])
  if prev then return {tonumber(prev), redis.call('HGET', meta, 'epoch'), 1} end
end
local epoch = redis.call('HGET', meta, 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', meta, 'epoch', epoch)
end
local v = redis.call('HINCRBY', meta, 'version', 1)
for i = 8, #ARGV, 3 do
  if ARGV[i] == 'u' then
    redis.call('HSET', state, ARGV[i + 1], ARGV[i + 2])
  else
    redis.call('HDEL', state, ARGV[i + 1])
  end
end
local change = '{"version":' .. v .. ',"ts":"' .. ARGV[2] .. '","ops":' .. ARGV[7] .. '}'
local minid = v - tonumber(ARGV[3]) + 1
if minid > 1 then
  redis.call('XADD', log, 'MINID', minid .. '-0', v .. '-0', 'c', change)
else
  redis.call('XADD', log, v .. '-0', 'c', change)
end
if KEYS[4] then redis.call('SET', KEYS[4], v, 'EX', tonumber(ARGV[4])) end
if #change <= tonumber(ARGV[5]) then
  redis.call('PUBLISH', ARGV[6], 'c:' .. v .. ':' .. epoch .. ':' .. change)
else
  redis.call('PUBLISH', ARGV[6], 'c:' .. v .. ':' .. epoch)
end
return {v, epoch, 0}
`;

// KEYS: meta   ARGV: epochCandidate
export const ENSURE_EPOCH = `
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
return {tonumber(redis.call('HGET', KEYS[1], 'version') or '0'), epoch}
`;

const NOW_MS = `local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

// KEYS: meta, agents, leases, seen   ARGV: id, conn, replica, leaseMs, epochCandidate, channel
export const CONNECT = `
${NOW_MS}
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[5]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
local head = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode({since = head, conn = ARGV[2], replica = ARGV[3]}))
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[1])
redis.call('HSET', KEYS[4], ARGV[1], now)
redis.call('PUBLISH', ARGV[6], cjson.encode({t = 'presence', id = ARGV[1], connected = true, conn = ARGV[2], since = head}))
return {head, epoch}
`;

// KEYS: agents, leases, seen   ARGV: id, conn, channel
export const DISCONNECT = `
${NOW_MS}
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local rec = cjson.decode(raw)
if rec.conn ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], now)
redis.call('PUBLISH', ARGV[3], cjson.encode({t = 'presence', id = ARGV[1], connected = false, conn = ARGV[2]}))
return 1
`;

// KEYS: leases   ARGV: leaseMs, id*
export const RENEW = `
${NOW_MS}
local until_ms = now + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', until_ms, ARGV[i]) end
return #ARGV - 1
`;

// KEYS: acks, seen   ARGV: channel, (id, version)*
// Acks are cumulative: a late, lower ack (an old socket of a moved agent) never lowers the record.
// The event is built here from the same arguments instead of being sent twice; agent ids
// match AGENT_ID_PATTERN (no quotes or backslashes), so concatenation is valid JSON.
export const ACKS = `
${NOW_MS}
local parts = {}
for i = 2, #ARGV, 2 do
  local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '-1')
  if tonumber(ARGV[i + 1]) > cur then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
  redis.call('HSET', KEYS[2], ARGV[i], now)
  parts[#parts + 1] = '"' .. ARGV[i] .. '":' .. ARGV[i + 1]
end
redis.call('PUBLISH', ARGV[1], '{"t":"acks","a":{' .. table.concat(parts, ',') .. '}}')
return 1
`;

// KEYS: agents, acks, seen, leases
export const AGENTS = `
${NOW_MS}
return {now, redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[3]),
  redis.call('ZRANGEBYSCORE', KEYS[4], now, '+inf')}
`;
