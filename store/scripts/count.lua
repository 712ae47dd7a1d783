#!lua flags=no-writes
-- count: how many records are in a state.
-- KEYS[1]  set of task types seen
-- KEYS[2]  index key prefix
-- ARGV[1]  state
-- Returns  the count: the sum of the state's index sizes over every type (O(types)).
local state = int_in(ARGV[1], PENDING, FAILED)
if not state then return invalid('state') end
local total = 0
for _, task_type in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  total = total + redis.call('ZCARD', index_key(KEYS[2], state, tonumber(task_type)))
end
return total
