/**
 * Lua scripts of the Redis store. Only `redis-commands.ts` calls them: it is
 * the one place that knows their KEYS and ARGV positions and their replies. Each runs atomically; WRITE is invariants 1
 * and 9: the version and its chained id are assigned in the same step that
 * makes the write durable.
 *
 * Keys of one env share the hash tag `{env}` so Redis Cluster keeps an env on
 * one shard. Ops arrive flattened in ARGV (kind, field, valueJson) so Lua never
 * decodes and re-encodes fact values (cjson would turn [] into {}).
 *
 * The control plane of an env (invariant 8) is five keys: `sess` (agent id →
 * its current session), `applied` (agent id → "V:chainId" acked by that
 * session), `info` (agent id → JSON {r, since, c, t, seen, addr, lm}), `pres`
 * (agent id → "since|c|replica": what the waiting rules read, without JSON),
 * `leases` (agent id → expiry ms: renewed while connected, LEASE_MS past the
 * end of an unclean disconnect) and `gone` (agent id → when it left), which
 * expires records after AGENT_RECORD_TTL_MS a few at a time, so nothing ever
 * scans every id ever seen.
 */

import { DOORBELL } from '@factsync/shared';

// The doorbell encoding is shared/replica-wire.ts's (encodeDoorbell); the agent record keys are its encodeAgentInfo's.
const NOW_MS = `local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/** The id of the change at version v ('' at 0), false when the log no longer holds it. */
const ID_AT = `
local function id_at(meta_head, head_id, log, v)
  if v == 0 then return '' end
  if v == meta_head then return head_id end
  local e = redis.call('XRANGE', log, v .. '-0', v .. '-0')
  if #e == 0 then return false end
  return string.match(e[1][2][2], '"id":"(%x+)"') or ''
end`;

/** Invariants 5 and 9: can an agent at (applied, epoch, id) continue from the log? */
const VERDICT = `
${ID_AT}
local function verdict(log, applied, hello_epoch, hello_id, epoch, head, head_id)
  if hello_epoch ~= epoch then
    if applied == 0 and hello_epoch == '' then return 'new' end
    return 'other_epoch'
  end
  if applied > head then return 'ahead' end
  if applied == 0 or hello_id == '' then return 'resume' end
  local at = id_at(head, head_id, log, applied)
  if at == false then return 'unverifiable' end
  if at ~= hello_id then return 'forked' end
  return 'resume'
end`;

/** The env's epoch (set to `candidate` when it has none yet), head and head id. */
const ENSURE = `
local function ensure(meta, candidate)
  local epoch = redis.call('HGET', meta, 'epoch')
  if not epoch then
    epoch = candidate
    redis.call('HSET', meta, 'epoch', epoch)
  end
  return epoch, tonumber(redis.call('HGET', meta, 'version') or '0'), redis.call('HGET', meta, 'id') or ''
end`;

const PURGE = `
local function purge(sess, info, applied, leases, gone, pres, before)
  local old = redis.call('ZRANGEBYSCORE', gone, '-inf', before, 'LIMIT', 0, 64)
  for _, x in ipairs(old) do
    redis.call('HDEL', sess, x)
    redis.call('HDEL', info, x)
    redis.call('HDEL', pres, x)
    redis.call('HDEL', applied, x)
    redis.call('ZREM', leases, x)
    redis.call('ZREM', gone, x)
  end
