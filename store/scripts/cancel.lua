-- cancel: make PENDING tasks FAILED now, with the failure 'Cancelled: cancelled', all or nothing.
-- KEYS[1]  tasks hash
-- KEYS[2]  index key prefix
-- KEYS[3]  listing key prefix
-- KEYS[4]  errors hash
-- ARGV[1..] task ids, none repeated
-- Returns  {now_us, count}.
-- Errors   'MISSING <i>' (ARGV[i + 1] is not stored), 'STATE <i> <state>' (it is not PENDING),
--          'INVALID task_ids'; all before the first write.
-- Keeps    version + 1 and the leased flag cleared: a worker running the task has its outcome
--          (and its lease extensions) refused. failed_attempts unchanged; next_attempt_at = now,
--          the instant it finished, from which retention counts. Cost O(B log N).
local task_ids = task_ids_from(1)
if not task_ids then return invalid('task_ids') end
local found = {}
for i, task_id in ipairs(task_ids) do
  local r = decode_or_nil(redis.call('HGET', KEYS[1], task_id))
  if not r then return redis.error_reply('MISSING ' .. (i - 1)) end
  if r.state ~= PENDING then return redis.error_reply('STATE ' .. (i - 1) .. ' ' .. r.state) end
  found[i] = r
end

local now = server_now_us()
for i, task_id in ipairs(task_ids) do
  local r = found[i]
  redis.call('ZREM', index_key(KEYS[2], PENDING, r.type), task_id)
  r.state, r.flags, r.next_at, r.version = FAILED, 0, now, r.version + 1
  redis.call('HSET', KEYS[1], task_id, encode(r))
  redis.call('ZADD', index_key(KEYS[2], FAILED, r.type), now, task_id)
  relist(KEYS[3], PENDING, r, task_id)
  redis.call('HSET', KEYS[4], task_id, failure(now, r.failed, 'Cancelled', 'cancelled'))
end
return {now, #task_ids}
