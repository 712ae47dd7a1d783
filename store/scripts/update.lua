-- update: write a task's mutable fields if the caller holds its current version.
-- KEYS[1]  tasks hash
-- KEYS[2]  index key prefix
-- KEYS[3]  listing key prefix
-- ARGV[1]  task_id
-- ARGV[2]  expected version
-- ARGV[3]  new state, ARGV[4] new failed_attempts, ARGV[5] new next_attempt_at_us
-- Returns  the stored record after the write (packed, see _lib.lua).
-- Errors   'STALE' (no such task, or another version): nothing written; 'INVALID <what>'.
-- Keeps    only state, failed_attempts and next_attempt_at change; version + 1; the record
--          moves to the index and listing of its new state, scored by its new next_attempt_at.
local expected = int_in(ARGV[2], 0, MAX_MICROS)
if not expected then return invalid('version') end
local state = int_in(ARGV[3], PENDING, FAILED)
if not state then return invalid('state') end
local failed = int_in(ARGV[4], 0, MAX_UINT32)
if not failed then return invalid('failed_attempts') end
local next_at = int_in(ARGV[5], -MAX_MICROS, MAX_MICROS)
if not next_at then return invalid('next_attempt_at') end

local r = decode_or_nil(redis.call('HGET', KEYS[1], ARGV[1]))
if not r or r.version ~= expected then return redis.error_reply('STALE') end

redis.call('ZREM', index_key(KEYS[2], r.state, r.type), ARGV[1])
local was = r.state
r.state, r.failed, r.next_at, r.flags, r.version = state, failed, next_at, 0, r.version + 1
local packed = encode(r)
redis.call('HSET', KEYS[1], ARGV[1], packed)
redis.call('ZADD', index_key(KEYS[2], r.state, r.type), r.next_at, ARGV[1])
relist(KEYS[3], was, r, ARGV[1])
return packed