end`;

// Group commit (issue "The write path at the store's speed"): several writes of one env in one call,
// each its own consecutive version, chained id, log entry and idempotency check, in order; one doorbell
// for the run. A write whose Idempotency-Key was used before is answered from the key (flag 1, or 2 when
// the request differs) and refuses only itself.
// A write of a producer (seq > 0) is looked up in the producer's hash instead: its last `window`
// sequence numbers with their versions (flag 3: older than the window, refused), so idempotency
// state grows with producers, not with writes.
// A source's write (srcName ~= '') is applied once per position: the sources hash keeps, per source,
// "position\nversion\nts"; a position not after the recorded one (bytewise) is answered with the
// recorded version (flag 4), and one without ops records the position and makes no version (flag 5).
// KEYS: meta, log, state, sources, idem keys (or producer hashes) of the writes that have one
// ARGV: epochCandidate, retention, idemTtlSeconds, inlineLimit, channel, n, window,
//       then per write: ts, opsJson, requestHash, idemKeyIndex (0 = none), seq (0 = none), srcName ('' = none), srcPos, flatCount, (kind, field, value)*
// Returns: version1, flag1, version2, flag2, ..., epoch
export const WRITE = `
local meta, log, state, sources = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
-- Redis compares strings with strcoll (its locale): positions are ordered as bytes, so compare bytes.
local function after(a, b)
  local n = math.min(#a, #b)
  for j = 1, n do
    local x, y = string.byte(a, j), string.byte(b, j)
    if x ~= y then return x > y end
  end
  return #a > #b
end
local epoch = redis.call('HGET', meta, 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', meta, 'epoch', epoch)
end
local prev_id = redis.call('HGET', meta, 'id') or ''
local v = tonumber(redis.call('HGET', meta, 'version') or '0')
local retention, ttl, inline, channel = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local out = {}
local wrote, last = 0, ''
local inline_all, inline_size = {}, 0
local window = tonumber(ARGV[7])
local i = 8
for _ = 1, tonumber(ARGV[6]) do
  local ts, ops, hash, ik, seq, sname, spos, nflat = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4]), ARGV[i + 5], ARGV[i + 6], tonumber(ARGV[i + 7])
  local first = i + 8
  i = first + nflat
  local prev = false
  local pmax = 0
  local srec = false
  if sname ~= '' then srec = redis.call('HGET', sources, sname) end
  local rpos, rver = '', 0
  if srec then
    local a = string.find(srec, '\\n', 1, true)
    local b = string.find(srec, '\\n', a + 1, true)
    rpos = string.sub(srec, 1, a - 1)
    rver = tonumber(string.sub(srec, a + 1, b - 1))
  end
  if ik > 0 then
    if seq > 0 then
      prev = redis.call('HGET', KEYS[ik], seq)
      pmax = tonumber(redis.call('HGET', KEYS[ik], 'max') or '0')
    else
      prev = redis.call('GET', KEYS[ik])
    end
  end
  if srec and not after(spos, rpos) then
    out[#out + 1] = rver
    out[#out + 1] = 4
  elseif sname ~= '' and nflat == 0 then
    redis.call('HSET', sources, sname, spos .. '\\n' .. v .. '\\n' .. ts)
    out[#out + 1] = v
    out[#out + 1] = 5
  elseif not prev and seq > 0 and seq <= pmax - window then
    out[#out + 1] = 0
    out[#out + 1] = 3
  elseif prev then
    local sep = string.find(prev, ':', 1, true)
    local pv, ph = prev, ''
    if sep then pv = string.sub(prev, 1, sep - 1); ph = string.sub(prev, sep + 1) end
    local flag = 1
    if ph ~= '' and ph ~= hash then flag = 2 end
    out[#out + 1] = tonumber(pv)
    out[#out + 1] = flag
  else
    v = v + 1
    prev_id = redis.sha1hex(prev_id .. '\\n' .. v .. '\\n' .. ts .. '\\n' .. ops)
    -- Where each recorded fact was (Change.was: its tenant, or null), read just before its op applies.
    local was = {}
    local k = 0
    for j = first, i - 1, 3 do
      local kind = ARGV[j]
      if kind == 'U' or kind == 'D' then
        local old = redis.call('HGET', state, ARGV[j + 1])
        if old then
          local okd, val = pcall(cjson.decode, old)
          local t = okd and type(val) == 'table' and val['tenant'] or nil
          if type(t) == 'string' then was[#was + 1] = '"' .. k .. '":' .. cjson.encode(t) else was[#was + 1] = '"' .. k .. '":null' end
        end
      end
      if kind == 'u' or kind == 'U' then
        redis.call('HSET', state, ARGV[j + 1], ARGV[j + 2])
      else
        redis.call('HDEL', state, ARGV[j + 1])
      end
      k = k + 1
    end
    local was_json = ''
    if #was > 0 then was_json = '"was":{' .. table.concat(was, ',') .. '},' end
    last = '{"version":' .. v .. ',"id":"' .. prev_id .. '","ts":"' .. ts .. '",' .. was_json .. '"ops":' .. ops .. '}'
    local minid = v - retention + 1
    if minid > 1 then
      redis.call('XADD', log, 'MINID', minid .. '-0', v .. '-0', 'c', last)
    else
      redis.call('XADD', log, v .. '-0', 'c', last)
    end
    if ik > 0 and seq > 0 then
      redis.call('HSET', KEYS[ik], seq, v .. ':' .. hash)
      if seq > pmax then
        redis.call('HSET', KEYS[ik], 'max', seq)
        -- Forget what fell out of the window: at most window fields, however far seq jumped.
        for s = math.max(1, pmax - window + 1), math.min(pmax, seq - window) do redis.call('HDEL', KEYS[ik], s) end
      end
      redis.call('EXPIRE', KEYS[ik], ttl)
    elseif ik > 0 then
      redis.call('SET', KEYS[ik], v .. ':' .. hash, 'EX', ttl)
    end
    if sname ~= '' then redis.call('HSET', sources, sname, spos .. '\\n' .. v .. '\\n' .. ts) end
    inline_size = inline_size + #last + 1
    if inline_size <= inline then inline_all[#inline_all + 1] = last end
    wrote = wrote + 1
    out[#out + 1] = v
    out[#out + 1] = 0
  end
end
if wrote > 0 then
  redis.call('HSET', meta, 'version', v, 'id', prev_id)
  -- One doorbell for the run, carrying its changes while they fit the inline budget (else feeds read the log once).
  if wrote == 1 and #last <= inline then
    redis.call('PUBLISH', channel, '${DOORBELL.single}:' .. v .. ':' .. epoch .. ':' .. last)
  elseif inline_size <= inline then
    redis.call('PUBLISH', channel, '${DOORBELL.group}:' .. v .. ':' .. epoch .. ':' .. table.concat(inline_all, '\\n'))
  else
    redis.call('PUBLISH', channel, '${DOORBELL.single}:' .. v .. ':' .. epoch)
  end
end
out[#out + 1] = epoch
return out
`;

// Changes after a version, bounded in count and in bytes (at least one change: an oversized one travels
// alone). Read in growing chunks, so Redis never holds more than the budget and one chunk for a reply.
// KEYS: meta, log   ARGV: after, limit, maxBytes
// Returns: head, epoch (nil when none), then streamId, changeJson pairs
export const CHANGES = `
local hv = redis.call('HMGET', KEYS[1], 'version', 'epoch')
local out = {hv[1] or '0', hv[2]}
local after, limit, maxb = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if after >= tonumber(hv[1] or '0') then return out end
local start = (after + 1) .. '-0'
local n, bytes, chunk = 0, 0, 1
while n < limit do
  local es = redis.call('XRANGE', KEYS[2], start, '+', 'COUNT', math.min(chunk, limit - n))
  if #es == 0 then return out end
  for _, e in ipairs(es) do
    local c = e[2][2]
    if n > 0 and bytes + #c > maxb then return out end
    out[#out + 1] = e[1]
    out[#out + 1] = c
    n = n + 1
    bytes = bytes + #c
    if n >= limit then return out end
  end
  start = '(' .. es[#es][1]
  if chunk < 64 then chunk = chunk * 2 end
end
return out
`;

// KEYS: meta   ARGV: epochCandidate
export const ENSURE_EPOCH = `
${ENSURE}
local epoch, head, head_id = ensure(KEYS[1], ARGV[1])
return {head, epoch, head_id}
`;

// A subscriber's hello: judged without creating anything (readers cannot create envs, invariant 10).
// KEYS: meta, log   ARGV: applied, helloEpoch, helloId
export const RESUME = `
${VERDICT}
local epoch = redis.call('HGET', KEYS[1], 'epoch') or ''
local head = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
local head_id = redis.call('HGET', KEYS[1], 'id') or ''
local v = verdict(KEYS[2], tonumber(ARGV[1]), ARGV[2], ARGV[3], epoch, head, head_id)
return {head, epoch, head_id, v}
`;

// KEYS: meta, log, sess, info, applied, leases, gone, ctl, pres
// ARGV: applied, helloEpoch, helloId, id, epochCandidate, session, replica, leaseMs, addr, recordTtlMs
export const OPEN_SESSION = `
${NOW_MS}
${VERDICT}
${PURGE}
${ENSURE}
local epoch, head, head_id = ensure(KEYS[1], ARGV[5])
local applied = tonumber(ARGV[1])
local v = verdict(KEYS[2], applied, ARGV[2], ARGV[3], epoch, head, head_id)
local id = ARGV[4]
local prev_sess = redis.call('HGET', KEYS[3], id)
local prev_raw = redis.call('HGET', KEYS[4], id)
local prev = nil
if prev_raw then prev = cjson.decode(prev_raw) end
local present = tonumber(redis.call('ZSCORE', KEYS[6], id) or '0') >= now
local since, applied_rec, applied_id = head, 0, ''
if v == 'resume' then
  since, applied_rec, applied_id = applied, applied, ARGV[3]
elseif present and prev and prev.since then
  since = math.min(prev.since, head)
end
local r1, r2, r3 = '', '', ''
if prev_sess and prev_sess ~= ARGV[6] and prev and prev.c == 1 and present then
  r1, r2, r3 = prev_sess, prev.r or '', prev.addr or ''
end
redis.call('HSET', KEYS[3], id, ARGV[6])
redis.call('HSET', KEYS[5], id, applied_rec .. ':' .. applied_id)
redis.call('HSET', KEYS[4], id, cjson.encode({r = ARGV[7], since = since, c = 1, t = now, seen = now, addr = ARGV[9], lm = tonumber(ARGV[8])}))
redis.call('HSET', KEYS[9], id, since .. '|1|' .. ARGV[7])
redis.call('ZADD', KEYS[6], now + tonumber(ARGV[8]), id)
redis.call('ZREM', KEYS[7], id)
purge(KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[9], now - tonumber(ARGV[10]))
redis.call('PUBLISH', KEYS[8], cjson.encode({t = 'join', id = id, s = ARGV[6], r = ARGV[7]}))
return {head, epoch, head_id, v, since, applied_rec, r1, r2, r3}
`;

// KEYS: sess, info, leases, gone, pres   ARGV: id, session, graceful, leaseMs
export const END_SESSION = `
${NOW_MS}
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
local raw = redis.call('HGET', KEYS[2], ARGV[1])
local rec = {}
if raw then rec = cjson.decode(raw) end
rec.c = 0
rec.seen = now
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(rec))
redis.call('HSET', KEYS[5], ARGV[1], (rec.since or 0) .. '|0|' .. (rec.r or ''))
if ARGV[3] == '1' then
  redis.call('ZREM', KEYS[3], ARGV[1])
else
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[1])
end
redis.call('ZADD', KEYS[4], now, ARGV[1])
return 1
`;

// KEYS: leases, sess   ARGV: leaseMs, (id, session)*   → ids whose current session is another one
export const RENEW = `
${NOW_MS}
local until_ms = now + tonumber(ARGV[1])
local lost = {}
for i = 2, #ARGV, 2 do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[i + 1] then
    redis.call('ZADD', KEYS[1], until_ms, ARGV[i])
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
`;

// KEYS: sess, applied, ctl   ARGV: summary, nChains, (version, chainId)*nChains, (id, session, version)*
// Acks are cumulative and belong to a session: a late ack of a replaced session is ignored,
// and a lower one never lowers the record. Chain ids travel once per acked version, not per ack.
export const ACKS = `
local chains = {}
local n = tonumber(ARGV[2])
for i = 3, 2 + 2 * n, 2 do chains[ARGV[i]] = ARGV[i + 1] end
for i = 3 + 2 * n, #ARGV, 3 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    local cur = redis.call('HGET', KEYS[2], ARGV[i])
    local cv = -1
    if cur then
      local sep = string.find(cur, ':', 1, true)
      if sep then cv = tonumber(string.sub(cur, 1, sep - 1)) else cv = tonumber(cur) end
    end
    if tonumber(ARGV[i + 2]) > cv then redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 2] .. ':' .. (chains[ARGV[i + 2]] or '')) end
  end
end
if ARGV[1] ~= '' then redis.call('PUBLISH', KEYS[3], ARGV[1]) end
return 1
`;

// KEYS: meta, log, sess, info, applied, leases, gone, pres   ARGV: recordTtlMs, withInfo ('1': the listing; else the waiting rules)
// An ack counts only if its chain id is the one this history has at that version (invariant 9):
// after a failover to a replica that lost versions, acks of the lost history do not vouch for new ones.
export const REGISTRY = `
${NOW_MS}
${ID_AT}
${PURGE}
purge(KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], now - tonumber(ARGV[1]))
local head = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
local head_id = redis.call('HGET', KEYS[1], 'id') or ''
local applied = redis.call('HGETALL', KEYS[5])
local known = {}
local valid = {}
for i = 1, #applied, 2 do
  local val = applied[i + 1]
  local sep = string.find(val, ':', 1, true)
  local v, cid = tonumber(val), ''
  if sep then v = tonumber(string.sub(val, 1, sep - 1)); cid = string.sub(val, sep + 1) end
  local ok = 1
  if v > head then ok = 0
  elseif v > 0 and cid ~= '' then
    local k = tostring(v)
    if known[k] == nil then known[k] = id_at(head, head_id, KEYS[2], v) end
    if known[k] ~= false and known[k] ~= cid then ok = 0 end
  end
  valid[#valid + 1] = ok
end
local details = KEYS[8]
if ARGV[2] == '1' then details = KEYS[4] end
return {now, redis.call('HGETALL', KEYS[3]), redis.call('HGETALL', details), applied, valid,
  redis.call('ZRANGE', KEYS[6], 0, -1, 'WITHSCORES')}
`;
