-- Puts a replica's tokens of the last window back into the shared logs
-- (src/budget/redis.rs), when it returns to the store after a fallback: the
-- tokens it spent alone were never logged there, and a Redis that restarted
-- has lost every token. One round trip.
--
-- KEYS[1]  the request budget's log
-- KEYS[2]  the write budget's log
-- ARGV[1]  window, in ms
-- ARGV[2 + 3i], ARGV[3 + 3i], ARGV[4 + 3i]  for each token: its member, its
--          age in ms (from its answer to now), "1" when it was a write's
--
-- NX: a token the store still holds keeps its entry (and its time), so
-- nothing is counted twice. Returns how many entries were added.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local added = 0
local i = 2
while ARGV[i] do
  local member = ARGV[i]
  local age = tonumber(ARGV[i + 1])
  if age and age >= 0 and age < window then
    local stamp = string.format('%.0f', now - age)
    added = added + redis.call('ZADD', KEYS[1], 'NX', stamp, member)
    if ARGV[i + 2] == '1' then
      added = added + redis.call('ZADD', KEYS[2], 'NX', stamp, member)
    end
  end
  i = i + 3
end
local ttl = window + 1000
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return added
