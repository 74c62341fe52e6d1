-- Ends a claim on a shared request_id entry (src/idempotency/shared.rs), if
-- the claim is still the caller's: with an answer kept for the window, or
-- (no answer) by removing the entry so that the next call runs.
--
-- KEYS[1]  the entry
-- ARGV[1]  the claim's token
-- ARGV[2]  'remember', 'renew' or 'forget'
-- ARGV[3]  remember: the window, in ms; renew: the lease, in ms
-- ARGV[4]  remember: the encoded answer
--
-- Returns 1 when the entry was the caller's (and was changed), else 0: the
-- claim expired and the entry is gone or another call's.

local key = KEYS[1]
if redis.call('TYPE', key).ok ~= 'hash' then
  return 0
end
if redis.call('HGET', key, 'token') ~= ARGV[1] then
  return 0
end
local what = ARGV[2]
if what == 'forget' then
  redis.call('DEL', key)
  return 1
end
if redis.call('HGET', key, 'state') ~= 'running' then
  return 0
end
if what == 'remember' then
  redis.call('HSET', key, 'state', 'answered', 'answer', ARGV[4])
  redis.call('PEXPIRE', key, ARGV[3])
  return 1
end
if what == 'renew' then
  redis.call('PEXPIRE', key, ARGV[3])
  return 1
end
return 0
