/**
 * The event log of one process: an array in id order with retention by age and count, a per-call and
 * per-SMS index for their histories, and synchronous fan-out to subscribers. Ids have the Redis stream shape so cursors mean
 * the same thing on both backends.
 */
import type { CallEventRecord, EventLog, EventRecord, HistorySubject, NewEvent, SmsEventRecord, StatusAppend, StatusAppendResult, StatusStepResult } from './types.js';
import { checkLimit, type ResolvedStorageOptions } from './options.js';
import { createExpiringMap } from './expiring-map.js';
import { checkStatusAppend, decideStatus, eventJsonHead, subjectOf, withForward, type SubjectState } from './status-step.js';
import type { MemoryOpenItems } from './open-items.js';
import { compareEventIdParts, formatEventId, parseCursor, parseEventId, type EventIdParts } from './event-id.js';
import { createFanOut } from './fan-out.js';

interface Stored {
  record: EventRecord;
  parts: EventIdParts;
}

/** The key of a call's or an SMS's history. */
function historyKey(kind: string, accountSid: string, sid: string): string {
  return `${kind}\u0000${accountSid}\u0000${sid}`;
}

/** The history an event is kept in; undefined for none (an incoming-call announcement). */
function historyKeyOf(record: EventRecord): string | undefined {
  if (record.kind === 'call') return historyKey('call', record.accountSid, record.callSid);
  if (record.kind === 'sms') return historyKey('sms', record.accountSid, record.smsSid);
  return undefined;
}

