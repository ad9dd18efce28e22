/**
 * A Redis outage as an operator reads it in the logs: a private redis-server on a free port (never the
 * machine's shared one) is killed and started again empty under a real gateway, whose log lines are read
 * back. What repeats for as long as Redis is down is logged once per outage, not once per interval, per
 * request or per connection.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startPrivateRedis, waitUntil, type RedisProcess } from '../helpers/processes.js';
import { redisAvailable, testPrefix } from '../helpers/redis.js';

const haveRedisServer = (await redisAvailable()) || process.env.REQUIRE_REDIS === '1';

describe.skipIf(!haveRedisServer)('a Redis outage in the logs', () => {
  let redis: RedisProcess;
  let gw: TestGateway;

  beforeAll(async () => {
    redis = await startPrivateRedis({ durable: false });
    gw = await startGateway(
      // The poller and the reconciler run every 50 ms (a grace of 0 puts the reconciler on the poller's interval).
      { REDIS_URL: redis.url, REDIS_KEY_PREFIX: testPrefix('outage-logs'), LOG_LEVEL: 'debug', LIVE_POLL_INTERVAL_MS: '50', RECONCILE_GRACE_SECONDS: '0' },
      {},
      {},
      { autoStop: false },
    );
  });
  afterAll(async () => {
    await gw?.stop();
    await redis?.dispose();
  });

  const LOOPS = ['live-poller', 'live-reconciler'];

  it('logs the poller and the reconciler failing once per outage, their other failed runs at debug, and the recovery once with the count', async () => {
    const failed = (loop: string) => gw.logs.filter((l) => l.loop === loop && String(l.msg).startsWith('background task failed'));
    const recovered = (loop: string) => gw.logs.filter((l) => l.loop === loop && l.msg === 'background task ran cleanly again after failed runs');
    await redis.stop('SIGKILL');
    try {
      await waitUntil(() => LOOPS.every((loop) => failed(loop).length >= 3), 'three failed runs of each loop');
    } finally {
      await redis.start();
    }
    await waitUntil(() => LOOPS.every((loop) => recovered(loop).length > 0), 'both loops running cleanly again', 15_000, 25);
    for (const loop of LOOPS) {
      const logs = gw.logs;
      const end = logs.findIndex((l) => l.loop === loop && l.msg === 'background task ran cleanly again after failed runs');
      const failures = logs.slice(0, end).filter((l) => l.loop === loop && String(l.msg).startsWith('background task failed'));
      expect(failures.map((l) => l.level)).toEqual(['warn', ...Array(failures.length - 1).fill('debug')]);
      expect(failures[0]).toMatchObject({ msg: 'background task failed; retrying next interval; more are logged at debug until a run succeeds', err: { message: expect.any(String) } });
      expect(logs[end]).toMatchObject({ level: 'info', failures: failures.length });
    }
  });

  it('logs the Redis connections failing once and coming back once, not once per connection', async () => {
    const FAILED = 'redis connection failed; retrying';
    const RESTORED = 'redis connection restored';
    const since = gw.logs.length;
    const lines = (msg: string) => gw.logs.slice(since).filter((l) => l.msg === msg);
    await redis.stop('SIGKILL');
    try {
      await waitUntil(() => lines(FAILED).length > 0, 'the outage logged');
      await waitUntil(async () => !(await gw.storage.ping()), 'storage not answering');
    } finally {
      await redis.start();
    }
    // Logged once every connection (commands, the event log reader, the cache) is back.
    await waitUntil(() => lines(RESTORED).length > 0, 'the recovery logged', 15_000, 25);
    expect(await gw.storage.ping()).toBe(true);
    expect(lines(FAILED)).toMatchObject([{ level: 'warn', role: expect.any(String), redis: expect.stringContaining('127.0.0.1') }]);
    expect(lines(RESTORED)).toMatchObject([{ level: 'info' }]);
  });
});
