/**
 * The event log of one process: an array in id order with retention by age and count, a per-call index
 * for callHistory, and synchronous fan-out to subscribers. Ids have the Redis stream shape so cursors mean
 * the same thing on both backends.
 */
import type { CallEventRecord, EventLog, EventRecord, NewEvent } from './types.js';
import { checkLimit, type ResolvedStorageOptions } from './options.js';
import { compareEventIdParts, formatEventId, parseCursor, parseEventId, type EventIdParts } from './event-id.js';
import { createFanOut } from './fan-out.js';

interface Stored {
  record: EventRecord;
  parts: EventIdParts;
}

export function callKey(accountSid: string, callSid: string): string {
  return `${accountSid}\u0000${callSid}`;
}

/** Builds an in-memory EventLog. */
export function createMemoryEventLog(options: ResolvedStorageOptions): EventLog {
  const { clock, eventRetentionMs, eventRetentionCount, logger } = options;
  // Kept in id order; `head` skips trimmed entries so trimming is O(1) and compaction is occasional.
  let log: Stored[] = [];
  let head = 0;
  const byCall = new Map<string, CallEventRecord[]>();
  const fanOut = createFanOut(logger);
  let last: EventIdParts = { ms: 0, seq: -1 };
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
    if (gone.record.kind === 'call') {
      const key = callKey(gone.record.accountSid, gone.record.callSid);
      const history = byCall.get(key);
      // A call's history is in log order too, so the dropped event is its first.
      history?.shift();
      if (history?.length === 0) byCall.delete(key);
    }
  };

  const trim = () => {
    const minMs = clock() - eventRetentionMs;
    while (log.length - head > eventRetentionCount) dropOldest();
    for (let oldest = log[head]; oldest && oldest.parts.ms < minMs; oldest = log[head]) dropOldest();
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

  return {
    async append(event: NewEvent): Promise<EventRecord> {
      if (closed) throw new Error('event log is closed');
      const parts = nextId();
      // A JSON copy: what is stored cannot change under the caller, and values read back are the same
      // shapes the Redis log gives (no Dates, no undefined fields).
      const record = { ...(JSON.parse(JSON.stringify(event)) as NewEvent), id: formatEventId(parts) } as EventRecord;
      log.push({ record, parts });
      if (record.kind === 'call') {
        const key = callKey(record.accountSid, record.callSid);
        const history = byCall.get(key);
        if (history) history.push(record);
        else byCall.set(key, [record]);
      }
      trim();
      fanOut.publish(record);
      return record;
    },

    async readAfter(afterId: string | undefined, limit?: number): Promise<EventRecord[]> {
      const max = checkLimit(limit);
      trim();
      const start = afterId === undefined ? head : firstAfter(parseCursor(afterId));
      return log.slice(start, start + max).map((s) => s.record);
    },

    subscribe(listener) {
      if (closed) throw new Error('event log is closed');
      return fanOut.add(listener);
    },

    async callHistory(accountSid: string, callSid: string): Promise<CallEventRecord[]> {
      trim();
      return [...(byCall.get(callKey(accountSid, callSid)) ?? [])];
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

