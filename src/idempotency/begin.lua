-- Looks up a request_id entry shared by the replicas (src/idempotency/shared.rs)
-- and, when there is none, claims it for this call: one script, one round trip.
--
-- KEYS[1]  the entry: a hash {v, fp, state, token[, answer]}
-- ARGV[1]  the request's fingerprint (hex)
-- ARGV[2]  the claim's token (a fresh UUID, the leader's own)
-- ARGV[3]  the claim's lease, in ms (renewed while the call runs)
--
-- Returns one of
--   {'lead', corrupt}            claimed; corrupt is '1' when what was there
--                                could not be read and was replaced
--   {'reused'}                   another request holds the key
--   {'running', token}           the same request runs elsewhere
--   {'answered', token, answer}  the same request was answered
--
-- An entry this layout does not describe (another type, another version,
-- fields missing, a running claim without a lease) is replaced, never
-- answered from.

local key = KEYS[1]
local corrupt = '0'
local kind = redis.call('TYPE', key).ok
if kind == 'hash' then
  local e = redis.call('HMGET', key, 'v', 'fp', 'state', 'token', 'answer')
  local v, fp, state, token, answer = e[1], e[2], e[3], e[4], e[5]
  if v == '1' and fp and token then
    if fp ~= ARGV[1] then
      return {'reused'}
    end
    if state == 'answered' and answer then
      return {'answered', token, answer}
    end
    if state == 'running' and redis.call('PTTL', key) > 0 then
      return {'running', token}
    end
  end
  corrupt = '1'
elseif kind ~= 'none' then
  corrupt = '1'
end
if corrupt == '1' then
  redis.call('DEL', key)
end
redis.call('HSET', key, 'v', '1', 'fp', ARGV[1], 'state', 'running', 'token', ARGV[2])
redis.call('PEXPIRE', key, ARGV[3])
return {'lead', corrupt}
