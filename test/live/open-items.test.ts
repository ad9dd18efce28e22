/** OpenItems (src/storage/open-items.ts): one suite against memory and against the real Redis ZSETs. */
import { afterAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createMemoryOpenItems, createRedisOpenItems } from '../../src/storage/open-items.js';
import type { OpenItems } from '../../src/storage/types.js';
import { redisOrSkip, testPrefix, TEST_REDIS_URL } from '../helpers/redis.js';

function contract(name: string, make: () => OpenItems) {
  describe(`OpenItems (${name})`, () => {
    it('lists ids due by a time, earliest first, and moves an id on put', async () => {
      const items = make();
      await items.put('calls', 'c', 300);
      await items.put('calls', 'a', 100);
      await items.put('calls', 'b', 200);
      await items.put('other', 'x', 50);
      expect(await items.dueBy('calls', 200, 10)).toEqual(['a', 'b']);
      expect(await items.dueBy('calls', 1000, 2)).toEqual(['a', 'b']);
      await items.put('calls', 'a', 400);
      expect(await items.dueBy('calls', 350, 10)).toEqual(['b', 'c']);
      expect(await items.laterThan('calls', 300, 10)).toEqual(['c', 'a']);
    });

    it('keeps the first time with onlyIfAbsent, and forgets removed and pruned ids', async () => {
      const items = make();
      await items.put('s', 'a', 100);
      await items.put('s', 'a', 900, { onlyIfAbsent: true });
      expect(await items.dueBy('s', 100, 10)).toEqual(['a']);
      await items.put('s', 'b', 200);
      await items.remove('s', 'a');
      await items.remove('s', 'missing');
      expect(await items.dueBy('s', 1000, 10)).toEqual(['b']);
      await items.put('s', 'c', 300);
      await items.pruneBefore('s', 300);
      expect(await items.laterThan('s', 0, 10)).toEqual(['c']);
    });
  });
}

contract('memory', createMemoryOpenItems);

const redisUp = await redisOrSkip();
describe.skipIf(!redisUp)('redis', () => {
  const redis = redisUp ? new Redis(TEST_REDIS_URL) : undefined;
  const prefix = testPrefix('open-items');
  let n = 0;
  afterAll(async () => {
    if (!redis) return;
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });
  contract('redis', () => createRedisOpenItems(redis!, `${prefix}${++n}:`));
});
