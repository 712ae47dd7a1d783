-- claim: lease up to limit due PENDING tasks of the given types to one worker, within each
-- type's own cap and start rate.
-- KEYS[1]  tasks hash
-- KEYS[2]  index key prefix
-- KEYS[3]  listing key prefix
-- KEYS[4]  errors hash (task id -> last failure)
-- KEYS[5]  rate buckets hash (type -> the instant, in µs, its bucket is full again)
-- ARGV[1]  lease_us: how long the claim holds before the task is due again
-- ARGV[2]  limit: the most tasks to lease
-- ARGV[3..] five per type: type, max_attempts, cap (the most tasks of that type to lease;
--          0: only limit), per_second (its start rate, a plain decimal; 0: none), burst (the
--          bucket's size; 0 exactly when per_second is 0)
-- Returns  {now_us, next_due_us or -1, {damaged task ids}, {type, next_token_us, ...},
--          {type, ...}, task_id1, record1, due_us1, ...}: the leased records (after the claim)
--          with the next_attempt_at they were due at. next_due_us is when a claim of these
--          types may next find work: the earliest next_attempt_at left among their PENDING
--          tasks, a type held back by its rate counting at its next token instead. The 4th
--          element names the types that still had due tasks when their bucket ran dry, each
--          with the instant its next token is due; the 5th those that still had due tasks
--          after leasing their cap.
-- Keeps    due is decided by the server's clock alone; a claim bumps version (fencing any
--          late outcome of an earlier holder), sets the leased flag and pushes
--          next_attempt_at to now + lease. A task still flagged as leased when claimed again
--          was abandoned by a crashed worker: that counts as a failed attempt, and at
--          max_attempts the task becomes FAILED instead of crashing workers forever; either
--          way the lost lease is recorded as the task's last failure ('LeaseExpired').
--          An index entry whose record is missing or damaged is moved to the sorted set
--          '<prefix>damaged' and reported, never claimed: one bad entry cannot wedge a queue.
--          A type's start rate is a token bucket shared by every claimer of the namespace,
--          kept as one number (when it is full again; absent or past: full) and refilled by
--          the server's clock: each task leased takes a whole token (an abandoned task failed
--          here, or a damaged entry, takes none), so no more than burst + per_second * t tasks
--          of the type are leased in any t seconds, whatever the number of workers. Python's
--          store/_bucket.py is the same arithmetic for the other stores.
--          Cost O(types * log N + limit): not-due tasks are never visited; with no rate, no
--          command more than without one (one HMGET and one HSET per claim otherwise).
local MIN_RATE, MAX_RATE, MAX_BURST = 0.0001, 100000, 100000
-- A bucket exactly n tokens short by arithmetic may come out a hair more in doubles.
local TOLERANCE = 1e-6

-- The number that text spells as a plain decimal (digits, an optional fraction), or nil.
local function decimal(text)
  if type(text) ~= 'string' or not string.match(text, '^%d+%.?%d*$') then return nil end
  return tonumber(text)
end

