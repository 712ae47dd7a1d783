-- _lib.lua: helpers prepended to every script by store/_scripts.py (Redis Lua has no include).
--
-- A stored record is one value in the namespace's tasks hash, keyed by task id:
--   header  struct '>BI8I8I4BBI4i8i8' (43 bytes): format, id, version, type, state, flags,
--           failed_attempts, next_attempt_at_us, created_at_us
--   tail    reference id length + 1 as I4 (0 = no reference id), the reference id, then data.
-- Scripts rewrite the header and keep the tail byte for byte, so data stays opaque and
-- binary-safe. Every record sits in exactly one index sorted set, '<prefix><state>:<type>',
-- scored by its next_attempt_at_us. Every helper here only reads; writes stay in the scripts.
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
