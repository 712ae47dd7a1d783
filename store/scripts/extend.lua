-- extend: push the leases a worker still holds forward, so a slow healthy handler never
-- runs twice.
-- KEYS[1]  tasks hash
-- KEYS[2]  index key prefix
-- ARGV[1]  lease_us
-- ARGV[2]  the leases, back to back, each (big-endian): I2 task id length, task id,
--          i8 the version the worker claimed it at
-- Returns  {now_us, 1 or 0 per lease}: 0 where the lease is lost (the task is missing, at
--          another version, or no longer leased); nothing is written for those.
-- Keeps    version unchanged: only the holder of the claim's version can extend or settle.
local lease = int_in(ARGV[1], 0, MAX_MICROS)
if not lease then return invalid('lease') end
local batch = ARGV[2]
local leases, at = {}, 1
while at <= #batch do
  local task_id, v
  task_id, v, at = read_entry(batch, at, '>i8', 8)
  if not task_id then return invalid('leases') end
  leases[#leases + 1] = {task_id, v[1]}
end

local now = server_now_us()
local reply = {now}
for _, held in ipairs(leases) do
  local r = decode_or_nil(redis.call('HGET', KEYS[1], held[1]))
  if r and r.version == held[2] and r.state == PENDING and r.flags % 2 == FLAG_LEASED then
    r.next_at = now + lease
    redis.call('HSET', KEYS[1], held[1], encode(r))
    redis.call('ZADD', index_key(KEYS[2], PENDING, r.type), r.next_at, held[1])
    reply[#reply + 1] = 1
  else
    reply[#reply + 1] = 0
  end
end
return reply