local lease = int_in(ARGV[1], 0, MAX_MICROS)
if not lease then return invalid('lease') end
local limit = int_in(ARGV[2], 1, 1000000)
if not limit then return invalid('limit') end
if #ARGV < 7 or (#ARGV - 2) % 5 ~= 0 then return invalid('types') end
local max_attempts, cap, rate, burst, rated = {}, {}, {}, {}, {}
for i = 3, #ARGV, 5 do
  local task_type = int_in(ARGV[i], 1, MAX_UINT32)
  if not task_type or max_attempts[task_type] then return invalid('type') end
  local most = int_in(ARGV[i + 1], 1, MAX_UINT32)
  if not most then return invalid('max_attempts') end
  local own_cap = int_in(ARGV[i + 2], 0, MAX_UINT32)
  if not own_cap then return invalid('type_limits') end
  local per_second = decimal(ARGV[i + 3])
  local size = int_in(ARGV[i + 4], 0, MAX_BURST)
  if not per_second or not size or (per_second == 0) ~= (size == 0)
      or (per_second ~= 0 and (per_second < MIN_RATE or per_second > MAX_RATE)) then
    return invalid('rates')
  end
  max_attempts[task_type] = most
  if own_cap > 0 then cap[task_type] = own_cap end
  if per_second > 0 then
    rate[task_type], burst[task_type] = 1000000 / per_second, size -- µs per token
    rated[#rated + 1] = task_type
  end
end

local now = server_now_us()

-- Whole tokens in a bucket full again at full_at (nil: full).
local function tokens(task_type, full_at)
  if not full_at or full_at <= now then return burst[task_type] end
  local short = (full_at - now) / rate[task_type]
  return math.max(math.floor(burst[task_type] - short + TOLERANCE), 0)
end

local full_at, reset, room = {}, {}, {}
if #rated > 0 then
  local stored = redis.call('HMGET', KEYS[5], unpack(rated))
  for i, task_type in ipairs(rated) do
    local at = tonumber(stored[i]) -- nil when never used
    if at and at == at then -- not NaN
      -- No emptier than empty: a bucket last used at a slower rate (another worker's
      -- settings, or this one's before a restart) refills at this one's from now on.
      local empty = now + burst[task_type] * rate[task_type]
      if at > empty then at, reset[task_type] = empty, true end
      full_at[task_type] = at
    end
  end
end
for task_type in pairs(max_attempts) do
  room[task_type] = math.min(limit, cap[task_type] or limit)
  if rate[task_type] then
    room[task_type] = math.min(room[task_type], tokens(task_type, full_at[task_type]))
  end
end

local due = {}
for task_type in pairs(max_attempts) do
  if room[task_type] > 0 then
    local found = redis.call('ZRANGEBYSCORE', index_key(KEYS[2], PENDING, task_type), '-inf',
      now, 'WITHSCORES', 'LIMIT', 0, room[task_type])
    for i = 1, #found, 2 do
      due[#due + 1] = {found[i], tonumber(found[i + 1])}
    end
  end
end
-- Oldest due first across types, so no type starves another.
table.sort(due, function(a, b) return a[2] < b[2] end)

local damaged, held_by_rate, held_by_cap = {}, {}, {}
local reply = {now, -1, damaged, held_by_rate, held_by_cap}
local leased = {}

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
  leased[r.type] = (leased[r.type] or 0) + 1
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

local spent = {}
for _, task_type in ipairs(rated) do
  local used = leased[task_type]
  if used or reset[task_type] then
    local base = full_at[task_type]
    if not base or base < now then base = now end
    full_at[task_type] = base + (used or 0) * rate[task_type]
    spent[#spent + 1] = task_type
    spent[#spent + 1] = string.format('%.17g', full_at[task_type])
  end
end
if #spent > 0 then redis.call('HSET', KEYS[5], unpack(spent)) end

local next_due = nil
for task_type in pairs(max_attempts) do
  local first = redis.call('ZRANGE', index_key(KEYS[2], PENDING, task_type), 0, 0, 'WITHSCORES')
  local at = tonumber(first[2])
  if at and at <= now then
    if rate[task_type] and tokens(task_type, full_at[task_type]) < 1 then
      -- Held back by its rate: its work resumes at its next whole token.
      at = math.ceil(full_at[task_type] - (burst[task_type] - 1) * rate[task_type])
      held_by_rate[#held_by_rate + 1] = task_type
      held_by_rate[#held_by_rate + 1] = at
    end
    if cap[task_type] and (leased[task_type] or 0) >= cap[task_type] then
      held_by_cap[#held_by_cap + 1] = task_type
    end
  end
  if at and (next_due == nil or at < next_due) then next_due = at end
end
reply[2] = next_due or -1
return reply
