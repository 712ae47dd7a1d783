-- settle: record a batch of outcomes, each scheduled relative to the server's clock.
-- KEYS[1]  tasks hash
-- KEYS[2]  index key prefix
-- ARGV[1]  wake channel: published to when an outcome makes a task due now
-- ARGV[2..] five per change: task_id, expected version, state, failed_attempts, delay_us
-- Returns  {now_us, record1 or false, record2 or false, ...}: each change's record after the
--          write, or false where the task is missing or at another version (nothing written
--          for that change; the others still apply: each change stands alone).
-- Errors   'INVALID <what>' before the first write.
-- Keeps    next_attempt_at = server now + delay; version + 1; the leased flag cleared; the
--          record moves to the index of its new state.
local FIELDS = 5
local count = (#ARGV - 1) / FIELDS
if count < 1 or count ~= math.floor(count) then return invalid('argument count') end
for i = 0, count - 1 do
  local at = 2 + i * FIELDS
  if not int_in(ARGV[at + 1], 0, MAX_MICROS) then return invalid('version') end
  if not int_in(ARGV[at + 2], PENDING, FAILED) then return invalid('state') end
  if not int_in(ARGV[at + 3], 0, MAX_UINT32) then return invalid('failed_attempts') end
  if not int_in(ARGV[at + 4], 0, MAX_MICROS) then return invalid('delay') end
end

local now = server_now_us()
local reply, wake = {now}, false
for i = 0, count - 1 do
  local at = 2 + i * FIELDS
  local task_id = ARGV[at]
  local packed = redis.call('HGET', KEYS[1], task_id)
  local r = decode_or_nil(packed)
  if r and r.version == tonumber(ARGV[at + 1]) then
    redis.call('ZREM', index_key(KEYS[2], r.state, r.type), task_id)
    r.state, r.failed = tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
    r.next_at, r.flags, r.version = now + tonumber(ARGV[at + 4]), 0, r.version + 1
    packed = encode(r)
    redis.call('HSET', KEYS[1], task_id, packed)
    redis.call('ZADD', index_key(KEYS[2], r.state, r.type), r.next_at, task_id)
    reply[#reply + 1] = packed
    wake = wake or (r.state == PENDING and r.next_at <= now)
  else
    reply[#reply + 1] = false
  end
end
if wake then redis.call('PUBLISH', ARGV[1], '') end
return reply
