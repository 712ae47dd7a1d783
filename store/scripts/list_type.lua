#!lua flags=no-writes
-- list_type: one page of the records of one state and one type, in their time index's order
-- (next_attempt_at, then task id bytewise), each with its last failure.
-- KEYS[1]  tasks hash
-- KEYS[2]  the time index of that state and type (sorted set scored by next_attempt_at in µs)
-- KEYS[3]  errors hash (task id -> last failure)
-- ARGV[1]  the cursor's next_attempt_at in µs, or '' for the first page
-- ARGV[2]  the cursor's task id (ignored without ARGV[1])
-- ARGV[3]  limit (1..10000), ARGV[4] 'asc' or 'desc'
-- Returns  {task_id1, record1, failure1 or '', task_id2, ...}: at most limit records strictly
--          after the cursor in the page's direction. When the cursor's task has left the index
--          (its state or due time changed), the page resumes after the cursor's instant.
-- Cost     O(log N + limit) whatever the number of tasks: ranks, never scans.
local cursor = nil
if ARGV[1] ~= '' then
  cursor = int_in(ARGV[1], -MAX_MICROS, MAX_MICROS)
  if not cursor then return invalid('cursor') end
end
local limit = int_in(ARGV[3], 1, 10000)
if not limit then return invalid('limit') end
local descending = ARGV[4] == 'desc'

local function start_rank()
  if not cursor then return 0 end
  local score = redis.call('ZSCORE', KEYS[2], ARGV[2])
  if score and tonumber(score) == cursor then
    if descending then return redis.call('ZREVRANK', KEYS[2], ARGV[2]) + 1 end
    return redis.call('ZRANK', KEYS[2], ARGV[2]) + 1
  end
  -- ARGV[1], not cursor: Lua prints a number with 14 digits, and µs since 1970 take 16.
  if descending then return redis.call('ZCOUNT', KEYS[2], ARGV[1], '+inf') end
  return redis.call('ZCOUNT', KEYS[2], '-inf', ARGV[1])
end

local first = start_rank()
local ids
if descending then
  ids = redis.call('ZREVRANGE', KEYS[2], first, first + limit - 1)
else
  ids = redis.call('ZRANGE', KEYS[2], first, first + limit - 1)
end
local reply = {}
for _, task_id in ipairs(ids) do
  local packed = redis.call('HGET', KEYS[1], task_id)
  if packed then
    reply[#reply + 1] = task_id
    reply[#reply + 1] = packed
    reply[#reply + 1] = redis.call('HGET', KEYS[3], task_id) or ''
  end
end
return reply
