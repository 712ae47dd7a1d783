-- settle: record a batch of outcomes, each scheduled relative to the server's clock.
-- KEYS[1]  tasks hash
-- KEYS[2]  index key prefix
-- ARGV[1]  wake channel: published to when an outcome makes a task due now
-- ARGV[2]  the changes, back to back, each (big-endian): I2 task id length, task id,
--          i8 expected version, B state, I4 failed_attempts, i8 delay_us
-- Returns  {now_us, 1 or 0 per change}: 0 where the task is missing or at another version
--          (nothing written for that change; the others still apply: each stands alone).
-- Errors   'INVALID <what>' before the first write.
-- Keeps    next_attempt_at = server now + delay; version + 1; the leased flag cleared; the
--          record moves to the index of its new state.
local batch = ARGV[2]
local changes, at = {}, 1
while at <= #batch do
  local task_id, v
  task_id, v, at = read_entry(batch, at, '>i8BI4i8', 21)
  if not task_id then return invalid('changes') end
  local c = {task_id = task_id, version = v[1], state = v[2], failed = v[3], delay = v[4]}
  if c.state < PENDING or c.state > FAILED then return invalid('state') end
  if c.delay < 0 or c.delay > MAX_MICROS then return invalid('delay') end
  changes[#changes + 1] = c
end
if #changes == 0 then return invalid('changes') end

local now = server_now_us()
local reply, wake = {now}, false
for _, c in ipairs(changes) do
  local r = decode_or_nil(redis.call('HGET', KEYS[1], c.task_id))
  if r and r.version == c.version then
    redis.call('ZREM', index_key(KEYS[2], r.state, r.type), c.task_id)
    r.state, r.failed, r.next_at, r.flags, r.version =
      c.state, c.failed, now + c.delay, 0, r.version + 1
    redis.call('HSET', KEYS[1], c.task_id, encode(r))
    redis.call('ZADD', index_key(KEYS[2], r.state, r.type), r.next_at, c.task_id)
    reply[#reply + 1] = 1
    wake = wake or (r.state == PENDING and c.delay == 0)
  else
    reply[#reply + 1] = 0
  end
end
if wake then redis.call('PUBLISH', ARGV[1], '') end
return reply
