/**
 * The event log on Redis Streams, shared by every replica.
 *
 * - append: one Lua script does XADD, trims by age and count (stream-trim.ts) and, for call and SMS events,
 *   RPUSH to the call's or SMS's history list, so the stream and the history never disagree. It resolves only once Redis
 *   has stored the event and rejects otherwise (the webhook answers 503 and Exotel retries).
 * - subscribe: one dedicated connection per storage runs XREAD BLOCK from the last id it delivered, so
 *   every replica sees every event once, in stream order, and an outage only delays delivery.
 * - Trimming with "~" is approximate (whole stream nodes): at least `eventRetentionCount` events are kept.
 *   Reads apply the age limit exactly, so both backends replay the same window.
 */
import type { Redis } from 'ioredis';
import type { CallEventRecord, EventLog, EventRecord, HistorySubject, LostEvents, NewEvent, NotForwardReason, SmsEventRecord, StatusAppend, StatusAppendResult, StatusStepResult } from './types.js';
import { checkLimit, type ResolvedStorageOptions } from './options.js';
import { APPEND_STATUS_LUA, checkStatusAppend, eventJsonHead, subjectOf, withForward } from './status-step.js';
import { redisOpenAddedKey, redisOpenItemsKey } from './open-items.js';
import { compareEventIdParts, compareEventIds, formatEventId, parseCursor, parseEventId } from './event-id.js';
import { createFanOut } from './fan-out.js';
import { reconnectDelayMs } from './redis-connection.js';
import { READ_FLOOR_LUA, TRIM_STREAM_LUA } from './stream-trim.js';

export const EVENT_LOG_DEFAULTS = {
  /** XREAD BLOCK timeout; the loop re-blocks from the same id, so this only bounds how long close() can take without disconnect. */
  blockMs: 5000,
  /** Most entries one XREAD returns. */
  readBatch: 500,
  /** Most events kept in one call's or SMS's history list (a call has a handful; this only bounds a runaway). */
  callHistoryCap: 1000,
  /**
   * When Redis is down at start, the reader starts this long before the replica's own start time (a
   * margin for clock skew between replica and Redis), so events other replicas append after Redis is
   * back are not skipped, ms.
   */
  startClockMarginMs: 2000,
} as const;

/*
 * KEYS[1] = stream, KEYS[2] = history list, KEYS[3] = the stream's floor key; ARGV = maxlen, minid, json,
 * history ttl ms (the event retention), history cap, "1" when the event has a history (a call or SMS
 * event). Returns the new id.
 */
const APPEND = `${TRIM_STREAM_LUA}
local id = redis.call('XADD', KEYS[1], '*', 'e', ARGV[3])
trim(KEYS[1], KEYS[3], ARGV[1], ARGV[2], ARGV[4])
if ARGV[6] == '1' then
  local cap = tonumber(ARGV[5])
  if redis.call('RPUSH', KEYS[2], id .. ' ' .. ARGV[3]) > cap then
    redis.call('LTRIM', KEYS[2], -cap, -1)
  end
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
return id
`;

interface RedisWithAppend extends Redis {
  eggAppendEvent(stream: string, history: string, floor: string, maxlen: number, minid: string, json: string, ttlMs: number, cap: number, hasHistory: string): Promise<string>;
  /** READ_FLOOR_LUA (stream-trim.ts). */
  eggReplayFloor(stream: string, floor: string, minid: string): Promise<[string | null, string | null]>;
  /** APPEND_STATUS_LUA (status-step.ts); keys and arguments as listed there. */
  eggAppendStatus(numberOfKeys: number, ...keysAndArgs: Array<string | number>): Promise<[StepReply, StepReply | null, string[] | null]>;
}

type StreamEntry = [id: string, fields: string[]];
/** One step's answer from APPEND_STATUS_LUA: id or "", outcome, previous rank. */
type StepReply = [id: string, outcome: string, previous: number];

export interface RedisEventLogDeps {
  /** The shared command connection. */
  redis: Redis;
  /** A connection only this log uses, for blocking XREAD. */
  blocking: Redis;
  keyPrefix: string;
  options: ResolvedStorageOptions;
}

export interface RedisEventLog extends EventLog {
  /** Resolves the start id and starts the reader; events appended after this resolves reach subscribers. */
  start(): Promise<void>;
}

