/**
 * The near-cache of Exotel objects (src/cache/near.ts) on both backends: two "replicas" — two near-caches
 * over one storage — where the other one writes the shared cache and appends the event, as ingest does,
 * and this one must never hold the old state once the event reached it.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createEntityCache } from '../../src/cache/entities.js';
import { createNearEntityCache, newEntityReads, type EntityReads, type NearEntityCache, type ReadsSlot } from '../../src/cache/near.js';
import type { Call, CallStatus } from '../../src/exotel/types.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { createRedisStorage } from '../../src/storage/redis.js';
import type { EventLog, EventRecord, LostEvents, Storage } from '../../src/storage/types.js';
import { redisOrSkip, testPrefix, TEST_REDIS_URL } from '../helpers/redis.js';

const ACCOUNT = 'near-test';
const slot = (reads: EntityReads): ReadsSlot => ({ current: reads, used: false });
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

const call = (sid: string, status: CallStatus, customField = 'a'): Call =>
  ({
    sid,
    parentCallSid: null,
    accountSid: ACCOUNT,
    phoneNumberSid: null,
    from: '+919876543210',
    to: '+919812345670',
    status,
    direction: 'OUTBOUND_API',
    startTime: null,
    endTime: null,
    durationSeconds: null,
    conversationDurationSeconds: null,
    price: null,
    recordingUrl: null,
    answeredBy: null,
    customField,
    dateCreated: '2026-01-01T10:00:00+05:30',
    dateUpdated: '2026-01-01T10:00:00+05:30',
    legs: null,
  }) as Call;

const redisUp = await redisOrSkip();
const prefix = testPrefix('near');
afterAll(async () => {
  if (!redisUp) return;
  const redis = new Redis(TEST_REDIS_URL);
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
});

const backends: Array<[string, boolean, () => Promise<Storage>]> = [
  ['memory', true, async () => createMemoryStorage()],
  ['redis', redisUp, () => createRedisStorage({ redisUrl: TEST_REDIS_URL, keyPrefix: prefix, logger: quiet })],
];

describe.each(backends)('near-cache on %s', (_name, available, make) => {
  let n = 0;
  const sid = () => `${(Date.now() * 100 + n++).toString(16).padStart(32, '0')}`;

  /** Runs `body` with this replica's near-cache, the other replica's plain cache and the storage. */
  async function withReplicas(body: (near: NearEntityCache, other: ReturnType<typeof createEntityCache>, storage: Storage) => Promise<void>) {
    const storage = await make();
    const near = createNearEntityCache(createEntityCache(storage.cache, ACCOUNT), { events: storage.events, accountSid: ACCOUNT, changingMs: 60_000 });
    try {
      await body(near, createEntityCache(storage.cache, ACCOUNT), storage);
    } finally {
      near.close();
      await storage.close();
    }
  }

  /** Appends a forward event (as ingest on the other replica) and waits until this replica's log delivered it. */
  async function eventReaches(storage: Storage, callSid: string, status: CallStatus) {
    let stop = () => {};
    const delivered = new Promise<EventRecord>((resolve) => {
      stop = storage.events.subscribe((e) => {
        if (e.kind === 'call' && e.callSid === callSid && e.status === status) resolve(e);
      });
    });
    await storage.events.append({ kind: 'call', accountSid: ACCOUNT, callSid, status, at: '2026-01-01T10:00:01+05:30', source: 'WEBHOOK', forward: true });
    await delivered;
    stop();
  }

  it.skipIf(!available)('holds what it read, so a second read costs no shared read, with an unchanged version', async () => {
    await withReplicas(async (near, other, storage) => {
      const s = sid();
      await other.putCall(call(s, 'RINGING'));
      const first = newEntityReads();
      expect((await near.recording(slot(first)).getCalls([s]))[0]?.status).toBe('RINGING');
      const sharedReads = storage.cache.stats.hits + storage.cache.stats.misses;
      const second = newEntityReads();
      expect((await near.recording(slot(second)).getCalls([s]))[0]?.status).toBe('RINGING');
      expect(storage.cache.stats.hits + storage.cache.stats.misses).toBe(sharedReads);
      expect(second.versions).toEqual(first.versions);
      expect([first.missed, second.missed]).toEqual([false, false]);
      expect(near.current(second.versions)).toBe(true);
    });
  });

  it.skipIf(!available)('drops an object once the event log brings a change from another replica', async () => {
    await withReplicas(async (near, other, storage) => {
      const s = sid();
      await other.putCall(call(s, 'RINGING'));
      const before = newEntityReads();
      await near.recording(slot(before)).getCalls([s]);
      await other.putCall(call(s, 'IN_PROGRESS', 'b'));
      await eventReaches(storage, s, 'IN_PROGRESS');
      expect(near.current(before.versions)).toBe(false);
      expect((await near.getCalls([s]))[0]).toMatchObject({ status: 'IN_PROGRESS', customField: 'b' });
    });
  });

  it.skipIf(!available)('does not hold the old state when the event arrives before the other replica rewrote the shared cache', async () => {
    await withReplicas(async (near, other, storage) => {
      const s = sid();
      await other.putCall(call(s, 'RINGING'));
      await near.getCalls([s]);
      await eventReaches(storage, s, 'COMPLETED');
      // The shared cache still has RINGING: answered, but not held (each read goes to the shared cache).
      const stale = newEntityReads();
      expect((await near.recording(slot(stale)).getCalls([s]))[0]?.status).toBe('RINGING');
      expect(stale.missed).toBe(true);
      await other.putCall(call(s, 'COMPLETED', 'c'));
      expect((await near.getCalls([s]))[0]).toMatchObject({ status: 'COMPLETED', customField: 'c' });
      const held = newEntityReads();
      await near.recording(slot(held)).getCalls([s]);
      expect(held.missed).toBe(false);
    });
  });

  it.skipIf(!available)('does not hold a value whose shared read started before the event', async () => {
    await withReplicas(async (_near, other, storage) => {
      const s = sid();
      await other.putCall(call(s, 'RINGING'));
      // A shared read that is slow to come back (the one fault made by hand here): it read RINGING, and
      // the event arrives before its answer does.
      let release = () => {};
      const gate = new Promise<void>((resolve) => (release = resolve));
      const shared = createEntityCache(storage.cache, ACCOUNT);
      const slow = { ...shared, getCalls: async (sids: readonly string[]) => { const values = await shared.getCalls(sids); await gate; return values; } };
      const near = createNearEntityCache(slow, { events: storage.events, accountSid: ACCOUNT, changingMs: 60_000 });
      try {
        const reads = newEntityReads();
        const reading = near.recording(slot(reads)).getCalls([s]);
        await eventReaches(storage, s, 'RINGING');
        release();
        expect((await reading)[0]?.status).toBe('RINGING');
        expect(reads.missed).toBe(true);
        expect(near.size).toBe(0);
      } finally {
        near.close();
      }
    });
  });

  it.skipIf(!available)('replaces the object on its own writes at once', async () => {
    await withReplicas(async (near) => {
      const s = sid();
      await near.putCall(call(s, 'RINGING'));
      const before = newEntityReads();
      await near.recording(slot(before)).getCalls([s]);
      await near.putCall(call(s, 'IN_PROGRESS'));
      expect(near.current(before.versions)).toBe(false);
      expect((await near.getCalls([s]))[0]?.status).toBe('IN_PROGRESS');
    });
  });
});

