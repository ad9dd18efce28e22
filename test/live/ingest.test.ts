/** ingest() without HTTP, on the real in-memory storage: dedup, forward-only state, store-or-503. */
import { describe, expect, it, vi } from 'vitest';
import { createEntityCache } from '../../src/cache/entities.js';
import { createLogger } from '../../src/logger.js';
import { ingest, IngestStorageError, type IngestDeps } from '../../src/live/ingest.js';
import type { CallStatusUpdate, SmsStatusUpdate } from '../../src/live/updates.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import type { Call, CallStatus } from '../../src/exotel/types.js';
import type { EventLog, Storage } from '../../src/storage/types.js';

const ACCOUNT = 'acct1';

function setup(events?: (log: EventLog) => EventLog): { deps: IngestDeps; storage: Storage; published: string[] } {
  const storage = createMemoryStorage();
  const log = events ? events(storage.events) : storage.events;
  const published: string[] = [];
  storage.events.subscribe((e) => {
    if (e.kind === 'call' && e.forward) published.push(e.status);
  });
  const deps: IngestDeps = {
    accountSid: ACCOUNT,
    events: log,
    entities: createEntityCache(storage.cache, ACCOUNT),
    logger: createLogger({ level: 'silent' }),
    now: Date.now,
    stateTtlMs: 60_000,
    requestRefTtlMs: 60_000,
    unknownCallDueMs: 60_000,
  };
  return { deps, storage, published };
}

const update = (callSid: string, status: CallStatus, source: CallStatusUpdate['source'] = 'WEBHOOK'): CallStatusUpdate => ({
  kind: 'call',
  callSid,
  status,
  at: '2026-11-20T10:00:00+05:30',
  source,
  fields: { sid: callSid, status },
});

