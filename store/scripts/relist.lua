-- relist: list records stored before the listing existed (an upgrade; `retryd migrate`).
-- KEYS[1]  tasks hash
-- KEYS[2]  listing key prefix
-- ARGV[1..] task ids (one HSCAN page of the tasks hash), none repeated
-- Returns  how many listing entries it added (0 for a record listed already, gone or damaged).
-- Errors   'INVALID task_ids' before the first write.
-- Keeps    a record is listed in its current state, read here, atomically: a script that moved
--          it since its id was scanned has listed it already (ZADD of an entry present is a
--          no-op), so running this any number of times, beside live workers, is safe.
--          Cost O(B log N) for B task ids.
local task_ids = task_ids_from(1)
if not task_ids then return invalid('task_ids') end
local added = 0
for _, task_id in ipairs(task_ids) do
  local r = decode_or_nil(redis.call('HGET', KEYS[1], task_id))
  if r then
    local bucket = list_bucket(r.id)
    local key = KEYS[2] .. num(r.state) .. ':' .. num(bucket)
    if redis.call('ZADD', key, r.id, task_id) == 1 then
      redis.call('ZADD', KEYS[2] .. num(r.state), bucket, num(bucket))
      added = added + 1
    end
  end
end
return added
