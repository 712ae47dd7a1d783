-- put_all: store a batch of new task records, all or nothing.
-- KEYS[1]  tasks hash (task id -> record)
-- KEYS[2]  id sequence (string counter)
-- KEYS[3]  set of task types seen
-- KEYS[4]  index key prefix ('<prefix><state>:<type>' sorted sets)
-- KEYS[5]  listing key prefix (see list_add in _lib.lua)
-- ARGV[1]  wake channel: published to when a stored task is PENDING and due now
-- ARGV[2]  the batch, records back to back, each (big-endian):
--            I2 task id length, task id, I4 type, B state, I4 failed_attempts,
--            B which timestamps are given (1 next_attempt_at, 2 created_at), i8 next_attempt_at_us,
--            i8 created_at_us, I4 tail length, tail (see _lib.lua)
--          One argument for the whole batch: redis-py encodes a thousand small arguments far
--          slower than one string.
-- Returns  {first_id, now_us}: ids first_id.. in batch order; a missing created_at became now_us
--          and a missing next_attempt_at became created_at.
-- Errors   'EXISTS <i>' (record i, 0-based, repeats a task id or is stored already),
--          'INVALID <what>'; both before the first write.
-- Keeps    ids strictly increasing per namespace; each record in exactly one index and one
--          listing bucket.
local batch = ARGV[2]
local records, seen, at = {}, {}, 1
while at <= #batch do
  local task_id, v
  task_id, v, at = read_entry(batch, at, '>I4BI4Bi8i8I4', 30)
  if not task_id then return invalid('batch') end
  local r = {task_id = task_id, flags = 0, version = 1, type = v[1], state = v[2],
    failed = v[3], next_at = v[5], created = v[6]}
  local given, tail_size = v[4], v[7]
  r.tail = string.sub(batch, at, at + tail_size - 1)
  at = at + tail_size
  if #r.tail ~= tail_size or tail_size < 4 then return invalid('batch') end
  if seen[task_id] or redis.call('HEXISTS', KEYS[1], task_id) == 1 then
    return redis.error_reply('EXISTS ' .. #records)
  end
  if r.type < 1 then return invalid('type') end
  if r.state < PENDING or r.state > FAILED then return invalid('state') end
  if given % 2 == 0 then r.next_at = nil end
  if given < 2 then r.created = nil end
  for _, t in ipairs({r.next_at or 0, r.created or 0}) do
    if t < -MAX_MICROS or t > MAX_MICROS then return invalid('timestamp') end
  end
  seen[task_id] = true
  records[#records + 1] = r
end
if #records == 0 then return invalid('batch') end

local now = server_now_us()
local first_id = redis.call('INCRBY', KEYS[2], #records) - #records + 1
local types, wake = {}, false
for i, r in ipairs(records) do
  r.id = first_id + i - 1
  r.created = r.created or now
  r.next_at = r.next_at or r.created
  redis.call('HSET', KEYS[1], r.task_id, encode(r))
  redis.call('ZADD', index_key(KEYS[4], r.state, r.type), r.next_at, r.task_id)
  list_add(KEYS[5], r.state, r.id, r.task_id)
  types[r.type] = true
  wake = wake or (r.state == PENDING and r.next_at <= now)
end
for task_type in pairs(types) do
  redis.call('SADD', KEYS[3], string.format('%d', task_type))
end
if wake then redis.call('PUBLISH', ARGV[1], '') end
return {first_id, now}
