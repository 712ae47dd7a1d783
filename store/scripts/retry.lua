-- retry: send FAILED tasks back to PENDING, due now, failed_attempts 0, all or nothing.
-- KEYS[1]  tasks hash
-- KEYS[2]  index key prefix
-- KEYS[3]  listing key prefix
-- ARGV[1]  wake channel: published to, since the tasks are due now
-- ARGV[2..] task ids, none repeated
-- Returns  how many were retried (all of them).
-- Errors   'MISSING <i>' (ARGV[i + 2] is not stored), 'STATE <i> <state>' (it is not FAILED),
--          'INVALID task_ids'; all before the first write.
-- Keeps    version + 1; next_attempt_at = the server's now; the last failure is kept (it is
--          the reason the task had failed). Cost O(B log N).
local task_ids = task_ids_from(2)
if not task_ids then return invalid('task_ids') end
local found = {}
for i, task_id in ipairs(task_ids) do
  local r = decode_or_nil(redis.call('HGET', KEYS[1], task_id))
  if not r then return redis.error_reply('MISSING ' .. (i - 1)) end
  if r.state ~= FAILED then return redis.error_reply('STATE ' .. (i - 1) .. ' ' .. r.state) end
  found[i] = r
end

local now = server_now_us()
for i, task_id in ipairs(task_ids) do
  local r = found[i]
  redis.call('ZREM', index_key(KEYS[2], FAILED, r.type), task_id)
  r.state, r.flags, r.failed, r.next_at, r.version = PENDING, 0, 0, now, r.version + 1
  redis.call('HSET', KEYS[1], task_id, encode(r))
  redis.call('ZADD', index_key(KEYS[2], PENDING, r.type), now, task_id)
  relist(KEYS[3], FAILED, r, task_id)
end
redis.call('PUBLISH', ARGV[1], '')
return #task_ids
