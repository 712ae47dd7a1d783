#!lua flags=no-writes
-- list_type: one page of the records of one state and one type, in their time index's order
-- (next_attempt_at, then task id bytewise), each with its last failure.
-- KEYS[1]  tasks hash
-- KEYS[2]  the time index of that state and type (sorted set scored by next_attempt_at in µs)
-- KEYS[3]  errors hash (task id -> last failure)
-- ARGV[1]  the cursor's next_attempt_at in µs, or '' for the first page
-- ARGV[2]  the cursor's task id (ignored without ARGV[1])
-- ARGV[3]  limit (1..10000), ARGV[4] 'asc' or 'desc'
-- Returns  {task_id1, record1, failure1 or '', task_id2, ...}: at most limit records strictly
--          after the cursor in the page's direction. When the cursor's task has left the index
--          (its state or due time changed), the page resumes after the cursor's instant.
--          An entry whose record is missing, damaged or of another state or type is left out
--          (claim sets such entries aside); the page reads past at most 100 of them.
-- Cost     O(log N + limit) whatever the number of tasks: ranks, never scans.
local cursor = nil
if ARGV[1] ~= '' then
  cursor = int_in(ARGV[1], -MAX_MICROS, MAX_MICROS)
  if not cursor then return invalid('cursor') end
end
local limit = int_in(ARGV[3], 1, 10000)
if not limit then return invalid('limit') end
local descending = ARGV[4] == 'desc'

-- Only ZRANK, ZRANGE and ZCOUNT (and HGET): the commands the documented ACL users are given.
-- The page is ranks first..last of the index in ascending order (inclusive; empty if last <
-- first), read forwards and given back reversed for 'desc'.
local function ascending_bounds()
  local rank = cursor and redis.call('ZRANK', KEYS[2], ARGV[2])
  if rank then -- still in the index: is it where the cursor saw it?
    local score = redis.call('ZRANGE', KEYS[2], rank, rank, 'WITHSCORES')[2]
    if tonumber(score) ~= cursor then rank = nil end
  end
  if not descending then
    local first = 0
    if rank then
      first = rank + 1
    elseif cursor then -- ARGV[1], not cursor: Lua prints a number with 14 digits, µs take 16
      first = redis.call('ZCOUNT', KEYS[2], '-inf', ARGV[1])
    end
    return first, first + limit - 1
  end
  local last = -1
  if rank then
    last = rank - 1
  elseif cursor then
    last = redis.call('ZCOUNT', KEYS[2], '-inf', '(' .. ARGV[1]) - 1
  else
    last = redis.call('ZCARD', KEYS[2]) - 1
  end
  return math.max(0, last - limit + 1), last
end

-- A missing or damaged record, or one of another state or type, is left out as claim sets it
-- aside; the page reads on past it (at most SKIP_BUDGET such entries) so it stays full.
local SKIP_BUDGET = 100
local want_state, want_type = string.match(KEYS[2], ':(%d+):(%d+)$')
want_state, want_type = tonumber(want_state), tonumber(want_type)
local reply, found, skipped = {}, 0, 0
local function add(task_id)
  local packed = redis.call('HGET', KEYS[1], task_id)
  local r = decode_or_nil(packed)
  if not (r and r.state == want_state and r.type == want_type) then
    skipped = skipped + 1
    return
  end
  reply[#reply + 1] = task_id
  reply[#reply + 1] = packed
  reply[#reply + 1] = redis.call('HGET', KEYS[3], task_id) or ''
  found = found + 1
end

local first, last = ascending_bounds()
while found < limit and skipped <= SKIP_BUDGET and last >= first and last >= 0 do
  local ids = redis.call('ZRANGE', KEYS[2], math.max(first, 0), last)
  if descending then
    for i = #ids, 1, -1 do if found < limit then add(ids[i]) end end
  else
    for _, task_id in ipairs(ids) do if found < limit then add(task_id) end end
  end
  local short = limit - found
  if #ids < last - math.max(first, 0) + 1 then break end -- the index ended
  if descending then
    first, last = math.max(0, first - short), first - 1
  else
    first, last = last + 1, last + short
  end
end
return reply
