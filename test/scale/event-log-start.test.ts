/**
 * A replica whose storage starts while Redis is down must still deliver every event other replicas
 * append once Redis is back, including those appended before its reader's first successful read.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createRedisStorage } from '../../src/storage/index.js';
import type { EventRecord, Storage } from '../../src/storage/types.js';
import { redisAvailable, testPrefix } from '../helpers/redis.js';
import { startPrivateRedis, waitUntil, type RedisProcess } from '../helpers/processes.js';

const haveRedisServer = (await redisAvailable()) || process.env.REQUIRE_REDIS === '1';

describe.skipIf(!haveRedisServer)('Redis event log started without Redis', () => {
  const opened: Storage[] = [];
  let redis: RedisProcess | undefined;
  afterAll(async () => {
    await Promise.all(opened.map((s) => s.close()));
    await redis?.dispose();
  });

  it('delivers events appended right after Redis comes back', async () => {
    redis = await startPrivateRedis({ durable: false });
    const keyPrefix = testPrefix('log-start');
    const writer = await createRedisStorage({ redisUrl: redis.url, keyPrefix });
    opened.push(writer);

    await redis.stop('SIGKILL');
    const late = await createRedisStorage({ redisUrl: redis.url, keyPrefix });
    opened.push(late);
    const seen: EventRecord[] = [];
    late.events.subscribe((e) => seen.push(e));
    expect(await late.ping()).toBe(false);

    // The moment Redis answers again, another replica appends: the late reader is still backing off.
    await redis.start();
    await waitUntil(() => writer.ping(), 'the writer reconnected', 10_000, 10);
    const appended = await writer.events.append({ kind: 'incoming', accountSid: 'acc', callSid: 'after', at: '2026-01-15T10:00:01+05:30', source: 'WEBHOOK', forward: true });

    await waitUntil(() => seen.some((e) => e.id === appended.id), 'the late reader to deliver it', 10_000);
    expect(seen.filter((e) => e.id === appended.id)).toHaveLength(1);
  });
});
