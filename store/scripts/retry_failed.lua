-- retry_failed: one bounded batch of "retry every FAILED task" (of one type, or of all).
-- KEYS[1]  tasks hash
-- KEYS[2]  set of task types seen
-- KEYS[3]  index key prefix
-- KEYS[4]  listing key prefix
-- ARGV[1]  wake channel
-- ARGV[2]  task type, or 0 for every type
-- ARGV[3]  limit: the most tasks this batch moves
-- Returns  how many tasks it moved back to PENDING (fewer than limit: none is left).
-- Keeps    each as retry.lua does: PENDING, due now, failed_attempts 0, version + 1, the last
--          failure kept; those that failed first go first. An index entry without a sound
--          record is left where it is (claim sets such entries aside). Cost O(T log N + limit).
local task_type = int_in(ARGV[2], 0, MAX_UINT32)
if not task_type then return invalid('type') end
local limit = int_in(ARGV[3], 1, 100000)
if not limit then return invalid('limit') end
local types = {task_type}
if task_type == 0 then types = redis.call('SMEMBERS', KEYS[2]) end

local now, moved = server_now_us(), 0
for _, text in ipairs(types) do
  local failed_key = index_key(KEYS[3], FAILED, tonumber(text))
  for _, task_id in ipairs(redis.call('ZRANGE', failed_key, 0, limit - moved - 1)) do
    local r = decode_or_nil(redis.call('HGET', KEYS[1], task_id))
    if r and r.state == FAILED then
      redis.call('ZREM', failed_key, task_id)
      r.state, r.flags, r.failed, r.next_at, r.version = PENDING, 0, 0, now, r.version + 1
      redis.call('HSET', KEYS[1], task_id, encode(r))
      redis.call('ZADD', index_key(KEYS[3], PENDING, r.type), now, task_id)
      relist(KEYS[4], FAILED, r, task_id)
      moved = moved + 1
    end
  end
  if moved >= limit then break end
end
if moved > 0 then redis.call('PUBLISH', ARGV[1], '') end
return moved
