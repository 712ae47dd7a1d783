-- put_all: store a batch of new task records, all or nothing.
-- KEYS[1]  tasks hash (task id -> record)
-- KEYS[2]  id sequence (string counter)
-- KEYS[3]  set of task types seen
-- KEYS[4]  index key prefix ('<prefix><state>:<type>' sorted sets)
-- ARGV[1]  wake channel: published to when a stored task is PENDING and due now
-- ARGV[2..] seven per record: task_id, type, state, failed_attempts,
--           next_attempt_at_us or '', created_at_us or '', tail (see _lib.lua)
-- Returns  {first_id, now_us}: ids first_id.. in batch order; '' timestamps became now_us
--          (created_at) and created_at (next_attempt_at).
-- Errors   'EXISTS <i>' (record i, 0-based, repeats a task id or is stored already),
--          'INVALID <what>'; both before the first write.
-- Keeps    ids strictly increasing per namespace; each record in exactly one index.
local FIELDS = 7
local count = (#ARGV - 1) / FIELDS
if count < 1 or count ~= math.floor(count) then return invalid('argument count') end

local seen = {}
for i = 0, count - 1 do
  local at = 2 + i * FIELDS
  local task_id = ARGV[at]
  if seen[task_id] or redis.call('HEXISTS', KEYS[1], task_id) == 1 then
    return redis.error_reply('EXISTS ' .. i)
  end
  seen[task_id] = true
  if not int_in(ARGV[at + 1], 1, MAX_UINT32) then return invalid('type') end
  if not int_in(ARGV[at + 2], PENDING, FAILED) then return invalid('state') end
  if not int_in(ARGV[at + 3], 0, MAX_UINT32) then return invalid('failed_attempts') end
  for k, name in ipairs({'next_attempt_at', 'created_at'}) do
    local text = ARGV[at + 3 + k]
    if text ~= '' and not int_in(text, -MAX_MICROS, MAX_MICROS) then return invalid(name) end
  end
  if string.len(ARGV[at + 6]) < 4 then return invalid('tail') end
end

local now = server_now_us()
local first_id = redis.call('INCRBY', KEYS[2], count) - count + 1
local types, wake = {}, false
for i = 0, count - 1 do
  local at = 2 + i * FIELDS
  local created = ARGV[at + 5] == '' and now or tonumber(ARGV[at + 5])
  local r = {id = first_id + i, version = 1, type = tonumber(ARGV[at + 1]),
    state = tonumber(ARGV[at + 2]), flags = 0, failed = tonumber(ARGV[at + 3]),
    next_at = ARGV[at + 4] == '' and created or tonumber(ARGV[at + 4]),
    created = created, tail = ARGV[at + 6]}
  redis.call('HSET', KEYS[1], ARGV[at], encode(r))
  redis.call('ZADD', index_key(KEYS[4], r.state, r.type), r.next_at, ARGV[at])
  types[r.type] = true
  wake = wake or (r.state == PENDING and r.next_at <= now)
end
for task_type in pairs(types) do
  redis.call('SADD', KEYS[3], string.format('%d', task_type))
end
if wake then redis.call('PUBLISH', ARGV[1], '') end
return {first_id, now}
