/**
 * Webhooks during a Redis outage, on the real server over real HTTP, with a private redis-server on a free
 * port (never the machine's shared one) that is stopped and then brought back:
 * - a status callback answered 503 is logged once per outage, not once per callback.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LiveTimings } from '../../src/live/index.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startPrivateRedis, waitUntil, type RedisProcess } from '../helpers/processes.js';
import { redisAvailable, testPrefix } from '../helpers/redis.js';
import { callbackUrlsOf, callCallback, post } from '../live/webhook-helpers.js';
import { newCallSid } from './harness.js';

const haveRedisServer = (await redisAvailable()) || process.env.REQUIRE_REDIS === '1';

describe.skipIf(!haveRedisServer)('webhooks while Redis is down or stalled', () => {
  let redis: RedisProcess;
  const open = new Set<TestGateway>();

  beforeAll(async () => {
    // Durable, as a Redis holding acknowledged webhooks is run: what was stored before a stop is there after it.
    redis = await startPrivateRedis({ durable: true });
  });
  afterAll(async () => {
    redis?.resume();
    await Promise.all([...open].map((gw) => gw.stop()));
    await redis?.dispose();
  });

  const start = async (timings: Partial<LiveTimings>, env: Record<string, string> = {}) => {
    const gw = await startGateway(
      { REDIS_URL: redis.url, REDIS_KEY_PREFIX: testPrefix('outage-webhooks'), LOG_LEVEL: 'debug', LIVE_POLL_INTERVAL_MS: '3600000', ...env },
      {},
      { liveTimings: timings },
      { autoStop: false },
    );
    open.add(gw);
    return gw;
  };
  const stop = async (gw: TestGateway) => {
    open.delete(gw);
    await gw.stop();
  };
  /** Redis running again, and the gateway's command connection (the one its webhooks' step uses) answering. */
  const redisBack = async (gw: TestGateway) => {
    if (!redis.current()?.running()) await redis.start();
    await waitUntil(() => gw.storage.ping(), 'the gateway\'s storage answering again', 15_000, 50);
  };
  /** One sample of /metrics; 0 when the series is absent. */
  const metric = async (gw: TestGateway, name: string, labels: Record<string, string> = {}) => {
    const text = await (await fetch(`${gw.url}/metrics`)).text();
    const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
    const line = text.split('\n').find((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && want.every((w) => l.includes(w)));
    return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
  };
  const logsOf = (gw: TestGateway, msg: string) => gw.logs.filter((l) => typeof l.msg === 'string' && (l.msg as string).startsWith(msg));

  it('logs a status callback answered 503 once per outage, each further one at debug, and again for the next outage', async () => {
    const gw = await start({});
    const url = callbackUrlsOf(gw).callStatus;
    const unstored = () => logsOf(gw, 'webhook could not be stored').map((l) => l.level);
    await redis.stop('SIGKILL');
    try {
      // A call's callbacks and Exotel's retries of them: every one fails while Redis is down.
      for (const status of ['in-progress', 'in-progress', 'completed', 'completed']) {
        expect(await post(url, callCallback(newCallSid(), status))).toEqual({ status: 503, text: 'Service Unavailable: try again' });
      }
      expect(unstored()).toEqual(['error', 'debug', 'debug', 'debug']);
      expect(await metric(gw, 'gateway_webhooks_total', { kind: 'call-status', outcome: 'unavailable' })).toBe(4);
    } finally {
      await redisBack(gw);
    }
    expect(await post(url, callCallback(newCallSid(), 'completed'))).toEqual({ status: 200, text: 'OK' });
    expect(logsOf(gw, 'webhooks are stored again').map((l) => [l.level, l.failures])).toEqual([['info', 4]]);

    // A second outage is news again.
    await redis.stop('SIGKILL');
    try {
      for (let i = 0; i < 2; i++) expect((await post(url, callCallback(newCallSid(), 'completed'))).status).toBe(503);
    } finally {
      await redisBack(gw);
    }
    expect(unstored()).toEqual(['error', 'debug', 'debug', 'debug', 'error', 'debug']);
    expect(gw.logs.filter((l) => l.level === 'error').map((l) => l.msg)).toEqual([
      'webhook could not be stored; answering 503 so Exotel retries; more are logged at debug until a webhook is stored again',
      'webhook could not be stored; answering 503 so Exotel retries; more are logged at debug until a webhook is stored again',
    ]);
    await stop(gw);
  });
});
