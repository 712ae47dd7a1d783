-- prune: delete one small slice of the CONFIRMED and FAILED tasks past their retention.
-- KEYS[1]  tasks hash
-- KEYS[2]  set of task types seen
-- KEYS[3]  index key prefix
-- KEYS[4]  listing key prefix
-- KEYS[5]  errors hash
-- ARGV[1]  confirmed retention in µs (0 keeps CONFIRMED tasks forever)
-- ARGV[2]  failed retention in µs (0 keeps FAILED tasks forever)
-- ARGV[3]  limit: the most tasks this slice deletes
-- Returns  {confirmed pruned, failed pruned}: fewer than limit in all means none is left now.
-- Keeps    a task is past retention when its next_attempt_at (for a finished task, the instant
--          it finished) is at or before the server's now minus the retention. A pruned task
--          leaves nothing behind, as delete.lua. Workers prune concurrently without
--          coordination: each slice is atomic, so two never delete the same task (each counts
--          only what it deleted). Cost O(T log N + limit log N).
local keep = {}
keep[CONFIRMED] = int_in(ARGV[1], 0, MAX_MICROS)
keep[FAILED] = int_in(ARGV[2], 0, MAX_MICROS)
if not keep[CONFIRMED] then return invalid('confirmed retention') end
if not keep[FAILED] then return invalid('failed retention') end
local limit = int_in(ARGV[3], 1, 100000)
if not limit then return invalid('limit') end

local now, pruned, left = server_now_us(), {0, 0, 0}, limit
for _, state in ipairs({CONFIRMED, FAILED}) do
  if keep[state] > 0 then
    for _, text in ipairs(redis.call('SMEMBERS', KEYS[2])) do
      if left == 0 then break end
      local key = index_key(KEYS[3], state, tonumber(text))
      local old = redis.call('ZRANGEBYSCORE', key, '-inf', now - keep[state], 'LIMIT', 0, left)
      for _, task_id in ipairs(old) do
        local r = decode_or_nil(redis.call('HGET', KEYS[1], task_id))
        redis.call('ZREM', key, task_id)
        -- An entry whose record is gone, damaged or in another state is only a stray entry.
        if r and r.state == state then
          drop(KEYS[1], KEYS[3], KEYS[4], KEYS[5], task_id, r)
          pruned[state] = pruned[state] + 1
        end
      end
      left = left - #old
    end
  end
end
return {pruned[CONFIRMED], pruned[FAILED]}
