/** The storage contract (storage-contract.ts) against memory and against the real Redis. */
import { afterAll, describe } from 'vitest';
import { Redis } from 'ioredis';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { createRedisStorage } from '../../src/storage/redis.js';
import { redisOrSkip, testPrefix, TEST_REDIS_URL } from '../helpers/redis.js';
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
});
