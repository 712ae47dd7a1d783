#!lua flags=no-writes
-- get_ready: one slice of a page of the records in a state that are due as of an instant,
-- ordered by id; the store calls it again from where a slice stopped until the page is full.
-- KEYS[1]  tasks hash
-- KEYS[2]  set of task types seen
-- KEYS[3]  index key prefix
-- KEYS[4]  listing key prefix
-- KEYS[5]  errors hash (task id -> last failure)
-- ARGV[1]  state, ARGV[2] as_of_us, ARGV[3] cursor id or '' (none), ARGV[4] limit,
-- ARGV[5]  'asc' or 'desc', ARGV[6] budget: the most listing entries one slice walks,
-- ARGV[7]  '1' to add each record's last failure ('' for none), '0' not to,
-- ARGV[8]  sort_limit: the most due records a slice reads through the time indexes and sorts
-- Returns  {resume, task_id1, record1[, failure1], task_id2, ...}: at most limit records, ids
--          strictly after the cursor in the page's direction. resume is -1 when the slice
--          answered the page (it is full, or no record is left); otherwise the budget ran out
--          first and resume is the last id read: the cursor to go on from.
--          An entry whose record is missing, damaged or in another state is skipped (claim
--          sets such entries aside in '<prefix>damaged'; this read-only script leaves them).
-- Cost     bounded, whatever the number of tasks: O(T log N) to count the due records R
--          through the time indexes; when R <= sort_limit they are read through those and
--          sorted by id, O(R log R); otherwise the listing is walked in id order from the
--          cursor, O(log N + budget), keeping the due ones.
local state = int_in(ARGV[1], PENDING, FAILED)
if not state then return invalid('state') end
local as_of = int_in(ARGV[2], -MAX_MICROS, MAX_MICROS)
if not as_of then return invalid('as_of') end
local cursor = nil
if ARGV[3] ~= '' then
  cursor = int_in(ARGV[3], -MAX_MICROS, MAX_MICROS)
  if not cursor then return invalid('cursor') end
end
local limit = int_in(ARGV[4], 1, MAX_MICROS)
if not limit then return invalid('limit') end
local descending = ARGV[5] == 'desc'
local budget = int_in(ARGV[6], 1, 100000)
if not budget then return invalid('budget') end
local with_failures = ARGV[7] == '1'
local sort_limit = int_in(ARGV[8], 0, 100000)
if not sort_limit then return invalid('sort_limit') end

local reply = {-1}
local function add(task_id, packed)
  reply[#reply + 1] = task_id
  reply[#reply + 1] = packed
  if with_failures then reply[#reply + 1] = redis.call('HGET', KEYS[5], task_id) or '' end
end

local function after_cursor(id)
  return cursor == nil or (descending and id < cursor) or (not descending and id > cursor)
end

local types = redis.call('SMEMBERS', KEYS[2])
local function count_due()
  local due = 0
  for _, task_type in ipairs(types) do
    due = due + redis.call('ZCOUNT', index_key(KEYS[3], state, tonumber(task_type)), '-inf', as_of)
  end
  return due
end

-- Few due records: read them all through the time indexes and order them by id.
local function page_by_time()
  local rows = {}
  for _, task_type in ipairs(types) do
    local ids = redis.call('ZRANGEBYSCORE', index_key(KEYS[3], state, tonumber(task_type)),
      '-inf', as_of)
    for from = 1, #ids, 1000 do -- HMGET in chunks: Lua's unpack stops at a few thousand values
      local chunk = {unpack(ids, from, math.min(from + 999, #ids))}
      for i, packed in ipairs(redis.call('HMGET', KEYS[1], unpack(chunk))) do
        -- A missing or damaged record, or one in another state, is left out as claim sets
        -- it aside: one bad entry must not fail the page (claim moves it; a read cannot).
        local r = decode_or_nil(packed)
        if r and r.state == state and after_cursor(r.id) then
          rows[#rows + 1] = {r.id, chunk[i], packed}
        end
      end
    end
  end
  table.sort(rows, function(a, b)
    if descending then return a[1] > b[1] end
    return a[1] < b[1]
  end)
  for i = 1, math.min(limit, #rows) do add(rows[i][2], rows[i][3]) end
  return reply
end

-- Many due records: walk the listing bucket by bucket in id order, from the cursor on.
local directory = KEYS[4] .. num(state)
local function buckets_from(bucket)
  if descending then
    return redis.call('ZREVRANGEBYSCORE', directory, bucket, '-inf', 'LIMIT', 0, 8)
  end
  return redis.call('ZRANGEBYSCORE', directory, bucket, '+inf', 'LIMIT', 0, 8)
end

local function entries_of(bucket)
  local key = directory .. ':' .. bucket
  local bound = cursor and ('(' .. num(cursor)) or (descending and '+inf' or '-inf')
  if descending then return redis.call('ZREVRANGEBYSCORE', key, bound, '-inf', 'WITHSCORES') end
  return redis.call('ZRANGEBYSCORE', key, bound, '+inf', 'WITHSCORES')
end

local function page_by_id()
  local read, found = 0, 0
  local next_bucket = descending and '+inf' or '-inf'
  if cursor then next_bucket = num(list_bucket(cursor)) end
  while true do
    local buckets = buckets_from(next_bucket)
    if #buckets == 0 then return reply end
    for _, bucket in ipairs(buckets) do
      local entries = entries_of(bucket)
      for i = 1, #entries, 2 do
        local task_id, id = entries[i], tonumber(entries[i + 1])
        local packed = redis.call('HGET', KEYS[1], task_id)
        local r = decode_or_nil(packed)
        read, cursor = read + 1, id
        if r and r.state == state and r.next_at <= as_of then
          add(task_id, packed)
          found = found + 1
          if found == limit then return reply end
        end
        if read >= budget then
          reply[1] = id
          return reply
        end
      end
      next_bucket = '(' .. bucket
    end
  end
end

if count_due() <= sort_limit then return page_by_time() end
return page_by_id()
