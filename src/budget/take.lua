-- Takes up to n tokens from the shared sliding-window logs of one budget
-- (src/budget/redis.rs), atomically: one script, one round trip.
--
-- KEYS[1]  the request budget's log (a sorted set: member -> time in ms)
-- KEYS[2]  the write budget's log (touched only when ARGV[1] is "1")
-- ARGV[1]  "1" when the request is a write (it needs a token of both)
-- ARGV[2]  request limit per window
-- ARGV[3]  write limit per window
-- ARGV[4]  window, in ms
-- ARGV[5]  member: the token's name (n = 1) or the lease's prefix
-- ARGV[6]  n: tokens wanted (a lease when > 1; members "<prefix>#<i>",
--          i = 0 .. granted - 1)
--
-- Returns {granted, wait_ms, requests_used, writes_used}: granted tokens
-- (0 .. n; fewer than n when the logs have less room), and when none, the
-- time from now until the earliest entry in the way leaves the window (the
-- larger of the two logs' when both are full); then how many tokens each
-- log holds in the window after this take, every replica's together (a
-- replica that loses the store starts its local share from them).
--
-- Time is the server's (TIME), so replicas' clocks do not matter; Redis 7
-- replicates the script's effects, not the script, so TIME is allowed.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local write = ARGV[1] == '1'
local window = tonumber(ARGV[4])
local member = ARGV[5]
local wanted = tonumber(ARGV[6])
-- A key lives a little past the window: an idle budget leaves nothing behind.
local ttl = window + 1000

local function ms(x)
  return string.format('%.0f', x)
end

-- Room left in one log (after dropping what left the window), and when none,
-- the wait for one slot.
local function room(key, limit)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ms(now - window))
  if limit <= 0 then
    return 0, window
  end
  local count = redis.call('ZCARD', key)
  if count < limit then
    return limit - count, 0
  end
  -- One slot frees when every entry up to rank count - limit has left.
  local rank = count - limit
  local entry = redis.call('ZRANGE', key, rank, rank, 'WITHSCORES')
  local wait = window
  if entry[2] then
    wait = tonumber(entry[2]) + window - now
  end
  if wait < 1 then
    wait = 1
  elseif wait > window then
    -- An entry stamped in the future (a failover to a server whose clock is
    -- ahead): never ask for more than one window.
    wait = window
  end
  return 0, wait
end

local free, wait = room(KEYS[1], tonumber(ARGV[2]))
if write then
  local wfree, wwait = room(KEYS[2], tonumber(ARGV[3]))
  if wfree < free then
    free = wfree
  end
  if wwait > wait then
    wait = wwait
  end
end
local function used()
  local wkey = KEYS[2]
  if not write then
    redis.call('ZREMRANGEBYSCORE', wkey, '-inf', ms(now - window))
  end
  return redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', wkey)
end

if free <= 0 then
  local r, w = used()
  return {0, wait, r, w}
end

local n = wanted
if n > free then
  n = free
end
local args = {}
local stamp = ms(now)
if wanted == 1 then
  args[1] = stamp
  args[2] = member
else
  for i = 1, n do
    args[#args + 1] = stamp
    args[#args + 1] = member .. '#' .. (i - 1)
  end
end
redis.call('ZADD', KEYS[1], unpack(args))
redis.call('PEXPIRE', KEYS[1], ttl)
if write then
  redis.call('ZADD', KEYS[2], unpack(args))
  redis.call('PEXPIRE', KEYS[2], ttl)
end
local r, w = used()
return {n, 0, r, w}
