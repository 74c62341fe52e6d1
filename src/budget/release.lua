-- Re-stamps a token with the server's time now: the time its Graph answer
-- came back, no earlier than Graph counted it (src/budget/redis.rs).
--
-- KEYS[1]  the request budget's log
-- KEYS[2]  the write budget's log (touched only when ARGV[1] is "1")
-- ARGV[1]  "1" when the token was a write's
-- ARGV[2]  window, in ms
-- ARGV[3]  member (a lease's token: "<prefix>#<i>")
--
-- XX: only an entry still in the log moves (a token never granted, or
-- already gone, is not added); GT: an entry only ever moves later. Returns
-- how many entries moved (0 .. 2).

local t = redis.call('TIME')
local now = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local ttl = tonumber(ARGV[2]) + 1000
local moved = redis.call('ZADD', KEYS[1], 'XX', 'GT', 'CH', now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], ttl)
if ARGV[1] == '1' then
  moved = moved + redis.call('ZADD', KEYS[2], 'XX', 'GT', 'CH', now, ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return moved