describe('ingest', () => {
  it('publishes each forward status once; repeats and late statuses go to history only', async () => {
    const { deps, storage, published } = setup();
    const outcomes = [];
    for (const status of ['RINGING', 'RINGING', 'COMPLETED', 'IN_PROGRESS', 'COMPLETED', 'FAILED'] as const) outcomes.push((await ingest(update('c1', status), deps)).outcome);
    expect(outcomes).toEqual(['published', 'recorded', 'published', 'recorded', 'recorded', 'recorded']);
    expect(published).toEqual(['RINGING', 'COMPLETED']);
    const history = await storage.events.callHistory(ACCOUNT, 'c1');
    expect(history.map((e) => `${e.status}:${e.forward}`)).toEqual(['RINGING:true', 'RINGING:false', 'COMPLETED:true', 'IN_PROGRESS:false', 'COMPLETED:false', 'FAILED:false']);
  });

  it('keeps no history of repeats the gateway made itself (poller, API)', async () => {
    const { deps, storage } = setup();
    await ingest(update('c2', 'RINGING', 'POLL'), deps);
    expect((await ingest(update('c2', 'RINGING', 'POLL'), deps)).outcome).toBe('ignored');
    expect((await ingest(update('c2', 'QUEUED', 'API'), deps)).outcome).toBe('ignored');
    expect(await storage.events.callHistory(ACCOUNT, 'c2')).toHaveLength(1);
  });

  it('dedups a POLL and a WEBHOOK of the same status into one published event', async () => {
    const { deps, published } = setup();
    await ingest(update('c3', 'IN_PROGRESS', 'POLL'), deps);
    expect((await ingest(update('c3', 'IN_PROGRESS', 'WEBHOOK'), deps)).outcome).toBe('recorded');
    expect(published).toEqual(['IN_PROGRESS']);
  });

  it('throws IngestStorageError when the log cannot store, and the retry is then published, not lost', async () => {
    let failNext = true;
    const { deps, storage, published } = setup((log) => ({
      ...log,
      appendStatus: (append) => {
        if (failNext) {
          failNext = false;
          return Promise.reject(new Error('disk full'));
        }
        return log.appendStatus(append);
      },
    }));
    await expect(ingest(update('c4', 'COMPLETED'), deps)).rejects.toBeInstanceOf(IngestStorageError);
    expect(await storage.events.callHistory(ACCOUNT, 'c4')).toEqual([]);
    expect(published).toEqual([]);
    // Exotel's retry: nothing was claimed without being stored, so it is the change itself.
    expect((await ingest(update('c4', 'COMPLETED'), deps)).outcome).toBe('published');
    expect(published).toEqual(['COMPLETED']);
    // A third copy is an ordinary duplicate.
    expect((await ingest(update('c4', 'COMPLETED'), deps)).outcome).toBe('recorded');
    expect(published).toEqual(['COMPLETED']);
  });

  it('merges the callback into the cached call', async () => {
    const { deps } = setup();
    const cached: Call = {
      sid: 'c5', parentCallSid: null, accountSid: ACCOUNT, from: '+919876543210', to: '+919812345670', phoneNumberSid: null,
      status: 'IN_PROGRESS', direction: 'OUTBOUND_API', startTime: null, endTime: null, durationSeconds: null, price: null,
      recordingUrl: null, answeredBy: null, customField: 'x', dateCreated: '2026-11-20T10:00:00+05:30', dateUpdated: '2026-11-20T10:00:00+05:30',
      conversationDurationSeconds: null, legs: null,
    };
    await deps.entities.putCall(cached);
    await ingest({ ...update('c5', 'COMPLETED'), fields: { sid: 'c5', status: 'COMPLETED', endTime: '2026-11-20T10:01:00+05:30', recordingUrl: 'https://r/1.mp3' } }, deps);
    const [after] = await deps.entities.getCalls(['c5']);
    expect(after).toMatchObject({ status: 'COMPLETED', endTime: '2026-11-20T10:01:00+05:30', recordingUrl: 'https://r/1.mp3', customField: 'x', from: '+919876543210' });
  });

  it('an SMS callback that could not be stored is published on Exotel\'s retry, not taken for a repeat', async () => {
    let failNext = true;
    const { deps, storage } = setup((log) => ({
      ...log,
      appendStatus: (append) => {
        if (failNext) {
          failNext = false;
          return Promise.reject(new Error('disk full'));
        }
        return log.appendStatus(append);
      },
    }));
    const smsPublished: string[] = [];
    storage.events.subscribe((e) => {
      if (e.kind === 'sms' && e.forward) smsPublished.push(e.status);
    });
    const sms = (status: SmsStatusUpdate['status']): SmsStatusUpdate => ({
      kind: 'sms', smsSid: 's1', status, at: '2026-11-24T18:00:04+05:30', source: 'WEBHOOK', fields: { sid: 's1', status },
    });
    await expect(ingest(sms('DELIVERED'), deps)).rejects.toBeInstanceOf(IngestStorageError);
    expect(smsPublished).toEqual([]);
    // Exotel's retry must be the change itself: a subscriber of smsStatusChanged waits for it.
    expect((await ingest(sms('DELIVERED'), deps)).outcome).toBe('published');
    expect(smsPublished).toEqual(['DELIVERED']);
    // A third copy, and a different final status, are history only.
    expect((await ingest(sms('DELIVERED'), deps)).outcome).toBe('recorded');
    expect((await ingest(sms('FAILED'), deps)).outcome).toBe('recorded');
    expect(smsPublished).toEqual(['DELIVERED']);
  });

  it('tracks open calls: a non-terminal callback opens one, a terminal one closes it', async () => {
    const { deps, storage } = setup();
    await ingest(update('c6', 'IN_PROGRESS'), deps);
    expect(await storage.openItems.laterThan(`calls:${ACCOUNT}`, 0, 10)).toContain('c6');
    await ingest(update('c6', 'COMPLETED'), deps);
    expect(await storage.openItems.laterThan(`calls:${ACCOUNT}`, 0, 10)).not.toContain('c6');
  });

  it('settles two final statuses by the first stored: the other is history, not published', async () => {
    const { deps, storage, published } = setup();
    const [a, b] = await Promise.all([ingest(update('c7', 'COMPLETED'), deps), ingest(update('c7', 'BUSY'), deps)]);
    expect([a.outcome, b.outcome]).toEqual(['published', 'recorded']);
    expect(b).toMatchObject({ reason: 'backwards' });
    expect(published).toEqual(['COMPLETED']);
    expect((await storage.events.callHistory(ACCOUNT, 'c7')).map((e) => `${e.status}:${e.forward}`)).toEqual(['COMPLETED:true', 'BUSY:false']);
  });

  it('announces an incoming call once, and stores the request reference a callback carries', async () => {
    const { deps, storage } = setup();
    const call = { sid: 'c8', status: 'RINGING' } as Call;
    const incoming = { kind: 'incoming' as const, callSid: 'c8', at: '2026-11-20T10:00:00+05:30', source: 'WEBHOOK' as const, call, extra: { flow_id: '9' } };
    expect((await ingest(incoming, deps)).outcome).toBe('published');
    expect((await ingest(incoming, deps)).outcome).toBe('recorded');
    await ingest({ ...update('c9', 'IN_PROGRESS'), requestRef: 'ref-abcdefghijklmnop' }, deps);
    expect(await storage.events.requestRef(ACCOUNT, 'ref-abcdefghijklmnop')).toBe('c9');
  });

  it('stores and publishes even when the cache write fails, and rebuilds the cached call from the update in the background', async () => {
    const { deps, published } = setup();
    const cached: Call = {
      sid: 'c10', parentCallSid: null, accountSid: ACCOUNT, from: '+919876543210', to: '+919812345670', phoneNumberSid: null,
      status: 'RINGING', direction: 'OUTBOUND_API', startTime: null, endTime: null, durationSeconds: null, price: null,
      recordingUrl: null, answeredBy: null, customField: null, dateCreated: '2026-11-20T10:00:00+05:30', dateUpdated: '2026-11-20T10:00:00+05:30',
      conversationDurationSeconds: null, legs: null,
    };
    await deps.entities.putCall(cached);
    let failures = 1;
    const putCall = deps.entities.putCall.bind(deps.entities);
    const entities = { ...deps.entities, putCall: (call: Call) => (failures-- > 0 ? Promise.reject(new Error('cache down')) : putCall(call)) };
    expect((await ingest(update('c10', 'COMPLETED'), { ...deps, entities })).outcome).toBe('published');
    expect(published).toEqual(['COMPLETED']);
    await vi.waitFor(async () => expect((await deps.entities.getCalls(['c10']))[0]).toMatchObject({ status: 'COMPLETED', from: '+919876543210' }), { timeout: 3_000 });
  });
});
