-- _lib.lua: helpers prepended to every script by store/_scripts.py (Redis Lua has no include).
--
-- A stored record is one value in the namespace's tasks hash, keyed by task id:
--   header  struct '>BI8I8I4BBI4i8i8' (43 bytes): format, id, version, type, state, flags,
--           failed_attempts, next_attempt_at_us, created_at_us
--   tail    reference id length + 1 as I4 (0 = no reference id), the reference id, then data.
-- Scripts rewrite the header and keep the tail byte for byte, so data stays opaque and
-- binary-safe. Every record sits in exactly one index sorted set, '<prefix><state>:<type>',
-- scored by its next_attempt_at_us, and in exactly one listing bucket (list_add below).
-- Helpers only read, except the listing, failure and drop helpers, which scripts call after
-- they have validated all of their input.
local HEADER = '>BI8I8I4BBI4i8i8'
local HEADER_SIZE = 43
local FORMAT = 1
local PENDING, CONFIRMED, FAILED = 1, 2, 3
-- Set by claim, cleared by any outcome: still set at the next claim means the lease ran out
-- without an outcome, so the worker that held it died.
local FLAG_LEASED = 1
local MAX_UINT32 = 4294967295
local MAX_MICROS = 9007199254740992 -- 2^53: beyond it a double no longer holds every integer

local function decode(packed)
  local _, id, version, task_type, state, flags, failed, next_at, created =
    struct.unpack(HEADER, packed)
  return {id = id, version = version, type = task_type, state = state, flags = flags,
    failed = failed, next_at = next_at, created = created,
    tail = string.sub(packed, HEADER_SIZE + 1)}
end

-- The record, or nil when there is none or the value is not a record this code wrote.
local function decode_or_nil(packed)
  if not packed or string.len(packed) < HEADER_SIZE + 4 or string.byte(packed, 1) ~= FORMAT then
    return nil
  end
  return decode(packed)
end

local function encode(r)
  return struct.pack(HEADER, FORMAT, r.id, r.version, r.type, r.state, r.flags, r.failed,
    r.next_at, r.created) .. r.tail
end

local function index_key(prefix, state, task_type)
  return prefix .. string.format('%d:%d', state, task_type)
end

local function server_now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- The integer that text spells in plain decimal, when it lies in low..high; otherwise nil.
-- (tonumber alone would also accept '0x10', ' 5' and '1e3'.)
local function int_in(text, low, high)
  if type(text) ~= 'string' or not string.match(text, '^%-?%d+$') then return nil end
  local n = tonumber(text)
  if n < low or n > high then return nil end
  return n
end

-- One entry of a packed batch (put_all, settle, extend) at position at: an I2-prefixed task id,
-- then fixed-size fields in struct format fields (fields_size bytes). Returns the task id, the
-- fields in a table and the position after them; nil when the batch is cut short, for the
-- caller to answer INVALID before its first write.
local function read_entry(batch, at, fields, fields_size)
  if at + 1 > #batch then return nil end
  local size = struct.unpack('>I2', batch, at)
  local task_id = string.sub(batch, at + 2, at + 1 + size)
  at = at + 2 + size
  if #task_id ~= size or at + fields_size - 1 > #batch then return nil end
  local values = {struct.unpack(fields, batch, at)}
  local after = table.remove(values)
  return task_id, values, after
end

local function invalid(what)
  return redis.error_reply('INVALID ' .. what)
end

local function num(n)
  return string.format('%d', n)
end

-- The listing: every record is also listed by id in its state, so a page by id reads that page
-- only. Ids are grouped in buckets of LIST_BUCKET consecutive ids: '<list><state>:<bucket>' is a
-- sorted set (task id scored by id) small enough for Redis's listpack encoding (about 20 bytes
-- an entry, where one big sorted set costs about 100: a skiplist node, a dict entry, the
-- member); '<list><state>' holds the non-empty buckets of the state, scored by bucket number.
-- 128 is Redis's default zset-max-listpack-entries: a bucket never outgrows it.
local LIST_BUCKET = 128

local function list_bucket(id)
  return math.floor(id / LIST_BUCKET)
end

local function list_add(list, state, id, task_id)
  local bucket = list_bucket(id)
  redis.call('ZADD', list .. num(state) .. ':' .. num(bucket), id, task_id)
  redis.call('ZADD', list .. num(state), bucket, num(bucket))
end

local function list_remove(list, state, id, task_id)
  local bucket = list_bucket(id)
  local key = list .. num(state) .. ':' .. num(bucket)
  redis.call('ZREM', key, task_id)
  if redis.call('EXISTS', key) == 0 then redis.call('ZREM', list .. num(state), num(bucket)) end
end

-- Move a record's listing entry when its state changed (r.state is the new state).
local function relist(list, from_state, r, task_id)
  if from_state ~= r.state then
    list_remove(list, from_state, r.id, task_id)
    list_add(list, r.state, r.id, task_id)
  end
end

-- A failure as the errors hash keeps it: i8 when (µs), I4 failed_attempts after it, then
-- I2 kind length, kind, message (see store/_codec.py: encode_failure).
local function failure(at, attempts, kind, message)
  return struct.pack('>i8I4I2', at, attempts, #kind) .. kind .. message
end

-- Remove a task and everything kept for it: record, index and listing entries, last failure.
-- r may be nil (a damaged record): then only the hash fields go.
local function drop(tasks, index, list, errors, task_id, r)
  if r then
    redis.call('ZREM', index_key(index, r.state, r.type), task_id)
    list_remove(list, r.state, r.id, task_id)
  end
  redis.call('HDEL', tasks, task_id)
  redis.call('HDEL', errors, task_id)
end

-- The task ids of ARGV[first..]: every one a non-empty string, none repeated; nil otherwise.
local function task_ids_from(first)
  local ids, seen = {}, {}
  for i = first, #ARGV do
    local task_id = ARGV[i]
    if task_id == '' or seen[task_id] then return nil end
    seen[task_id] = true
    ids[#ids + 1] = task_id
  end
  if #ids == 0 then return nil end
  return ids
end
