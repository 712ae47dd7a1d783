#!lua flags=no-writes
-- get_ready: one page of the records in a state that are due as of an instant, ordered by id.
-- KEYS[1]  tasks hash
-- KEYS[2]  set of task types seen
-- KEYS[3]  index key prefix
-- ARGV[1]  state, ARGV[2] as_of_us, ARGV[3] cursor id or '' (none), ARGV[4] limit,
-- ARGV[5]  'asc' or 'desc'
-- Returns  {task_id1, record1, task_id2, record2, ...}, at most limit pairs, ids strictly
--          after the cursor in the page's direction.
-- Cost     O(R log R) for R due records of that state: the indexes are scored by time, not
--          id, so not-yet-due records cost nothing however many there are.
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

local rows = {}
for _, task_type in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local ids = redis.call('ZRANGEBYSCORE', index_key(KEYS[3], state, tonumber(task_type)),
    '-inf', as_of)
  -- HMGET in chunks: Lua's unpack stops at a few thousand values.
  for from = 1, #ids, 1000 do
    local chunk = {unpack(ids, from, math.min(from + 999, #ids))}
    local records = redis.call('HMGET', KEYS[1], unpack(chunk))
    for i, packed in ipairs(records) do
      if packed then
        local id = decode(packed).id
        if cursor == nil or (descending and id < cursor) or (not descending and id > cursor) then
          rows[#rows + 1] = {id, chunk[i], packed}
        end
      end
    end
  end
end

if descending then
  table.sort(rows, function(a, b) return a[1] > b[1] end)
else
  table.sort(rows, function(a, b) return a[1] < b[1] end)
end
local page = {}
for i = 1, math.min(limit, #rows) do
  page[#page + 1] = rows[i][2]
  page[#page + 1] = rows[i][3]
end
return page
