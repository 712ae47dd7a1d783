-- claim: lease up to limit due PENDING tasks of the given types to one worker.
-- KEYS[1]  tasks hash
-- KEYS[2]  index key prefix
-- KEYS[3]  listing key prefix
-- KEYS[4]  errors hash (task id -> last failure)
-- ARGV[1]  lease_us: how long the claim holds before the task is due again
-- ARGV[2]  limit: the most tasks to lease
-- ARGV[3..] pairs: type, max_attempts for that type
-- Returns  {now_us, next_due_us or -1, {damaged task ids}, task_id1, record1, due_us1, ...}:
--          the leased
--          records (after the claim) with the next_attempt_at they were due at; next_due_us is
--          the earliest next_attempt_at left among the types' PENDING tasks, so that an idle
--          worker knows how long it may sleep.
-- Keeps    due is decided by the server's clock alone; a claim bumps version (fencing any
--          late outcome of an earlier holder), sets the leased flag and pushes
--          next_attempt_at to now + lease. A task still flagged as leased when claimed again
--          was abandoned by a crashed worker: that counts as a failed attempt, and at
--          max_attempts the task becomes FAILED instead of crashing workers forever; either
--          way the lost lease is recorded as the task's last failure ('LeaseExpired').
--          An index entry whose record is missing or damaged is moved to the sorted set
--          '<prefix>damaged' and reported, never claimed: one bad entry cannot wedge a queue.
--          Cost O(types * log N + limit): not-due tasks are never visited.
local lease = int_in(ARGV[1], 0, MAX_MICROS)
if not lease then return invalid('lease') end
local limit = int_in(ARGV[2], 1, 1000000)
if not limit then return invalid('limit') end
if #ARGV < 4 or #ARGV % 2 ~= 0 then return invalid('types') end
local max_attempts = {}
for i = 3, #ARGV, 2 do
  local task_type = int_in(ARGV[i], 1, MAX_UINT32)
  if not task_type then return invalid('type') end
  local most = int_in(ARGV[i + 1], 1, MAX_UINT32)
  if not most then return invalid('max_attempts') end
  max_attempts[task_type] = most
end

local now = server_now_us()
local due = {}
for task_type in pairs(max_attempts) do
  local found = redis.call('ZRANGEBYSCORE', index_key(KEYS[2], PENDING, task_type), '-inf', now,
    'WITHSCORES', 'LIMIT', 0, limit)
  for i = 1, #found, 2 do
    due[#due + 1] = {found[i], tonumber(found[i + 1])}
  end
end
-- Oldest due first across types, so no type starves another.
table.sort(due, function(a, b) return a[2] < b[2] end)

local damaged, reply = {}, {now, -1}
reply[3] = damaged

local function set_aside(task_id, due_at)
  for task_type in pairs(max_attempts) do
    redis.call('ZREM', index_key(KEYS[2], PENDING, task_type), task_id)
  end
  redis.call('ZADD', KEYS[2] .. 'damaged', due_at, task_id)
  damaged[#damaged + 1] = task_id
end

local function note_abandoned(task_id, r)
  redis.call('HSET', KEYS[4], task_id, failure(now, r.failed, 'LeaseExpired',
    'the lease ran out without an outcome: the worker that held it stopped or lost Redis'))
end

local function fail_abandoned(task_id, r)
  r.state, r.flags, r.next_at = FAILED, 0, now
  redis.call('ZREM', index_key(KEYS[2], PENDING, r.type), task_id)
  redis.call('ZADD', index_key(KEYS[2], FAILED, r.type), now, task_id)
  relist(KEYS[3], PENDING, r, task_id)
  redis.call('HSET', KEYS[1], task_id, encode(r))
end

local function lease_one(task_id, r, due_at)
  r.flags, r.next_at = FLAG_LEASED, now + lease
  local packed = encode(r)
  redis.call('HSET', KEYS[1], task_id, packed)
  redis.call('ZADD', index_key(KEYS[2], PENDING, r.type), r.next_at, task_id)
  reply[#reply + 1] = task_id
  reply[#reply + 1] = packed
  reply[#reply + 1] = due_at
end

for i = 1, math.min(limit, #due) do
  local task_id, due_at = due[i][1], due[i][2]
  local r = decode_or_nil(redis.call('HGET', KEYS[1], task_id))
  if not r or r.state ~= PENDING or not max_attempts[r.type] then
    set_aside(task_id, due_at)
  else
    r.version = r.version + 1
    if r.flags % 2 == FLAG_LEASED then
      r.failed = r.failed + 1
      note_abandoned(task_id, r)
    end
    if r.failed >= max_attempts[r.type] then
      fail_abandoned(task_id, r)
    else
      lease_one(task_id, r, due_at)
    end
  end
end

local next_due = nil
for task_type in pairs(max_attempts) do
  local first = redis.call('ZRANGE', index_key(KEYS[2], PENDING, task_type), 0, 0, 'WITHSCORES')
  if first[2] and (next_due == nil or tonumber(first[2]) < next_due) then
    next_due = tonumber(first[2])
  end
end
reply[2] = next_due or -1
return reply
