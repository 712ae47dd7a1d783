#!lua flags=no-writes
-- inspect: a task's record and its last failure, read together.
-- KEYS[1]  tasks hash
-- KEYS[2]  errors hash (task id -> last failure)
-- ARGV[1]  task id
-- Returns  {record or false, failure or false}; both false when there is no such task.
-- Cost     O(1).
local packed = redis.call('HGET', KEYS[1], ARGV[1])
if not packed then return {false, false} end
return {packed, redis.call('HGET', KEYS[2], ARGV[1])}
