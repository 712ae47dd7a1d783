-- delete: remove tasks and everything kept for them, all or nothing.
-- KEYS[1]  tasks hash
-- KEYS[2]  index key prefix
-- KEYS[3]  listing key prefix
-- KEYS[4]  errors hash
-- ARGV[1..] task ids, none repeated
-- Returns  how many were deleted (all of them).
-- Errors   'MISSING <i>' (ARGV[i + 1] is not stored), 'INVALID task_ids'; both before the first
--          write.
-- Keeps    a deleted task leaves nothing behind (record, index and listing entries, failure),
--          so its task id may be put again. A run in progress then has its outcome refused:
--          settle finds no record at its version. Cost O(B log N) for B task ids.
local task_ids = task_ids_from(1)
if not task_ids then return invalid('task_ids') end
local found = {}
for i, task_id in ipairs(task_ids) do
  local packed = redis.call('HGET', KEYS[1], task_id)
  if not packed then return redis.error_reply('MISSING ' .. (i - 1)) end
  found[i] = decode_or_nil(packed)
end

for i, task_id in ipairs(task_ids) do
  drop(KEYS[1], KEYS[2], KEYS[3], KEYS[4], task_id, found[i])
end
return #task_ids
