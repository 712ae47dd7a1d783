#!lua flags=no-writes
-- stats: what the metrics endpoint shows, read in one consistent snapshot.
-- KEYS[1]  set of task types seen
-- KEYS[2]  index key prefix
-- Returns  {now_us, pending, confirmed, failed, ready, oldest_ready_us or -1, type, ready, ...}:
--          counts per state, PENDING tasks due now (leased tasks are due only when their lease
--          ends, so they are not counted), the earliest next_attempt_at among them, then one
--          (type, due now) pair for each type with any task due now.
-- Cost     O(types * log N).
local now = server_now_us()
local counts, ready, oldest, by_type = {0, 0, 0}, 0, nil, {}
for _, text in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local task_type = tonumber(text)
  for state = PENDING, FAILED do
    counts[state] = counts[state] + redis.call('ZCARD', index_key(KEYS[2], state, task_type))
  end
  local pending = index_key(KEYS[2], PENDING, task_type)
  local due = redis.call('ZCOUNT', pending, '-inf', now)
  ready = ready + due
  if due > 0 then
    by_type[#by_type + 1] = task_type
    by_type[#by_type + 1] = due
  end
  local first = redis.call('ZRANGE', pending, 0, 0, 'WITHSCORES')
  if first[2] and tonumber(first[2]) <= now and (oldest == nil or tonumber(first[2]) < oldest) then
    oldest = tonumber(first[2])
  end
end
local reply = {now, counts[1], counts[2], counts[3], ready, oldest or -1}
for _, value in ipairs(by_type) do
  reply[#reply + 1] = value
end
return reply