/** Builds an in-memory EventLog; `openItems` is the set store appendStatus keeps up to date in the same step. */
export function createMemoryEventLog(options: ResolvedStorageOptions, openItems?: MemoryOpenItems): EventLog {
  const { clock, eventRetentionMs, eventRetentionCount, logger } = options;
  const subjects = createExpiringMap<SubjectState>(clock);
  const refs = createExpiringMap<string>(clock);
  const subjectKey = (kind: string, accountSid: string, sid: string) => `${kind}\u0000${accountSid}\u0000${sid}`;
  // Kept in id order; `head` skips trimmed entries so trimming is O(1) and compaction is occasional.
  let log: Stored[] = [];
  let head = 0;
  const histories = new Map<string, EventRecord[]>();
  const fanOut = createFanOut(logger);
  let last: EventIdParts = { ms: 0, seq: -1 };
  /** EventLog.replayFloor: an older `after` cannot replay completely; undefined until something is removed. */
  let floor: EventIdParts | undefined;
  const raiseFloor = (parts: EventIdParts) => {
    if (!floor || compareEventIdParts(parts, floor) > 0) floor = parts;
  };
  let closed = false;

  const nextId = (): EventIdParts => {
    const now = clock();
    // Like Redis XADD "*": a clock that goes backwards keeps the last ms and bumps the sequence.
    last = now > last.ms ? { ms: now, seq: 0 } : { ms: last.ms, seq: last.seq + 1 };
    return last;
  };

  const dropOldest = () => {
    const gone = log[head];
    if (!gone) return;
    head += 1;
    const key = historyKeyOf(gone.record);
    if (key !== undefined) {
      const history = histories.get(key);
      // A history is in log order too, so the dropped event is its first.
      history?.shift();
      if (history?.length === 0) histories.delete(key);
    }
  };

  const trim = () => {
    const minMs = clock() - eventRetentionMs;
    if (log.length - head > eventRetentionCount) {
      while (log.length - head > eventRetentionCount) dropOldest();
      // The first event kept, not the last one dropped: the Redis log can only tell that much, and both
      // backends answer alike (EventLog.replayFloor).
      raiseFloor(log[head]!.parts);
    }
    for (let oldest = log[head]; oldest && oldest.parts.ms < minMs; oldest = log[head]) {
      raiseFloor(oldest.parts);
      dropOldest();
    }
    if (head > 1024 && head * 2 > log.length) {
      log = log.slice(head);
      head = 0;
    }
  };

  /** Index of the first kept entry with id > parts. */
  const firstAfter = (parts: EventIdParts): number => {
    let lo = head;
    let hi = log.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareEventIdParts(log[mid]!.parts, parts) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };

  /** Stores one event from its JSON (a copy: what is stored cannot change under the caller). Synchronous. */
  const store = (json: string): EventRecord => {
    if (closed) throw new Error('event log is closed');
    const parts = nextId();
    // Values read back are the same shapes the Redis log gives (no Dates, no undefined fields).
    const record = { ...(JSON.parse(json) as NewEvent), id: formatEventId(parts) } as EventRecord;
    log.push({ record, parts });
    const key = historyKeyOf(record);
    if (key !== undefined) {
      const history = histories.get(key);
      if (history) history.push(record);
      else histories.set(key, [record]);
    }
    trim();
    fanOut.publish(record);
    return record;
  };

  const historyOf = <K extends HistorySubject>(kind: K, accountSid: string, sid: string) => {
    trim();
    return [...(histories.get(historyKey(kind, accountSid, sid)) ?? [])] as Array<Extract<EventRecord, { kind: K }>>;
  };

  /** One subject's status step (EventLog.appendStatus): decide, then store, synchronously. */
  const step = (append: StatusAppend): StatusStepResult => {
    const { kind, sid, status } = subjectOf(append.event);
    const key = subjectKey(kind, append.event.accountSid, sid);
    const state = subjects.get(key);
    const previousRank = state?.rank ?? -1;
    const decision = decideStatus(state, status, append.rank);
    if (append.requestRef) refs.set(subjectKey('ref', append.event.accountSid, append.requestRef.ref), sid, { ttl: append.requestRef.ttlMs });
    // A mark is kept whether or not the status is, and keeps the state as long as a stored status does.
    const marks = append.mark ? new Set(state?.marks).add(append.mark) : state?.marks;
    if (!decision.forward && !append.keepNotForward) {
      if (append.mark) subjects.set(key, { rank: previousRank, statuses: state?.statuses ?? new Set(), marks }, { ttl: append.stateTtlMs });
      return { ...decision, event: undefined, previousRank };
    }
    const next: SubjectState = { rank: decision.forward ? append.rank : previousRank, statuses: new Set(state?.statuses).add(status), ...(marks ? { marks } : {}) };
    subjects.set(key, next, { ttl: append.stateTtlMs });
    const event = store(withForward(eventJsonHead(append.event), decision.forward));
    if (decision.forward && append.open) {
      if (append.open.add) openItems?.putNow(append.open.add.set, sid, append.open.add.atMs, { onlyIfAbsent: true });
      for (const set of append.open.remove ?? []) openItems?.removeNow(set, sid);
    }
    return decision.forward ? { forward: true, event, previousRank } : { ...decision, event, previousRank };
  };

  /** True when the subject of `append` carries `mark` (false for no mark). */
  const isMarked = (append: StatusAppend, mark: string | undefined): boolean => {
    if (mark === undefined) return false;
    const { kind, sid } = subjectOf(append.event);
    return subjects.get(subjectKey(kind, append.event.accountSid, sid))?.marks?.has(mark) ?? false;
  };

  return {
    async append(event: NewEvent): Promise<EventRecord> {
      return store(JSON.stringify(event));
    },

    async appendStatus(append): Promise<StatusAppendResult> {
      if (closed) throw new Error('event log is closed');
      checkStatusAppend(append);
      // One synchronous run, like the Redis script: nothing else can interleave between decide and store.
      const result: StatusAppendResult = step(append);
      if (append.also && !isMarked(append, append.also.unlessMarked)) result.also = step(append.also);
      if (append.withHistory && append.event.kind === 'call') result.history = historyOf('call', append.event.accountSid, append.event.callSid);
      return result;
    },

    async statusRank(kind, accountSid, sid) {
      const rank = subjects.get(subjectKey(kind, accountSid, sid))?.rank;
      return rank === undefined || rank < 0 ? undefined : rank;
    },

    async requestRef(accountSid, ref) {
      return refs.get(subjectKey('ref', accountSid, ref));
    },

    async readAfter(afterId: string | undefined, limit?: number): Promise<EventRecord[]> {
      const max = checkLimit(limit);
      trim();
      const start = afterId === undefined ? head : firstAfter(parseCursor(afterId));
      return log.slice(start, start + max).map((s) => s.record);
    },

    async replayFloor(): Promise<string | undefined> {
      trim();
      return floor && formatEventId(floor);
    },

    subscribe(listener, onLost) {
      if (closed) throw new Error('event log is closed');
      return fanOut.add(listener, onLost);
    },

    async callHistory(accountSid: string, callSid: string): Promise<CallEventRecord[]> {
      return historyOf('call', accountSid, callSid);
    },

    async smsHistory(accountSid: string, smsSid: string): Promise<SmsEventRecord[]> {
      return historyOf('sms', accountSid, smsSid);
    },

    async lastId(): Promise<string | undefined> {
      trim();
      return log.length > head ? log[log.length - 1]!.record.id : undefined;
    },

    async close(): Promise<void> {
      closed = true;
      fanOut.clear();
    },
  };
}

