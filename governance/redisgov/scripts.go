package redisgov

import "github.com/redis/go-redis/v9"

// Redis runs Lua 5.1, whose only number is a float64: integers are exact
// only up to 2^53. The scripts below never form a larger intermediate value.
// Token-bucket levels stay within ±limit×60e6 ≤ 6e15, and the one sum that
// could leave that range (a two-minute refill) is added in steps that clamp.
// Money (up to 1e18 nano-USD) is carried as two limbs, hi×1e9 + lo with
// 0 ≤ lo < 1e9, split and joined in Go with int64 arithmetic.

// rateScript is MemoryCounters' rateBucket, op by op. KEYS[1] is the bucket
// (fields l = level in unit-microseconds, t = last refill in Unix µs).
// ARGV: op ("take"|"give"), limit, units (clamped by the caller), now µs,
// idle TTL ms. Returns {allowed 0/1, level}.
var rateScript = redis.NewScript(`
local M = 60000000
local limit = tonumber(ARGV[2])
local units = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
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
local st = redis.call('HMGET', KEYS[1], 'l', 't')
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
if ARGV[1] == 'take' then
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
redis.call('HSET', KEYS[1], 'l', string.format('%.0f', level), 't', string.format('%.0f', last))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {ok, level}
`)

// liveLua reads the replica leases (KEYS[2]: replica id → lease expiry in
// Redis-server milliseconds) so that counts of dead replicas are dropped.
const liveLua = `
local t = redis.call('TIME')
local nowms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function live(rid)
  if rid == ARGV[1] then return true end
  local exp = redis.call('ZSCORE', KEYS[2], rid)
  return exp and tonumber(exp) >= nowms
end
`

// gaugeScript counts requests in flight per replica: KEYS[1] is a hash
// replica id → count, KEYS[2] the leases. ARGV: replica id, op
// ("acquire"|"release"|"count"|"set"), max (or the count to set), TTL ms.
// Acquire returns 1 if it took a slot; count returns the live total.
var gaugeScript = redis.NewScript(liveLua + `
local op = ARGV[2]
if op == 'release' then
  local n = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
  if n > 0 then redis.call('HINCRBY', KEYS[1], ARGV[1], -1) end
  return 1
end
if op == 'set' then
  if tonumber(ARGV[3]) > 0 then
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
    redis.call('PEXPIRE', KEYS[1], ARGV[4])
  else
    redis.call('HDEL', KEYS[1], ARGV[1])
  end
  return 1
end
local all = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #all, 2 do
  if live(all[i]) then
    total = total + tonumber(all[i + 1])
  elseif op == 'acquire' then
    redis.call('HDEL', KEYS[1], all[i])
  end
end
if op == 'count' then return total end
if total >= tonumber(ARGV[3]) then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
`)

// spendScript is MemoryCounters' budgetBucket with the holds kept per
// replica (fields hh:<replica>, hl:<replica>), so holds of a dead replica
// are dropped. KEYS[1] is the counter (p = period, sh/sl = spent), KEYS[2]
// the leases. ARGV: replica id, op, period, then op arguments as limbs:
//
//	hold:   limitHi, limitLo, amountHi, amountLo → {ok, spentHi, spentLo, heldHi, heldLo}
//	settle: heldHi, heldLo, actualHi, actualLo   → {beforeHi, beforeLo, afterHi, afterLo}
//	seed:   spentHi, spentLo                     → {1 if set}  (only when the period is not counted yet)
//	spent:                                       → {spentHi, spentLo, heldHi, heldLo}
//	sethold: heldHi, heldLo (this replica's holds, from its own books) → {1}
//
// The last ARGV is the TTL in ms (0: no expiry).
var spendScript = redis.NewScript(liveLua + `
local B = 1000000000
local function norm(h, l)
  local c = math.floor(l / B)
  return h + c, l - c * B
end
local function num(v) return tonumber(v or '0') or 0 end
local op = ARGV[2]
local period = tonumber(ARGV[3])
local ttl = tonumber(ARGV[#ARGV])
local me_h, me_l = 'hh:' .. ARGV[1], 'hl:' .. ARGV[1]
local all = redis.call('HGETALL', KEYS[1])
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
      redis.call('HDEL', KEYS[1], k, 'hl:' .. rid)
    end
  end
end
local function save()
  redis.call('HSET', KEYS[1], 'p', string.format('%.0f', p), 'sh', string.format('%.0f', sh), 'sl', string.format('%.0f', sl))
  if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end
end
local function addmine(dh, dl)
  local mh, ml = norm(num(f[me_h]) + dh, num(f[me_l]) + dl)
  if mh == 0 and ml == 0 then
    redis.call('HDEL', KEYS[1], me_h, me_l)
  else
    redis.call('HSET', KEYS[1], me_h, string.format('%.0f', mh), me_l, string.format('%.0f', ml))
  end
end
if op == 'spent' then
  if p ~= period then return {0, 0, hh, hl} end
  return {sh, sl, hh, hl}
end
if op == 'sethold' then
  local dh, dl = norm(tonumber(ARGV[4]) - num(f[me_h]), tonumber(ARGV[5]) - num(f[me_l]))
  addmine(dh, dl)
  -- A counter without a period keeps no expiry; any other gets one.
  if ttl > 0 and (not exists or redis.call('PTTL', KEYS[1]) >= 0) then redis.call('PEXPIRE', KEYS[1], ttl) end
  return {1}
end
if op == 'seed' then
  if exists and p == period then return {0} end
  p, sh, sl = period, tonumber(ARGV[4]), tonumber(ARGV[5])
  save()
  return {1}
end
if op == 'hold' then
  if p ~= period then p, sh, sl = period, 0, 0 end
  local lh, ll = tonumber(ARGV[4]), tonumber(ARGV[5])
  local ah, al = tonumber(ARGV[6]), tonumber(ARGV[7])
  local uh, ul = norm(sh + hh, sl + hl)
  local nh, nl = norm(uh + ah, ul + al)
  local limited = lh > 0 or ll > 0
  local full = uh > lh or (uh == lh and ul >= ll)
  local over = nh > lh or (nh == lh and nl > ll)
  save()
  if limited and (full or over) then return {0, sh, sl, hh, hl} end
  addmine(ah, al)
  hh, hl = norm(hh + ah, hl + al)
  return {1, sh, sl, hh, hl}
end
-- settle
addmine(-tonumber(ARGV[4]), -tonumber(ARGV[5]))
local bh, bl = sh, sl
if period == p then sh, sl = norm(sh + tonumber(ARGV[6]), sl + tonumber(ARGV[7])) end
save()
return {bh, bl, sh, sl}
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
