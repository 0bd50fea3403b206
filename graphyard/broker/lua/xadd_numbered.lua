-- Append one entry numbered with the channel's next number n, as the entry id "n-0", so numbers grow
-- across every process that appends; optionally remember n as the mark. Trim and refresh TTLs in the
-- same step, so the stream, its counter and its mark expire together.
-- KEYS[1]: the stream. KEYS[2]: the counter. KEYS[3]: the mark.
-- ARGV[1]: max length (approximate). ARGV[2]: TTL in milliseconds. ARGV[3]: "1" to set the mark.
-- ARGV[4..]: the entry's field, value pairs. Returns n.
local n = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], n .. '-0', unpack(ARGV, 4))
if ARGV[3] == '1' then
  redis.call('SET', KEYS[3], n)
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
return n
