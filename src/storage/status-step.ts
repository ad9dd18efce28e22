/**
 * The atomic status step of the event log (EventLog.appendStatus), shared by both backends: the rule that
 * decides whether a status is forward, and the Lua script that applies it on Redis in one command. The
 * memory log runs the same rule synchronously, so both behave alike (one contract suite covers them).
 *
 * A subject (a call, an SMS, an incoming-call announcement) keeps a small state: the highest rank stored
 * and the statuses stored. A status already stored is a duplicate; a rank strictly above the highest is
 * forward; anything else — a late status, or another status of the same rank (two final call statuses
 * posted to two replicas at once) — is not forward: the first one stored wins.
 */
import type { NotForwardReason, StatusAppend, StatusEvent, StatusSubject } from './types.js';
import { checkRank, checkTtl } from './options.js';

/** What a subject remembers between statuses. */
export interface SubjectState {
  /** Highest rank stored as forward, -1 when none. */
  rank: number;
  /** Every status stored for the subject (forward or not). */
  statuses: Set<string>;
}

export type StatusDecision = { forward: true } | { forward: false; reason: NotForwardReason };

/** The rule: duplicate, forward, or backwards (which includes another status of an equal rank). */
export function decideStatus(state: SubjectState | undefined, status: string, rank: number): StatusDecision {
  if (state?.statuses.has(status)) return { forward: false, reason: 'duplicate' };
  if (rank > (state?.rank ?? -1)) return { forward: true };
  return { forward: false, reason: 'backwards' };
}

/** The Sid and status an event is deduplicated on; an incoming call is announced once (status `incoming`). */
export function subjectOf(event: StatusEvent): { kind: StatusSubject; sid: string; status: string } {
  switch (event.kind) {
    case 'call':
      return { kind: 'call', sid: event.callSid, status: event.status };
    case 'sms':
      return { kind: 'sms', sid: event.smsSid, status: event.status };
    case 'incoming':
      return { kind: 'incoming', sid: event.callSid, status: 'incoming' };
    default: {
      const never: never = event;
      throw new Error(`unexpected event ${JSON.stringify(never)}`);
    }
  }
}

/** Throws a RangeError on a malformed request (a bug in the caller, never bad input from Exotel). */
export function checkStatusAppend(append: StatusAppend): void {
  checkRank(append.rank);
  checkTtl(append.stateTtlMs, 'stateTtlMs');
  if (append.requestRef) checkTtl(append.requestRef.ttlMs, 'requestRef.ttlMs');
}

/**
 * The event's JSON with `forward` added last: the script gets the JSON without its closing brace and
 * appends `,"forward":true}` or `false}`, so the decision is made and written in one place.
 */
export function eventJsonHead(event: StatusEvent): string {
  return JSON.stringify(event).slice(0, -1);
}

export function withForward(head: string, forward: boolean): string {
  return `${head},"forward":${forward}}`;
}

/*
 * KEYS[1] stream, KEYS[2] call history list (or a placeholder), KEYS[3] subject state hash,
 * KEYS[4] request-reference key (or a placeholder), KEYS[5] open set to add to (or a placeholder),
 * KEYS[6..] open sets to remove from.
 * ARGV[1] maxlen, ARGV[2] minid, ARGV[3] JSON head, ARGV[4] history ttl ms, ARGV[5] history cap,
 * ARGV[6] "1" for a call event, ARGV[7] status, ARGV[8] rank, ARGV[9] "1" to keep a status that is not
 * forward, ARGV[10] state ttl ms, ARGV[11] Sid for the request reference ("" for none), ARGV[12] its ttl ms,
 * ARGV[13] the Sid (open-set member), ARGV[14] the open-set score ("" for none).
 * Returns {id or "", "forward" | "duplicate" | "backwards", previous rank}.
 *
 * The state hash holds "r" (highest forward rank) and "s:<status>" per stored status.
 */
export const APPEND_STATUS_LUA = `
local rank = tonumber(ARGV[8])
local field = 's:' .. ARGV[7]
local state = redis.call('HMGET', KEYS[3], 'r', field)
local prev = tonumber(state[1] or '-1')
local outcome = 'backwards'
if state[2] then
  outcome = 'duplicate'
elseif rank > prev then
  outcome = 'forward'
end
if ARGV[11] ~= '' then
  redis.call('SET', KEYS[4], ARGV[11], 'PX', ARGV[12])
end
if outcome ~= 'forward' and ARGV[9] ~= '1' then
  return {'', outcome, prev}
end
if outcome == 'forward' then
  redis.call('HSET', KEYS[3], 'r', rank, field, '1')
else
  redis.call('HSET', KEYS[3], field, '1')
end
redis.call('PEXPIRE', KEYS[3], ARGV[10])
local json = ARGV[3] .. ',"forward":' .. (outcome == 'forward' and 'true' or 'false') .. '}'
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', json)
redis.call('XTRIM', KEYS[1], 'MINID', '~', ARGV[2])
if ARGV[6] == '1' then
  local cap = tonumber(ARGV[5])
  if redis.call('RPUSH', KEYS[2], id .. ' ' .. json) > cap then
    redis.call('LTRIM', KEYS[2], -cap, -1)
  end
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
if outcome == 'forward' then
  if ARGV[14] ~= '' then
    redis.call('ZADD', KEYS[5], 'NX', ARGV[14], ARGV[13])
  end
  for i = 6, #KEYS do
    redis.call('ZREM', KEYS[i], ARGV[13])
  end
end
return {id, outcome, prev}
`;