describe('near-cache when its replica lost events on their way from the log', () => {
  it('lets go of everything it holds: any object may have changed in an event it never got', async () => {
    const storage = createMemoryStorage();
    // The memory log never loses events: the loss is told by hand, where the Redis reader tells it.
    let lose: ((lost: LostEvents) => void) | undefined;
    const events: EventLog = { ...storage.events, subscribe: (listener, onLost) => ((lose = onLost), storage.events.subscribe(listener)) };
    const near = createNearEntityCache(createEntityCache(storage.cache, ACCOUNT), { events, accountSid: ACCOUNT, changingMs: 60_000 });
    const other = createEntityCache(storage.cache, ACCOUNT);
    try {
      const s = '0123456789abcdef0123456789abcdef';
      await other.putCall(call(s, 'COMPLETED', 'before'));
      expect((await near.getCalls([s]))[0]?.customField).toBe('before');
      expect(near.size).toBe(1);
      // Changed by a callback on another replica, whose event never reaches this one.
      await other.putCall(call(s, 'COMPLETED', 'after'));
      lose!({ after: '1-0', before: '2-0' });
      expect(near.size).toBe(0);
      expect((await near.getCalls([s]))[0]?.customField).toBe('after');
    } finally {
      near.close();
      await storage.close();
    }
  });
});
