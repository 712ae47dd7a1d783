#!lua flags=no-writes
-- count_by_type: how many records each task type has in each state, in one snapshot.
-- KEYS[1]  set of task types seen
-- KEYS[2]  index key prefix
-- Returns  {type1, pending1, confirmed1, failed1, type2, ...}: every type ever stored, in the
--          set's order (the caller sorts).
-- Cost     O(types): three ZCARDs a type, whatever the number of tasks.
local reply = {}
for _, text in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local task_type = tonumber(text)
  reply[#reply + 1] = task_type
  for state = PENDING, FAILED do
    reply[#reply + 1] = redis.call('ZCARD', index_key(KEYS[2], state, task_type))
  end
end
return reply
