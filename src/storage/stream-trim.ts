/**
 * How the Redis event stream is trimmed, in the same script as each append, so that a replay can tell
 * whether it is complete (EventLog.replayFloor; the memory log keeps the same floor).
 *
 * Redis does not say what a trim removed: XINFO's max-deleted-entry-id counts XDEL only, never a trim. So:
 * - by age, the stream keeps the newest event past the age limit (it trims up to that event, not up to the
 *   limit). Reads hide it like every aged event, and the newest one older than the limit is then always
 *   there to be read: the floor is that event, exact;
 * - past the count cap (MAXLEN ~ trims whole stream nodes, unseen), the script records the first event
 *   kept in `<prefix>events:floor`, kept as long as events are: an `after` older than it is incomplete.
 */

/**
 * A Lua function `trim(stream, floorKey, maxlen, minid, ttlMs)` for scripts that append to the stream.
 * `minid` is the oldest id reads still show ("ms-0").
 */
export const TRIM_STREAM_LUA = `
local function trim(stream, floorKey, maxlen, minid, ttl)
  if minid ~= '0-0' then
    local aged = redis.call('XREVRANGE', stream, '(' .. minid, '-', 'COUNT', 1)
    if aged[1] then
      redis.call('XTRIM', stream, 'MINID', '~', aged[1][1])
    end
  end
  if redis.call('XTRIM', stream, 'MAXLEN', '~', maxlen) > 0 then
    local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
    redis.call('SET', floorKey, first[1][1], 'PX', ttl)
  end
end
`;

/**
 * Reads the floor's two parts in one step: KEYS[1] stream, KEYS[2] floor key; ARGV[1] minid. Returns
 * {newest id older than minid or false, the recorded floor or false}.
 */
export const READ_FLOOR_LUA = `
local aged = false
if ARGV[1] ~= '0-0' then
  local newest = redis.call('XREVRANGE', KEYS[1], '(' .. ARGV[1], '-', 'COUNT', 1)
  if newest[1] then aged = newest[1][1] end
end
return {aged, redis.call('GET', KEYS[2])}
`;
