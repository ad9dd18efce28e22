/** The storage contract (storage-contract.ts) against memory and against the real Redis. */
import { afterAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { createRedisStorage } from '../../src/storage/redis.js';
import { redisOrSkip, testPrefix, TEST_REDIS_URL } from '../helpers/redis.js';
import type { StatusAppend } from '../../src/storage/types.js';
import { describeStorageContract } from './storage-contract.js';

describeStorageContract('memory', async (options) => {
  let now = Date.now();
  const storage = createMemoryStorage({ ...options, clock: () => now });
  return {
    storage,
    async elapse(ms) {
      now += ms;
    },
    replica: undefined,
    exactCountRetention: true,
  };
});

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const redisUp = await redisOrSkip();
const prefixes: string[] = [];
let harnessCount = 0;

describe.skipIf(!redisUp)('redis backend', () => {
  afterAll(async () => {
    // Leave nothing behind in the shared Redis.
    const redis = new Redis(TEST_REDIS_URL);
    for (const prefix of prefixes) {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.del(...keys);
    }
    await redis.quit();
  });

  describeStorageContract('redis', async (options) => {
    const keyPrefix = `${testPrefix('storage')}${++harnessCount}:`;
    prefixes.push(keyPrefix);
    // A replica is a second storage on the same keys with its own connections, as another process would be.
    const make = () => createRedisStorage({ ...options, redisUrl: TEST_REDIS_URL, keyPrefix });
    return { storage: await make(), elapse: sleep, replica: make, exactCountRetention: false };
  });

  it('keeps an open set\'s added times beside it: the status step that removes a Sid leaves none behind', async () => {
    const keyPrefix = `${testPrefix('storage')}${++harnessCount}:`;
    prefixes.push(keyPrefix);
    const storage = await createRedisStorage({ redisUrl: TEST_REDIS_URL, keyPrefix });
    const redis = new Redis(TEST_REDIS_URL);
    try {
      const step = (status: 'RINGING' | 'COMPLETED', rank: number, open: StatusAppend['open']): StatusAppend => ({
        event: { kind: 'call', accountSid: 'acc1', callSid: 'CA1', status, at: '2026-11-20T10:00:00+05:30', source: 'WEBHOOK' },
        rank,
        keepNotForward: true,
        stateTtlMs: 60_000,
        open,
      });
      await storage.openItems.put('watched:acc1', 'CA1', 1);
      await storage.events.appendStatus(step('RINGING', 1, { add: { set: 'calls:acc1', atMs: 1_000 } }));
      expect((await redis.hkeys(`${keyPrefix}open-added:calls:acc1`)).sort()).toEqual(['CA1']);
      await storage.events.appendStatus(step('COMPLETED', 3, { remove: ['calls:acc1', 'watched:acc1'] }));
      expect(await redis.exists(`${keyPrefix}open-added:calls:acc1`, `${keyPrefix}open-added:watched:acc1`)).toBe(0);
    } finally {
      await redis.quit();
      await storage.close();
    }
  });
});
