-- extend: push the leases a worker still holds forward, so a slow healthy handler never
-- runs twice.
-- KEYS[1]  tasks hash
-- KEYS[2]  index key prefix
-- ARGV[1]  lease_us
-- ARGV[2..] pairs: task_id, version the worker claimed it at
-- Returns  {now_us, 1 or 0 per pair}: 0 where the lease is lost (the task is missing, at
--          another version, or no longer leased); nothing is written for those.
-- Keeps    version unchanged: only the holder of the claim's version can extend or settle.
local lease = int_in(ARGV[1], 0, MAX_MICROS)
if not lease then return invalid('lease') end
if #ARGV % 2 ~= 1 then return invalid('argument count') end
for i = 3, #ARGV, 2 do
  if not int_in(ARGV[i], 0, MAX_MICROS) then return invalid('version') end
end

local now = server_now_us()
local reply = {now}
for i = 2, #ARGV, 2 do
  local task_id = ARGV[i]
  local packed = redis.call('HGET', KEYS[1], task_id)
  local r = decode_or_nil(packed)
  if r and r.version == tonumber(ARGV[i + 1]) and r.state == PENDING
      and r.flags % 2 == FLAG_LEASED then
    r.next_at = now + lease
    redis.call('HSET', KEYS[1], task_id, encode(r))
    redis.call('ZADD', index_key(KEYS[2], PENDING, r.type), r.next_at, task_id)
    reply[#reply + 1] = 1
  else
    reply[#reply + 1] = 0
  end
end
return reply
