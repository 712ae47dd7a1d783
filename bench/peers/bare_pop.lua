-- The bare loop's whole queue: take up to ARGV[1] jobs due by the server's clock.
--
-- KEYS[1]  the sorted set of jobs, scored by their due instant (epoch seconds)
-- ARGV[1]  the most jobs to take (a positive integer)
-- Returns  the members taken, soonest due first; each is removed in the same call.
--
-- No lease, no attempt count, no record: a job taken is gone, and one whose worker dies is lost.
-- That is the point: the reference measures the job body on this machine, not a queue.
local most = tonumber(ARGV[1])
if not most or most < 1 then
  return redis.error_reply('ARGV[1] must be a positive integer, got ' .. tostring(ARGV[1]))
end
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, most)
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
end
return due
