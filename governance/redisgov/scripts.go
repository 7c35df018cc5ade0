package redisgov

import "github.com/redis/go-redis/v9"

// Redis runs Lua 5.1, whose only number is a float64: integers are exact
// only up to 2^53. The scripts below never form a larger intermediate value.
// Token-bucket levels stay within ±limit×60e6 ≤ 6e15, and the one sum that
// could leave that range (a two-minute refill) is added in steps that clamp.
// Money (up to 1e18 nano-USD) is carried as two limbs, hi×1e9 + lo with
// 0 ≤ lo < 1e9, split and joined in Go with int64 arithmetic.

// rateLua is MemoryCounters' rateBucket, op by op, on the bucket at key
// (fields l = level in unit-microseconds, t = last refill in Unix µs): op
// "take" or "give", units clamped by the caller, now in µs, idle TTL in ms.
// It returns allowed (0/1) and the level.
const rateLua = `
local M = 60000000
local function rate(key, op, limit, units, now, ttl)
  local cap = limit * M
  -- min(l + x, cap) for 0 <= x <= cap and |l| <= 6e15, exact.
  local function add(l, x)
    if l <= 0 then return l + x end
    if x >= cap - l then return cap end
    return l + x
  end
  -- max(l - y, -cap) for 0 <= y <= cap and -cap <= l <= cap, exact.
  local function sub(l, y)
    if l >= 0 then return l - y end
    if y >= l + cap then return -cap end
    return l - y
  end
  local st = redis.call('HMGET', key, 'l', 't')
  local level, last
  if not st[1] then
    level, last = cap, now
  else
    level, last = tonumber(st[1]), tonumber(st[2])
    local elapsed = now - last
    if elapsed > 0 then
      if elapsed > 2 * M then elapsed = 2 * M end
      local first = elapsed
      if first > M then first = M end
      level = add(level, first * limit)
      level = add(level, (elapsed - first) * limit)
      last = now
    end
    if level > cap then level = cap end
    if level < -cap then level = -cap end
  end
  local ok = 1
  if op == 'take' then
    local need = units * M
    if level >= need and (units > 0 or level > 0) then
      level = level - need
    else
      ok = 0
    end
  elseif units >= 0 then
    level = add(level, units * M)
  else
    level = sub(level, -units * M)
  end
  redis.call('HSET', key, 'l', string.format('%.0f', level), 't', string.format('%.0f', last))
  redis.call('PEXPIRE', key, ttl)
  return ok, level
end
`

// rateScript runs rateLua on KEYS[1]. ARGV: op, limit, units, now µs, idle
// TTL ms. Returns {allowed 0/1, level}.
var rateScript = redis.NewScript(rateLua + `
local ok, level = rate(KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5])
return {ok, level}
`)

// liveLua reads the replica leases (at LEASE: replica id → lease expiry in
// Redis-server milliseconds) so that counts of dead replicas are dropped.
// Scripts set LEASE and ME (this replica's id) before it.
const liveLua = `
local t = redis.call('TIME')
local nowms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function live(rid)
  if rid == ME then return true end
  local exp = redis.call('ZSCORE', LEASE, rid)
  return exp and tonumber(exp) >= nowms
end
`

// gaugeLua counts requests in flight per replica: key is a hash replica id
// → count; op "acquire"|"release"|"count"|"set", arg the max (or the count
// to set). Acquire returns 1 if it took a slot; count returns the live total.
const gaugeLua = `
local function gauge(key, op, arg, ttl)
  if op == 'release' then
    local n = tonumber(redis.call('HGET', key, ME) or '0')
    if n > 0 then redis.call('HINCRBY', key, ME, -1) end
    return 1
  end
  if op == 'set' then
    if arg > 0 then
      redis.call('HSET', key, ME, arg)
      redis.call('PEXPIRE', key, ttl)
    else
      redis.call('HDEL', key, ME)
    end
    return 1
  end
  local all = redis.call('HGETALL', key)
  local total = 0
  for i = 1, #all, 2 do
    if live(all[i]) then
      total = total + tonumber(all[i + 1])
    elseif op == 'acquire' then
      redis.call('HDEL', key, all[i])
    end
  end
  if op == 'count' then return total end
  if total >= arg then return 0 end
  redis.call('HINCRBY', key, ME, 1)
  redis.call('PEXPIRE', key, ttl)
  return 1
end
`

