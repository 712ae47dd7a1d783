#!lua flags=no-writes
-- stats: what the metrics endpoint shows, read in one consistent snapshot.
-- KEYS[1]  set of task types seen
-- KEYS[2]  index key prefix
-- Returns  {now_us, pending, confirmed, failed, ready, oldest_ready_us or -1}: counts per
--          state, PENDING tasks due now (leased tasks are due only when their lease ends, so
--          they are not counted) and the earliest next_attempt_at among them.
-- Cost     O(types * log N).
local now = server_now_us()
local counts, ready, oldest = {0, 0, 0}, 0, nil
for _, text in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local task_type = tonumber(text)
  for state = PENDING, FAILED do
    counts[state] = counts[state] + redis.call('ZCARD', index_key(KEYS[2], state, task_type))
  end
  local pending = index_key(KEYS[2], PENDING, task_type)
  ready = ready + redis.call('ZCOUNT', pending, '-inf', now)
  local first = redis.call('ZRANGE', pending, 0, 0, 'WITHSCORES')
  if first[2] and tonumber(first[2]) <= now and (oldest == nil or tonumber(first[2]) < oldest) then
    oldest = tonumber(first[2])
  end
end
return {now, counts[1], counts[2], counts[3], ready, oldest or -1}
