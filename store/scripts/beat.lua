-- beat: a member (a worker process) says it is alive and what it reports; members silent for
-- longer than forget_after are forgotten.
-- KEYS[1]  presence sorted set: member -> its last beat, in server microseconds
-- KEYS[2]  presence hash: member -> its payload (opaque bytes: the store never reads them)
-- ARGV[1]  member (1..256 bytes), ARGV[2] payload (at most 8192 bytes),
-- ARGV[3]  forget_after in microseconds (1..2^53)
-- Returns  the server's now in microseconds.
-- Errors   INVALID member | payload | forget_after, before any write.
-- Invariant every member of the hash is in the sorted set and the other way round. At most 100
--          silent members are forgotten per call, so a call stays O(log M) however many left.
local member, payload = ARGV[1], ARGV[2]
if string.len(member) < 1 or string.len(member) > 256 then return invalid('member') end
if string.len(payload) > 8192 then return invalid('payload') end
local forget_after = int_in(ARGV[3], 1, MAX_MICROS)
if not forget_after then return invalid('forget_after') end

local now = server_now_us()
local silent = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - forget_after, 'LIMIT', 0, 100)
if #silent > 0 then
  redis.call('ZREM', KEYS[1], unpack(silent))
  redis.call('HDEL', KEYS[2], unpack(silent))
end
redis.call('ZADD', KEYS[1], now, member)
redis.call('HSET', KEYS[2], member, payload)
return now