/** Builds the Redis Streams EventLog; call start() before use. */
export function createRedisEventLog(deps: RedisEventLogDeps): RedisEventLog {
  const { redis, blocking, keyPrefix, options } = deps;
  const { clock, logger, eventRetentionMs, eventRetentionCount } = options;
  const streamKey = `${keyPrefix}events`;
  const floorKey = `${keyPrefix}events:floor`;
  // Exotel Sids contain no ':', so account and Sid cannot run into each other.
  const historyKey = (kind: HistorySubject, accountSid: string, sid: string) => `${keyPrefix}${kind}:${accountSid}:${sid}`;
  /** The history list an event is kept in; undefined for none (an incoming-call announcement). */
  const historyKeyOf = (event: NewEvent | StatusAppend['event']): string | undefined =>
    event.kind === 'call' ? historyKey('call', event.accountSid, event.callSid) : event.kind === 'sms' ? historyKey('sms', event.accountSid, event.smsSid) : undefined;
  // A subject's state and a request's reference (status-step.ts); "status:" so no key of an older layout is reused.
  const stateKey = (kind: string, accountSid: string, sid: string) => `${keyPrefix}status:${kind}:${accountSid}:${sid}`;
  const refKey = (accountSid: string, ref: string) => `${keyPrefix}ref:${accountSid}:${ref}`;
  const placeholder = `${keyPrefix}-`;
  // defineCommand sends EVALSHA (EVAL once when Redis has not seen the script): one command per step.
  if (!(redis as unknown as Partial<RedisWithAppend>).eggAppendEvent) redis.defineCommand('eggAppendEvent', { numberOfKeys: 3, lua: APPEND });
  if (!(redis as unknown as Partial<RedisWithAppend>).eggReplayFloor) redis.defineCommand('eggReplayFloor', { numberOfKeys: 2, lua: READ_FLOOR_LUA });
  // The number of keys varies (open sets to remove from), so it is passed first.
  if (!(redis as unknown as Partial<RedisWithAppend>).eggAppendStatus) redis.defineCommand('eggAppendStatus', { lua: APPEND_STATUS_LUA });
  const r = redis as RedisWithAppend;
  const fanOut = createFanOut(logger);

  const minParts = () => ({ ms: Math.max(0, clock() - eventRetentionMs), seq: 0 });
  const isFresh = (id: string) => {
    const parts = parseEventId(id);
    return parts !== undefined && compareEventIdParts(parts, minParts()) >= 0;
  };
  const decode = (id: string, json: string | undefined): EventRecord | undefined => {
    if (json === undefined) return undefined;
    try {
      return { ...(JSON.parse(json) as NewEvent), id } as EventRecord;
    } catch (err) {
      logger.error({ err, eventId: id }, 'unreadable event in the Redis event log; skipped');
      return undefined;
    }
  };
  const fromEntry = ([id, fields]: StreamEntry): EventRecord | undefined => decode(id, fields[fields.indexOf('e') + 1]);
  const fromEntries = (entries: StreamEntry[]) => entries.map(fromEntry).filter((e): e is EventRecord => e !== undefined);

  // The reader: `cursor` is the last id delivered (or the start id); it only moves after delivery.
  let cursor: string | undefined;
  let stopped = false;
  let loop: Promise<void> | undefined;
  let wake: (() => void) | undefined;
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  const newestId = async (conn: Redis): Promise<string> => {
    const newest = (await conn.xrevrange(streamKey, '+', '-', 'COUNT', 1)) as StreamEntry[];
    return newest[0]?.[0] ?? '0-0';
  };

  const replayFloor = async (): Promise<string | undefined> => {
    const [aged, recorded] = await r.eggReplayFloor(streamKey, floorKey, formatEventId(minParts()));
    const floors = [aged, recorded].filter((id): id is string => id !== null && parseEventId(id) !== undefined);
    return floors.sort(compareEventIds).at(-1);
  };

  /**
   * Whether events after `cursor`, up to the first entry a read returned, were removed before this reader
   * got to them: the replay floor (the first event kept after a trim, or the newest aged one) is past it.
   * A reader that far behind reads full batches (the stream keeps eventRetentionCount ≥ readBatch events),
   * or comes back from a failure; only then is the floor asked for, one command.
   */
  const lostBefore = async (read: StreamEntry[], after: string | undefined, behind: boolean): Promise<LostEvents | undefined> => {
    const first = read[0]?.[0];
    if (after === undefined || first === undefined || !(behind || read.length >= EVENT_LOG_DEFAULTS.readBatch)) return undefined;
    const floor = await replayFloor();
    return floor !== undefined && parseEventId(after) !== undefined && compareEventIds(after, floor) < 0 ? { after, before: first } : undefined;
  };

  const read = async () => {
    let failures = 0;
    while (!stopped) {
      try {
        // Resolve "$" to a concrete id once: re-blocking on "$" would skip events that arrive between reads.
        cursor ??= await newestId(blocking);
        const reply = (await blocking.xread('COUNT', EVENT_LOG_DEFAULTS.readBatch, 'BLOCK', EVENT_LOG_DEFAULTS.blockMs, 'STREAMS', streamKey, cursor)) as
          | Array<[string, StreamEntry[]]>
          | null;
        const lost = await lostBefore(reply?.[0]?.[1] ?? [], cursor, failures > 0);
        if (failures > 0) logger.info({ cursor }, 'event log reader resumed');
        failures = 0;
        if (lost) {
          logger.error({ ...lost, eventRetentionCount }, 'event log reader: events were removed from the stream before this replica read them; its subscribers are told to subscribe again');
          fanOut.lost(lost);
        }
        for (const [, entries] of reply ?? []) {
          for (const entry of entries) {
            cursor = entry[0];
            const record = fromEntry(entry);
            if (record) fanOut.publish(record);
          }
        }
      } catch (err) {
        if (stopped) break;
        failures += 1;
        if (failures === 1) logger.warn({ err, cursor }, 'event log reader lost Redis; retrying from the last delivered id');
        await pause(reconnectDelayMs(failures));
      }
    }
  };

  /** One step's keys and arguments, in the order APPEND_STATUS_LUA reads them (status-step.ts). */
  const stepInput = (append: StatusAppend) => {
    const { event } = append;
    const { kind, sid, status } = subjectOf(event);
    const history = historyKeyOf(event);
    const remove = append.open?.remove ?? [];
    const keys = [
      streamKey,
      history ?? placeholder,
      stateKey(kind, event.accountSid, sid),
      append.requestRef ? refKey(event.accountSid, append.requestRef.ref) : placeholder,
      append.open?.add ? redisOpenItemsKey(keyPrefix, append.open.add.set) : placeholder,
      floorKey,
      append.open?.add ? redisOpenAddedKey(keyPrefix, append.open.add.set) : placeholder,
      ...remove.flatMap((set) => [redisOpenItemsKey(keyPrefix, set), redisOpenAddedKey(keyPrefix, set)]),
    ];
    const head = eventJsonHead(event);
    const args = [
      eventRetentionCount,
      formatEventId(minParts()),
      head,
      Math.ceil(eventRetentionMs),
      EVENT_LOG_DEFAULTS.callHistoryCap,
      history ? '1' : '0',
      status,
      append.rank,
      append.keepNotForward ? '1' : '0',
      Math.ceil(append.stateTtlMs),
      append.requestRef ? sid : '',
      append.requestRef ? Math.ceil(append.requestRef.ttlMs) : 0,
      sid,
      append.open?.add ? Math.round(append.open.add.atMs) : '',
      append.mark ?? '',
      append.unlessMarked ?? '',
      Math.round(clock()),
    ];
    return { keys, args, head };
  };

  const stepResult = (head: string, [id, outcome, previous]: StepReply): StatusStepResult => {
    const previousRank = Number(previous);
    const forward = outcome === 'forward';
    // The same JSON the script stored, so the appender and every reader see equal records.
    const record = id === '' ? undefined : decode(id, withForward(head, forward));
    if (forward) return { forward: true, event: record!, previousRank };
    return { forward: false, reason: outcome as NotForwardReason, event: record, previousRank };
  };

  /** A call's or SMS's history from its list's entries ("<id> <json>"), inside the retention window. */
  const historyOf = <K extends HistorySubject>(kind: K, lines: string[]) => {
    const out: Array<Extract<EventRecord, { kind: K }>> = [];
    for (const line of lines) {
      const space = line.indexOf(' ');
      const id = line.slice(0, space);
      if (space < 0 || !isFresh(id)) continue;
      const record = decode(id, line.slice(space + 1));
      if (record?.kind === kind) out.push(record as Extract<EventRecord, { kind: K }>);
    }
    return out;
  };

  return {
    async start() {
      if (loop) return;
      try {
        cursor = await newestId(redis);
      } catch (err) {
        // Redis is down at start. Starting from "whatever is newest once Redis is back" would skip what
        // other replicas append between Redis's return and this reader's first read, so start from now.
        cursor = formatEventId({ ms: Math.max(0, clock() - EVENT_LOG_DEFAULTS.startClockMarginMs), seq: 0 });
        logger.warn({ err, cursor }, 'event log reader could not read the stream head at start; will read from its start time once Redis is back');
      }
      loop = read();
    },

    async append(event: NewEvent): Promise<EventRecord> {
      if (stopped) throw new Error('event log is closed');
      const json = JSON.stringify(event);
      const history = historyKeyOf(event);
      const id = await r.eggAppendEvent(
        streamKey,
        history ?? placeholder,
        floorKey,
        eventRetentionCount,
        formatEventId(minParts()),
        json,
        Math.ceil(eventRetentionMs),
        EVENT_LOG_DEFAULTS.callHistoryCap,
        history ? '1' : '0',
      );
      // The same JSON round trip a reader gets, so the appender and every reader see equal records.
      return decode(id, json)!;
    },

    async appendStatus(append): Promise<StatusAppendResult> {
      if (stopped) throw new Error('event log is closed');
      checkStatusAppend(append);
      const first = stepInput(append);
      const second = append.also ? stepInput(append.also) : undefined;
      const [one, two, lines] = await r.eggAppendStatus(
        first.keys.length + (second?.keys.length ?? 0),
        ...first.keys,
        ...(second?.keys ?? []),
        first.keys.length,
        append.withHistory ? '1' : '0',
        ...first.args,
        ...(second?.args ?? []),
      );
      const result: StatusAppendResult = stepResult(first.head, one);
      if (second && two) result.also = stepResult(second.head, two);
      if (append.withHistory) result.history = lines ? historyOf('call', lines) : [];
      return result;
    },

    async statusRank(kind, accountSid, sid) {
      const rank = await redis.hget(stateKey(kind, accountSid, sid), 'r');
      return rank === null ? undefined : Number(rank);
    },

    async requestRef(accountSid, ref) {
      return (await redis.get(refKey(accountSid, ref))) ?? undefined;
    },

    async readAfter(afterId: string | undefined, limit?: number): Promise<EventRecord[]> {
      const count = checkLimit(limit);
      const oldest = minParts();
      const after = afterId === undefined ? undefined : parseCursor(afterId);
      // XRANGE "(" is an exclusive start (Redis ≥ 6.2); a cursor older than the window reads from the window.
      const start = after && compareEventIdParts(after, oldest) >= 0 ? `(${formatEventId(after)}` : formatEventId(oldest);
      return fromEntries((await redis.xrange(streamKey, start, '+', 'COUNT', count)) as StreamEntry[]);
    },

    replayFloor,

    subscribe(listener, onLost) {
      if (stopped) throw new Error('event log is closed');
      return fanOut.add(listener, onLost);
    },

    async callHistory(accountSid: string, callSid: string): Promise<CallEventRecord[]> {
      return historyOf('call', await redis.lrange(historyKey('call', accountSid, callSid), 0, -1));
    },

    async smsHistory(accountSid: string, smsSid: string): Promise<SmsEventRecord[]> {
      return historyOf('sms', await redis.lrange(historyKey('sms', accountSid, smsSid), 0, -1));
    },

    async lastId(): Promise<string | undefined> {
      const id = await newestId(redis);
      return id !== '0-0' && isFresh(id) ? id : undefined;
    },

    async close(): Promise<void> {
      if (stopped) return;
      stopped = true;
      fanOut.clear();
      wake?.();
      // disconnect() (not quit) ends a blocked XREAD at once; its rejection is seen by the loop as "stopped".
      blocking.disconnect();
      await loop;
    },
  };
}
