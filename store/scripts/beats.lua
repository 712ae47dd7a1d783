#!lua flags=no-writes
-- beats: the members that beat within the last `within` microseconds, latest first.
-- KEYS[1]  presence sorted set: member -> its last beat, in server microseconds
-- KEYS[2]  presence hash: member -> its payload
-- ARGV[1]  within in microseconds (1..2^53), ARGV[2] limit (1..1000)
-- Returns  {now_us, member1, last_beat1_us, payload1, member2, ...}, at most limit members.
-- Errors   INVALID within | limit.
-- Cost     O(log M + limit) for M members.
local within = int_in(ARGV[1], 1, MAX_MICROS)
if not within then return invalid('within') end
local limit = int_in(ARGV[2], 1, 1000)
if not limit then return invalid('limit') end

local now = server_now_us()
local recent = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', now - within, 'WITHSCORES',
  'LIMIT', 0, limit)
local reply = {now}
for i = 1, #recent, 2 do
  local payload = redis.call('HGET', KEYS[2], recent[i])
  if payload then
    reply[#reply + 1] = recent[i]
    reply[#reply + 1] = recent[i + 1]
    reply[#reply + 1] = payload
  end
end
return reply
