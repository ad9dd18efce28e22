/**
 * The atomic status step of the event log (EventLog.appendStatus), shared by both backends: the rule that
 * decides whether a status is forward, and the Lua script that applies it on Redis in one command. The
 * memory log runs the same rule synchronously, so both behave alike (one contract suite covers them).
 *
 * A subject (a call, an SMS, an incoming-call announcement) keeps a small state: the highest rank stored,
 * the statuses stored and its marks (a call said to be outgoing). A status already stored is a duplicate;
 * a rank strictly above the highest is forward; anything else — a late status, or another status of the
 * same rank (two final call statuses posted to two replicas at once) — is not forward: the first one
 * stored wins.
 *
 * One step may carry a second subject's step (`also`: an incoming call's announcement with the call event
 * of the flow request that announces it) and return the call's history: an incoming-call request is then
 * decided, stored and announced in one command, and learns what earlier requests said from the same reply.
 * The second step may be skipped by a mark on the first subject (`unlessMarked`), decided in the same
 * command: a request that does not say which way its call goes announces it unless an earlier one said
 * it is outgoing, with nothing left for a later command that a storage fault could lose.
 */
import { assertNever } from '../assert-never.js';
import type { NotForwardReason, StatusAppend, StatusEvent, StatusSubject } from './types.js';
import { checkRank, checkTtl } from './options.js';
import { TRIM_STREAM_LUA } from './stream-trim.js';

/** What a subject remembers between statuses. */
export interface SubjectState {
  /** Highest rank stored as forward, -1 when none. */
  rank: number;
  /** Every status stored for the subject (forward or not). */
  statuses: Set<string>;
  /** Marks kept on the subject (StatusAppend.mark). */
  marks?: Set<string>;
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
    default:
      return assertNever(event, 'event');
  }
}

/** Throws a RangeError on a malformed request (a bug in the caller, never bad input from Exotel). */
export function checkStatusAppend(append: StatusAppend, second = false): void {
  if (append.also?.also || append.also?.withHistory) throw new RangeError('a second step carries no step or history of its own');
  if (append.unlessMarked !== undefined && !second) throw new RangeError('only a second step can be skipped by a mark');
  for (const mark of [append.mark, append.unlessMarked]) {
    if (mark !== undefined && !/^[a-z-]{1,32}$/.test(mark)) throw new RangeError(`a mark is 1 to 32 lower-case letters or dashes, got ${JSON.stringify(mark)}`);
  }
  if (append.also) checkStatusAppend(append.also, true);
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
 * One step's keys, from its first key k: k stream, k+1 the call's or SMS's history list (or a
 * placeholder), k+2 subject state hash, k+3 request-reference key (or a placeholder), k+4 open set to add
 * to (or a placeholder), k+5 the stream's floor key (stream-trim.ts), k+6 the added-times hash of the open
 * set to add to (or a placeholder; open-items.ts), k+7.. pairs of an open set to remove from and its
 * added-times hash.
 * One step's arguments, from its first argument a: a maxlen, a+1 minid, a+2 JSON head, a+3 history ttl ms (the event retention, also the floor key's),
 * a+4 history cap, a+5 "1" for an event kept in a history (a call or SMS event), a+6 status, a+7 rank,
 * a+8 "1" to keep a status that is not forward, a+9 state ttl ms, a+10 Sid for the request reference
 * ("" for none), a+11 its ttl ms, a+12 the Sid (open-set member), a+13 the open-set score ("" for none),
 * a+14 the mark to keep ("" for none), a+15 the first subject's mark that skips this (second) step ("" for none),
 * a+16 now (epoch ms): the added time of a Sid new to the open set.
 *
 * ARGV[1] the number of keys of the first step, ARGV[2] "1" to return the first step's history,
 * ARGV[3..19] the first step's arguments; a second step (`also`), when given, has the keys after the
 * first's and ARGV[20..36].
 * Returns {{id or "", "forward" | "duplicate" | "backwards", previous rank}, the second step's the same
 * or false (none, or skipped by its mark), the history list's entries or false}.
 *
 * The state hash holds "r" (highest forward rank), "s:<status>" per stored status and "m:<mark>" per mark.
 */
export const STEP_ARGS = 17;

export const APPEND_STATUS_LUA = `${TRIM_STREAM_LUA}
local function step(k, last, a)
  local rank = tonumber(ARGV[a + 7])
  local field = 's:' .. ARGV[a + 6]
  local state = redis.call('HMGET', KEYS[k + 2], 'r', field)
  local prev = tonumber(state[1] or '-1')
  local outcome = 'backwards'
  if state[2] then
    outcome = 'duplicate'
  elseif rank > prev then
    outcome = 'forward'
  end
  if ARGV[a + 10] ~= '' then
    redis.call('SET', KEYS[k + 3], ARGV[a + 10], 'PX', ARGV[a + 11])
  end
  if ARGV[a + 14] ~= '' then
    redis.call('HSET', KEYS[k + 2], 'm:' .. ARGV[a + 14], '1')
    redis.call('PEXPIRE', KEYS[k + 2], ARGV[a + 9])
  end
  if outcome ~= 'forward' and ARGV[a + 8] ~= '1' then
    return {'', outcome, prev}
  end
  if outcome == 'forward' then
    redis.call('HSET', KEYS[k + 2], 'r', rank, field, '1')
  else
    redis.call('HSET', KEYS[k + 2], field, '1')
  end
  redis.call('PEXPIRE', KEYS[k + 2], ARGV[a + 9])
  local json = ARGV[a + 2] .. ',"forward":' .. (outcome == 'forward' and 'true' or 'false') .. '}'
  local id = redis.call('XADD', KEYS[k], '*', 'e', json)
  trim(KEYS[k], KEYS[k + 5], ARGV[a], ARGV[a + 1], ARGV[a + 3])
  if ARGV[a + 5] == '1' then
    local cap = tonumber(ARGV[a + 4])
    if redis.call('RPUSH', KEYS[k + 1], id .. ' ' .. json) > cap then
      redis.call('LTRIM', KEYS[k + 1], -cap, -1)
    end
    redis.call('PEXPIRE', KEYS[k + 1], ARGV[a + 3])
  end
  if outcome == 'forward' then
    if ARGV[a + 13] ~= '' and redis.call('ZADD', KEYS[k + 4], 'NX', ARGV[a + 13], ARGV[a + 12]) == 1 then
      redis.call('HSET', KEYS[k + 6], ARGV[a + 12], ARGV[a + 16])
    end
    for i = k + 7, last, 2 do
      redis.call('ZREM', KEYS[i], ARGV[a + 12])
      redis.call('HDEL', KEYS[i + 1], ARGV[a + 12])
    end
  end
  return {id, outcome, prev}
end
local first = tonumber(ARGV[1])
local results = {step(1, first, 3), false, false}
if #ARGV > 2 + ${STEP_ARGS} then
  local a = 3 + ${STEP_ARGS}
  if ARGV[a + 15] == '' or redis.call('HEXISTS', KEYS[3], 'm:' .. ARGV[a + 15]) == 0 then
    results[2] = step(first + 1, #KEYS, a)
  end
end
if ARGV[2] == '1' then
  results[3] = redis.call('LRANGE', KEYS[2], 0, -1)
end
return results
`;
