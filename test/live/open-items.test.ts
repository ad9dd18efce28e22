/** OpenItems (src/storage/open-items.ts): one suite against memory and against the real Redis ZSETs and hashes. */
import { afterAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createMemoryOpenItems, createRedisOpenItems } from '../../src/storage/open-items.js';
import type { OpenItems } from '../../src/storage/types.js';
import { redisOrSkip, testPrefix, TEST_REDIS_URL } from '../helpers/redis.js';

/** A clock the test moves by hand. */
function handClock(start = 1_700_000_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => void (now += ms) };
}

function contract(name: string, make: (clock?: () => number) => OpenItems) {
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

    it('keeps when each id entered its set, whatever its time becomes, and forgets it with the id', async () => {
      const clock = handClock();
      const items = make(clock.now);
      const t0 = clock.now();
      await items.put('calls', 'a', 500);
      await items.put('other', 'a', 900);
      clock.advance(1_000);
      await items.put('calls', 'b', 100);
      // Moving an id (a recheck, a refreshed watch mark) keeps when it was added.
      await items.put('calls', 'a', 5_000);
      await items.put('calls', 'a', 1, { onlyIfAbsent: true });
      clock.advance(1_000);
      expect(await items.addedAt('calls', 'a')).toBe(t0);
      expect(await items.addedAt('calls', 'b')).toBe(t0 + 1_000);
      expect(await items.addedAt('other', 'a')).toBe(t0);
      expect(await items.addedAt('calls', 'missing')).toBeUndefined();
      // Removed or pruned, it is gone; put again, it is new.
      await items.remove('calls', 'a');
      await items.pruneBefore('calls', 200);
      expect(await items.addedAt('calls', 'a')).toBeUndefined();
      expect(await items.addedAt('calls', 'b')).toBeUndefined();
      await items.put('calls', 'a', 500);
      await items.put('calls', 'b', 500, { onlyIfAbsent: true });
      expect(await items.addedAt('calls', 'a')).toBe(t0 + 2_000);
      expect(await items.addedAt('calls', 'b')).toBe(t0 + 2_000);
      expect(await items.addedAt('other', 'a')).toBe(t0);
    });

    it('with onlyIfPresent moves an id still in its set, its added time kept, and never puts back one removed meanwhile', async () => {
      const clock = handClock();
      const items = make(clock.now);
      const t0 = clock.now();
      await items.put('calls', 'a', 100);
      await items.put('calls', 'b', 100);
      await items.remove('calls', 'b');
      clock.advance(1_000);
      await items.put('calls', 'a', 900, { onlyIfPresent: true });
      await items.put('calls', 'b', 900, { onlyIfPresent: true });
      expect(await items.laterThan('calls', 0, 10)).toEqual(['a']);
      expect(await items.dueBy('calls', 899, 10)).toEqual([]);
      expect(await items.addedAt('calls', 'a')).toBe(t0);
      expect(await items.addedAt('calls', 'b')).toBeUndefined();
    });

    it('prunes many ids at once, with their added times', async () => {
      const clock = handClock();
      const items = make(clock.now);
      const ids = Array.from({ length: 2_500 }, (_, i) => `id-${i}`);
      for (const [i, id] of ids.entries()) await items.put('w', id, i);
      await items.pruneBefore('w', 2_400);
      expect(await items.laterThan('w', 0, 10_000)).toEqual(ids.slice(2_400));
      clock.advance(1_000);
      await items.put('w', 'id-0', 1);
      expect(await items.addedAt('w', 'id-0')).toBe(clock.now());
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
  contract('redis', (clock) => createRedisOpenItems(redis!, `${prefix}${++n}:`, clock));

  it('takes an id an earlier version put in a set (no added time) as added when first asked, and keeps that time', async () => {
    const keyPrefix = `${prefix}${++n}:`;
    const clock = handClock();
    const items = createRedisOpenItems(redis!, keyPrefix, clock.now);
    // What the previous version wrote: the ZSET member alone.
    await redis!.zadd(`${keyPrefix}open:calls`, 100, 'CA-OLD');
    clock.advance(5_000);
    expect(await items.addedAt('calls', 'CA-OLD')).toBe(clock.now());
    const firstSeen = clock.now();
    clock.advance(5_000);
    expect(await items.addedAt('calls', 'CA-OLD')).toBe(firstSeen);
    expect(await items.dueBy('calls', 100, 10)).toEqual(['CA-OLD']);
  });

  it('prunes more ids at once than one Lua call can unpack (about 8,000), with their added times', async () => {
    const keyPrefix = `${prefix}${++n}:`;
    const items = createRedisOpenItems(redis!, keyPrefix);
    const ids = Array.from({ length: 20_000 }, (_, i) => `id-${i}`);
    await redis!.zadd(`${keyPrefix}open:w`, ...ids.flatMap((id, i) => [i, id]));
    await redis!.hset(`${keyPrefix}open-added:w`, Object.fromEntries(ids.map((id) => [id, '1'])));
    await items.pruneBefore('w', 19_990);
    expect(await items.laterThan('w', 0, 100)).toEqual(ids.slice(19_990));
    expect(await redis!.hlen(`${keyPrefix}open-added:w`)).toBe(10);
  });

  it('leaves no added time behind in Redis once an id is removed or pruned', async () => {
    const keyPrefix = `${prefix}${++n}:`;
    const items = createRedisOpenItems(redis!, keyPrefix);
    for (const id of ['a', 'b', 'c']) await items.put('s', id, id === 'c' ? 900 : 100);
    await items.remove('s', 'a');
    await items.pruneBefore('s', 500);
    expect(await redis!.hkeys(`${keyPrefix}open-added:s`)).toEqual(['c']);
  });
});
