-- Append one entry to a channel's stream, trim the stream to about ARGV[1] entries and refresh its TTL,
-- in one step, so a stream never outlives its TTL and never grows past its bound.
-- KEYS[1]: the stream. ARGV[1]: max length (approximate). ARGV[2]: TTL in milliseconds.
-- ARGV[3..]: the entry's field, value pairs. Returns the new entry id, "<ms>-<seq>".
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return id