// gaugeScript runs gaugeLua: KEYS[1] the gauge, KEYS[2] the leases. ARGV:
// replica id, op, arg, TTL ms.
var gaugeScript = redis.NewScript(`local LEASE, ME = KEYS[2], ARGV[1]` + liveLua + gaugeLua + `
return gauge(KEYS[1], ARGV[2], tonumber(ARGV[3]), ARGV[4])
`)

// spendLua is MemoryCounters' budgetBucket with the holds kept per replica
// (fields hh:<replica>, hl:<replica>), so holds of a dead replica are
// dropped. key is the counter (p = period, sh/sl = spent); a holds the op's
// arguments as limbs; ttl in ms (0: no expiry):
//
//	hold:   limitHi, limitLo, amountHi, amountLo → {ok, spentHi, spentLo, heldHi, heldLo, period}
//	        (a hold never takes the counter back to an earlier period: see MemoryCounters; period is where it counts)
//	settle: heldHi, heldLo, actualHi, actualLo   → {beforeHi, beforeLo, afterHi, afterLo}
//	seed:   spentHi, spentLo                     → {1 if set}  (only when the period is not counted yet)
//	spent:                                       → {spentHi, spentLo, heldHi, heldLo}
//	sethold: heldHi, heldLo (this replica's holds, from its own books) → {1}
const spendLua = `
local B = 1000000000
local function norm(h, l)
  local c = math.floor(l / B)
  return h + c, l - c * B
end
local function num(v) return tonumber(v or '0') or 0 end
local function spend(key, op, period, a, ttl)
  local me_h, me_l = 'hh:' .. ME, 'hl:' .. ME
  local all = redis.call('HGETALL', key)
  local f = {}
  for i = 1, #all, 2 do f[all[i]] = all[i + 1] end
  local exists = #all > 0
  local p = num(f['p'])
  local sh, sl = num(f['sh']), num(f['sl'])
  local hh, hl = 0, 0
  for k, v in pairs(f) do
    if string.sub(k, 1, 3) == 'hh:' then
      local rid = string.sub(k, 4)
      if live(rid) then
        hh, hl = norm(hh + num(v), hl + num(f['hl:' .. rid]))
      elseif op ~= 'spent' then
        redis.call('HDEL', key, k, 'hl:' .. rid)
      end
    end
  end
  local function save()
    redis.call('HSET', key, 'p', string.format('%.0f', p), 'sh', string.format('%.0f', sh), 'sl', string.format('%.0f', sl))
    if ttl > 0 then redis.call('PEXPIRE', key, ttl) else redis.call('PERSIST', key) end
  end
  local function addmine(dh, dl)
    local mh, ml = norm(num(f[me_h]) + dh, num(f[me_l]) + dl)
    if mh == 0 and ml == 0 then
      redis.call('HDEL', key, me_h, me_l)
    else
      redis.call('HSET', key, me_h, string.format('%.0f', mh), me_l, string.format('%.0f', ml))
    end
  end
  if op == 'spent' then
    if p ~= period then return {0, 0, hh, hl} end
    return {sh, sl, hh, hl}
  end
  if op == 'sethold' then
    local dh, dl = norm(a[1] - num(f[me_h]), a[2] - num(f[me_l]))
    addmine(dh, dl)
    -- A counter without a period keeps no expiry; any other gets one.
    if ttl > 0 and (not exists or redis.call('PTTL', key) >= 0) then redis.call('PEXPIRE', key, ttl) end
    return {1}
  end
  if op == 'seed' then
    if exists and p == period then return {0} end
    p, sh, sl = period, a[1], a[2]
    save()
    return {1}
  end
  if op == 'hold' then
    if period > p then p, sh, sl = period, 0, 0 end
    local lh, ll, ah, al = a[1], a[2], a[3], a[4]
    local uh, ul = norm(sh + hh, sl + hl)
    local nh, nl = norm(uh + ah, ul + al)
    local limited = lh > 0 or ll > 0
    local full = uh > lh or (uh == lh and ul >= ll)
    local over = nh > lh or (nh == lh and nl > ll)
    save()
    if limited and (full or over) then return {0, sh, sl, hh, hl, p} end
    addmine(ah, al)
    hh, hl = norm(hh + ah, hl + al)
    return {1, sh, sl, hh, hl, p}
  end
  -- settle
  addmine(-a[1], -a[2])
  local bh, bl = sh, sl
  if period == p then sh, sl = norm(sh + a[3], sl + a[4]) end
  save()
  return {bh, bl, sh, sl}
end
`

