-- settle: record a batch of outcomes, each scheduled relative to the server's clock.
-- KEYS[1]  tasks hash
-- KEYS[2]  index key prefix
-- KEYS[3]  listing key prefix
-- KEYS[4]  errors hash (task id -> last failure)
-- ARGV[1]  wake channel: published to when an outcome makes a task due now
-- ARGV[2]  the changes, back to back, each (big-endian): I2 task id length, task id,
--          i8 expected version, B state, I4 failed_attempts, i8 delay_us, I2 failure length,
--          failure: '' or I2 kind length, kind, message (a failed attempt's error, kept as
--          the task's last failure with the server's now and failed_attempts)
-- Returns  {now_us, 1 or 0 per change}: 0 where the task is missing or at another version
--          (nothing written for that change; the others still apply: each stands alone).
--          1 also where this very change is already applied (version + 1, its state and
--          failed_attempts, not leased): a batch re-sent after a lost reply or an unconfirmed
--          replication (replicas_to_ack) is answered as done, not as a conflict.
-- Errors   'INVALID <what>' before the first write.
-- Keeps    next_attempt_at = server now + delay; version + 1; the leased flag cleared; the
--          record moves to the index and listing of its new state. An already applied
--          change is written again unchanged, so that the WAIT after a re-sent batch covers it.
local batch = ARGV[2]
local changes, at = {}, 1
while at <= #batch do
  local task_id, v
  task_id, v, at = read_entry(batch, at, '>i8BI4i8I2', 23)
  if not task_id then return invalid('changes') end
  local c = {task_id = task_id, version = v[1], state = v[2], failed = v[3], delay = v[4]}
  c.failure = string.sub(batch, at, at + v[5] - 1)
  at = at + v[5]
  if #c.failure ~= v[5] then return invalid('changes') end
  if #c.failure > 0 and (#c.failure < 2 or struct.unpack('>I2', c.failure) + 2 > #c.failure) then
    return invalid('failure')
  end
  if c.state < PENDING or c.state > FAILED then return invalid('state') end
  if c.delay < 0 or c.delay > MAX_MICROS then return invalid('delay') end
  changes[#changes + 1] = c
end
if #changes == 0 then return invalid('changes') end

local now = server_now_us()
local reply, wake = {now}, false
for _, c in ipairs(changes) do
  local packed = redis.call('HGET', KEYS[1], c.task_id)
  local r = decode_or_nil(packed)
  if r and r.version == c.version + 1 and r.state == c.state and r.failed == c.failed
      and r.flags % 2 ~= FLAG_LEASED then
    redis.call('HSET', KEYS[1], c.task_id, packed)
    reply[#reply + 1] = 1
  elseif r and r.version == c.version then
    redis.call('ZREM', index_key(KEYS[2], r.state, r.type), c.task_id)
    local was = r.state
    r.state, r.failed, r.next_at, r.flags, r.version =
      c.state, c.failed, now + c.delay, 0, r.version + 1
    redis.call('HSET', KEYS[1], c.task_id, encode(r))
    redis.call('ZADD', index_key(KEYS[2], r.state, r.type), r.next_at, c.task_id)
    relist(KEYS[3], was, r, c.task_id)
    if #c.failure > 0 then
      redis.call('HSET', KEYS[4], c.task_id, struct.pack('>i8I4', now, c.failed) .. c.failure)
    end
    reply[#reply + 1] = 1
    wake = wake or (r.state == PENDING and c.delay == 0)
  else
    reply[#reply + 1] = 0
  end
end
if wake then redis.call('PUBLISH', ARGV[1], '') end
return reply
