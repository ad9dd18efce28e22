/**
 * A call's history list on Redis keeps its newest EVENT_LOG_DEFAULTS.callHistoryCap events: a bound on a
 * runaway (a call has a handful). The status step trims the list only once an append takes it past the
 * cap, so the trim must still happen then, and keep the newest events.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisStorage } from '../../src/storage/redis.js';
import { EVENT_LOG_DEFAULTS } from '../../src/storage/redis-event-log.js';
import type { StatusAppend, Storage } from '../../src/storage/types.js';
import { deleteKeys, redisOrSkip, testPrefix, TEST_REDIS_URL } from '../helpers/redis.js';

const prefix = testPrefix('history-cap');
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

const repeat = (i: number): StatusAppend => ({
  event: { kind: 'call', accountSid: 'acc', callSid: 'CA-runaway', status: 'IN_PROGRESS', at: `2024-01-01T10:00:00+05:30`, source: 'WEBHOOK', data: { n: i } },
  rank: 2,
  keepNotForward: true,
  stateTtlMs: 60_000,
});

describe.skipIf(!(await redisOrSkip()))('Redis call history cap', () => {
  let storage: Storage;
  beforeAll(async () => {
    storage = await createRedisStorage({ redisUrl: TEST_REDIS_URL, keyPrefix: prefix, logger: quiet });
  });
  afterAll(async () => {
    await storage?.close();
    await deleteKeys(prefix);
  });

  it('keeps the newest events once a call has more than the cap, and all of them up to it', async () => {
    const cap = EVENT_LOG_DEFAULTS.callHistoryCap;
    for (let i = 0; i < cap; i++) await storage.events.appendStatus(repeat(i));
    let history = await storage.events.callHistory('acc', 'CA-runaway');
    expect(history.length).toBe(cap);
    expect(history[0]!.data).toEqual({ n: 0 });

    for (let i = cap; i < cap + 5; i++) await storage.events.appendStatus(repeat(i));
    history = await storage.events.callHistory('acc', 'CA-runaway');
    expect(history.length).toBe(cap);
    expect(history.map((e) => (e.data as { n: number }).n)).toEqual(Array.from({ length: cap }, (_, i) => i + 5));
    // The first is the only forward one; every repeat is kept as history.
    expect(history.every((e) => !e.forward)).toBe(true);
  });
});