// spendScript runs spendLua: KEYS[1] the counter, KEYS[2] the leases. ARGV:
// replica id, op, period, the op's limbs, and last the TTL in ms.
var spendScript = redis.NewScript(`local LEASE, ME = KEYS[2], ARGV[1]` + liveLua + spendLua + `
local a = {}
for i = 4, #ARGV - 1 do a[#a + 1] = tonumber(ARGV[i]) end
return spend(KEYS[1], ARGV[2], tonumber(ARGV[3]), a, tonumber(ARGV[#ARGV]))
`)

// opStride is the number of ARGV each step of a batch script takes: the
// op, then five numbers. batchLua's S must match it.
const opStride = 6

// batchLua reads the head of the batch scripts' ARGV (five values) and
// their steps: opname(i) and arg(i, j) (j = 2..6) of step i.
const batchLua = `
local S = 6
local now, rttl, gttl, sttl = tonumber(ARGV[2]), ARGV[3], ARGV[4], tonumber(ARGV[5])
local out = {}
local function opname(i) return ARGV[5 + (i - 1) * S + 1] end
local function arg(i, j) return tonumber(ARGV[5 + (i - 1) * S + j]) end
local function ttlOf(period)
  if period == 0 then return 0 end
  return sttl
end
`

// reserveScript runs the takes, acquires and holds of one reservation (see
// governance.BatchCounters.ReserveBatch) in one call. KEYS[1] is the
// leases, KEYS[i+1] the counter of step i. ARGV: replica id, now µs, then
// the rate, gauge and spend TTLs in ms, then opStride per step:
//
//	take:    limit, units
//	acquire: max
//	hold:    period, limitHi, limitLo, amountHi, amountLo
//
// At the first denial it undoes the earlier steps, newest first, as the
// Governor's own rollback would (give, release, settle with no spend), and
// stops. Returns six numbers per step that ran: allowed, then the level of
// a take or spentHi, spentLo, heldHi, heldLo, period of a hold.
var reserveScript = redis.NewScript(`local LEASE, ME = KEYS[1], ARGV[1]` + liveLua + rateLua + gaugeLua + spendLua + batchLua + `
for i = 1, #KEYS - 1 do
  local op, key = opname(i), KEYS[i + 1]
  local r = {0, 0, 0, 0, 0, 0}
  if op == 'take' then
    r[1], r[2] = rate(key, 'take', arg(i, 2), arg(i, 3), now, rttl)
  elseif op == 'acquire' then
    r[1] = gauge(key, 'acquire', arg(i, 2), gttl)
  else
    r = spend(key, 'hold', arg(i, 2), {arg(i, 3), arg(i, 4), arg(i, 5), arg(i, 6)}, ttlOf(arg(i, 2)))
  end
  for k = 1, 6 do out[#out + 1] = r[k] end
  if r[1] == 0 then
    for j = i - 1, 1, -1 do
      local jop, jkey = opname(j), KEYS[j + 1]
      if jop == 'take' then
        rate(jkey, 'give', arg(j, 2), arg(j, 3), now, rttl)
      elseif jop == 'acquire' then
        gauge(jkey, 'release', 0, gttl)
      else
        spend(jkey, 'settle', arg(j, 2), {arg(j, 5), arg(j, 6), 0, 0}, ttlOf(arg(j, 2)))
      end
    end
    break
  end
end
return out
`)

