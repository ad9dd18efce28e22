/**
 * The Redis event stream's trim by age keeps the newest aged event (src/storage/stream-trim.ts): Redis
 * trims whole stream nodes and does not say what it removed, so without it a node that ends with the
 * newest aged event would vanish, and the replay floor would fall behind what was removed. Here the aged
 * events fill exactly one node (tiny entries, so the node closes at stream-node-max-entries), and the next
 * append, fresh, starts the second.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createRedisStorage } from '../../src/storage/redis.js';
import type { Storage } from '../../src/storage/types.js';
import { deleteKeys, redisOrSkip, testPrefix, TEST_REDIS_URL } from '../helpers/redis.js';

const prefix = testPrefix('stream-trim');
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const retentionMs = 300;

describe.skipIf(!(await redisOrSkip()))('Redis event stream trim', () => {
  const admin = new Redis(TEST_REDIS_URL);
  const open: Storage[] = [];
  afterAll(async () => {
    await Promise.all(open.map((s) => s.close()));
    await deleteKeys(prefix);
    await admin.quit();
  });

  const fresh = { kind: 'call', accountSid: 'acc', callSid: 'CA-fresh', status: 'IN_PROGRESS', at: '2024-01-01T10:00:00+05:30', source: 'WEBHOOK' } as const;
  const appends = {
    append: (storage: Storage) => storage.events.append({ ...fresh, forward: true }),
    appendStatus: (storage: Storage) => storage.events.appendStatus({ event: fresh, rank: 2, keepNotForward: false, stateTtlMs: 60_000 }),
  };

  for (const [name, appendFresh] of Object.entries(appends)) {
    it(`keeps the newest aged event when a node ends with it, so the replay floor is exact (${name})`, async () => {
      const keyPrefix = `${prefix}${name}:`;
      const storage = await createRedisStorage({ redisUrl: TEST_REDIS_URL, keyPrefix, logger: quiet, eventRetentionMs: retentionMs });
      open.push(storage);
      const stream = `${keyPrefix}events`;
      const [, perNode] = (await admin.config('GET', 'stream-node-max-entries')) as [string, string];
      const aged: string[] = [];
      for (let i = 0; i < Number(perNode); i++) aged.push((await admin.xadd(stream, '*', 'e', '{}'))!);
      await new Promise((r) => setTimeout(r, retentionMs + 150));

      await appendFresh(storage);
      const info = (await admin.xinfo('STREAM', stream)) as unknown[];
      // The fresh event opened a second node: the first holds only aged events.
      expect(info[info.indexOf('radix-tree-keys') + 1]).toBe(2);
      const newestAged = aged.at(-1)!;
      expect(await storage.events.replayFloor()).toBe(newestAged);
      expect((await admin.xrange(stream, newestAged, newestAged)).map(([id]) => id)).toEqual([newestAged]);
    });
  }
});