// settleScript runs the gives, releases and settles of one reservation's
// end in one call. KEYS as in reserveScript; ARGV: replica id, now µs,
// rate TTL ms, gauge TTL ms, spend TTL ms, then opStride per step:
//
//	give:    limit, units
//	release:
//	settle:  period, heldHi, heldLo, actualHi, actualLo
//
// Returns per step {beforeHi, beforeLo, afterHi, afterLo} (zeros but for settles).
var settleScript = redis.NewScript(`local LEASE, ME = KEYS[1], ARGV[1]` + liveLua + rateLua + gaugeLua + spendLua + batchLua + `
for i = 1, #KEYS - 1 do
  local op, key = opname(i), KEYS[i + 1]
  local r = {0, 0, 0, 0}
  if op == 'give' then
    rate(key, 'give', arg(i, 2), arg(i, 3), now, rttl)
  elseif op == 'release' then
    gauge(key, 'release', 0, gttl)
  else
    r = spend(key, 'settle', arg(i, 2), {arg(i, 3), arg(i, 4), arg(i, 5), arg(i, 6)}, ttlOf(arg(i, 2)))
  end
  for k = 1, 4 do out[#out + 1] = r[k] end
end
return out
`)

// leaseScript renews this replica's lease (ARGV: replica id, lease ms) in
// the server's clock and forgets leases dead for an hour.
var leaseScript = redis.NewScript(`
local t = redis.call('TIME')
local nowms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], nowms + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', nowms - 3600000)
return 1
`)

// claimScript keeps the first owner of an id: KEYS[1] the owner key; ARGV:
// owner, TTL ms. Returns the owner after the call.
var claimScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
`)

// recordNameLua reads the "name" of the record enveloped in raw, nil when it
// has none: a record is the truth of its name, a names entry only a claim
// that a rename or a crash between the two writes may have left stale.
const recordNameLua = `
local function recordName(raw)
  if not raw then return nil end
  local ok, env = pcall(cjson.decode, raw)
  if ok and type(env) == 'table' and type(env.data) == 'table' and type(env.data.name) == 'string' then
    return env.data.name
  end
  return nil
end
`

// putIfScript writes record ARGV[1] = ARGV[2] into the hash KEYS[1] when
// precondition ARGV[3] (governance.PutNew 1, PutExisting 2) holds, no
// other record there is named ARGV[4] (when set) and the parent ARGV[7]
// (when set) is in the hash KEYS[3]; it claims the name in the names hash
// KEYS[2] and announces the change on channel ARGV[5] as replica ARGV[6].
// It answers ok, exists, gone, taken or orphan.
var putIfScript = redis.NewScript(recordNameLua + `
local id, name, parent = ARGV[1], ARGV[4], ARGV[7]
local present = redis.call('HEXISTS', KEYS[1], id) == 1
if ARGV[3] == '1' and present then return 'exists' end
if ARGV[3] == '2' and not present then return 'gone' end
if parent ~= '' and redis.call('HEXISTS', KEYS[3], parent) == 0 then return 'orphan' end
if name ~= '' then
  local holder = redis.call('HGET', KEYS[2], name)
  if holder and holder ~= id and recordName(redis.call('HGET', KEYS[1], holder)) == name then
    return 'taken'
  end
  redis.call('HSET', KEYS[2], name, id)
end
redis.call('HSET', KEYS[1], id, ARGV[2])
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 'ok'
`)

// deleteScript removes record ARGV[1] from the hash KEYS[1] with its name
// claim in KEYS[2], and announces the change on channel ARGV[2] as replica
// ARGV[3]. With ARGV[4] set, it first looks for records in the hash KEYS[3]
// whose field ARGV[4] holds the id: when there are any it deletes nothing
// and answers their names after 'in_use'. It answers {'ok'} otherwise.
var deleteScript = redis.NewScript(recordNameLua + `
local id, field = ARGV[1], ARGV[4]
if field ~= '' then
  local users = {}
  local all = redis.call('HGETALL', KEYS[3])
  for i = 1, #all, 2 do
    local ok, env = pcall(cjson.decode, all[i + 1])
    if ok and type(env) == 'table' and type(env.data) == 'table' and env.data[field] == id then
      users[#users + 1] = recordName(all[i + 1]) or all[i]
    end
  end
  if #users > 0 then
    table.insert(users, 1, 'in_use')
    return users
  end
end
local name = recordName(redis.call('HGET', KEYS[1], id))
if name and redis.call('HGET', KEYS[2], name) == id then redis.call('HDEL', KEYS[2], name) end
redis.call('HDEL', KEYS[1], id)
redis.call('PUBLISH', ARGV[2], ARGV[3])
return {'ok'}
`)
