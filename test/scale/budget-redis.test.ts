/**
 * The Exotel budget on Redis (docs/rate-budget.md): client keys' shares hold across replicas, a stalled
 * Redis (SIGSTOP: up, but not answering) never hangs a query, and the per-replica fallback budget starts
 * from the fleet's last known use rather than from an empty window. The stalled Redis is a private
 * redis-server on a free port, never the machine's shared one; it is SIGCONTed in teardown.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSimulator, type Simulator } from '../../src/simulator/index.js';
import { createRedisStorage } from '../../src/storage/redis.js';
import type { Storage } from '../../src/storage/types.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startPrivateRedis, type RedisProcess } from '../helpers/processes.js';
import { redisAvailable, redisOrSkip, testPrefix, TEST_REDIS_URL } from '../helpers/redis.js';

const FLOOD = `flood-${randomBytes(12).toString('hex')}`;
const CALM = `calm-${randomBytes(12).toString('hex')}`;
const as = (secret: string) => ({ authorization: `Bearer ${secret}` });
const LIMIT = 40;
const RESERVE = 10;
const CALL = 'query($sid: ID!) { call(sid: $sid) { sid status } }';
const BY_SID = 'query($sids: [ID!]!) { callsBySid(sids: $sids) { sid } }';
const RATE = '{ rateLimit { remaining myShare myUsed } }';
const randomSid = () => randomBytes(16).toString('hex');
const finished = (sim: Simulator) => sim.calls.list().filter((c) => ['completed', 'busy', 'no-answer', 'failed', 'canceled'].includes(c.Status)).map((c) => c.Sid);

/** The environment of a replica in front of `sim`, sharing `redisUrl` under `prefix`. */
function replicaEnv(sim: Simulator, redisUrl: string, prefix: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    EXOTEL_ACCOUNT_SID: sim.accountSid,
    EXOTEL_API_KEY: sim.apiKey,
    EXOTEL_API_TOKEN: sim.apiToken,
    EXOTEL_BASE_URL: sim.url,
    WEBHOOK_SECRET: `budget-redis-${randomBytes(16).toString('hex')}`,
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: prefix,
    ...extra,
  };
}

const sharedRedis = await redisOrSkip();
const privateRedis = (await redisAvailable()) || process.env.REQUIRE_REDIS === '1';

describe.skipIf(!sharedRedis)('fair share across replicas on Redis', () => {
  let sim: Simulator;
  let a: TestGateway;
  let b: TestGateway;

  beforeAll(async () => {
    sim = await createSimulator({ port: 0, host: '127.0.0.1', ratePerMinute: 100_000, timeScale: 0.01, log: () => {} });
    const env = replicaEnv(sim, TEST_REDIS_URL, testPrefix('budget-shares'), {
      GATEWAY_API_KEYS: `flood:${FLOOD}:read,calm:${CALM}:read`,
      GATEWAY_REPLICAS: '2',
      EXOTEL_RATE_LIMIT_PER_MIN: String(LIMIT),
      EXOTEL_RATE_WINDOW_MS: '600000',
      EXOTEL_RATE_QUEUE_MS: '1000',
    });
    [a, b] = await Promise.all([startGateway(env, {}, {}, { autoStop: false }), startGateway(env, {}, {}, { autoStop: false })]);
  });
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await sim?.stop();
  });

  it('a key flooding through both replicas leaves the reserve to a key on either, and each sees the fleet-wide use', async () => {
    sim.resetRequests();
    const floods = [a, b].map((gw) => gw.gql(BY_SID, { sids: Array.from({ length: 150 }, randomSid) }, as(FLOOD)));
    const calmSids = finished(sim).slice(0, 6);
    const calm = await Promise.all(calmSids.map((sid, i) => [a, b][i % 2]!.gql(CALL, { sid }, as(CALM))));
    const flooded = await Promise.all(floods);

    calm.forEach((r, i) => {
      expect(r.body.errors).toBeUndefined();
      expect(r.body.data.call.sid).toBe(calmSids[i]);
    });
    const limited = flooded.flatMap((r) => r.body.errors ?? []);
    expect(limited.length).toBeGreaterThan(0);
    for (const e of limited) {
      expect(e.extensions?.code).toBe('RATE_LIMITED');
      expect(e.extensions?.retryAfterSeconds).toBeGreaterThan(60);
    }
    // One account budget for the fleet, and the flooding key never into the reserve, whichever replica it used.
    expect(sim.countRequests()).toBeLessThanOrEqual(LIMIT);
    const [floodOnA, floodOnB, calmOnB] = await Promise.all([a.gql(RATE, {}, as(FLOOD)), b.gql(RATE, {}, as(FLOOD)), b.gql(RATE, {}, as(CALM))]);
    expect(floodOnA.body.data.rateLimit.myUsed).toBe(floodOnB.body.data.rateLimit.myUsed);
    expect(floodOnA.body.data.rateLimit.myUsed).toBeLessThanOrEqual(LIMIT - RESERVE);
    expect(floodOnA.body.data.rateLimit.myUsed + calmOnB.body.data.rateLimit.myUsed).toBe(sim.countRequests());
  });
});

describe.skipIf(!privateRedis)('a stalled Redis', () => {
  let redis: RedisProcess;
  let sim: Simulator;
  let gw: TestGateway;
  let storage: Storage | undefined;
  const stall = () => redis.stall();
  const resume = () => redis?.resume();

  beforeAll(async () => {
    redis = await startPrivateRedis({ durable: false });
    sim = await createSimulator({ port: 0, host: '127.0.0.1', ratePerMinute: 100_000, timeScale: 0.01, log: () => {} });
  });
  afterAll(async () => {
    resume();
    await gw?.stop();
    await storage?.close();
    await redis?.dispose();
    await sim?.stop();
  });

  it('leaves queries answering: a cache read gives up and counts as a miss, the budget falls back to this replica', async () => {
    gw = await startGateway(replicaEnv(sim, redis.url, testPrefix('budget-stall'), { GATEWAY_ALLOW_OPEN: '1' }), {}, {}, { autoStop: false });
    const [warm, cold] = finished(sim);
    expect((await gw.gql(CALL, { sid: warm })).body.data.call.sid).toBe(warm);
    stall();
    try {
      // Asserted by answer, not by time: with no command timeout these requests would hang for as long as Redis stalls.
      const [again, fresh, rate] = await Promise.all([gw.gql(CALL, { sid: warm }), gw.gql(CALL, { sid: cold }), gw.gql(RATE)]);
      expect(again.body.data.call.sid).toBe(warm);
      expect(fresh.body.data.call.sid).toBe(cold);
      expect(rate.body.errors).toBeUndefined();
      expect(rate.body.data.rateLimit.remaining).toBeGreaterThan(0);
    } finally {
      resume();
    }
  });

  it('starts the fallback budget from the fleet\'s last known use, not from an empty window', async () => {
    storage = await createRedisStorage({ redisUrl: redis.url, keyPrefix: testPrefix('budget-fallback'), expectedReplicas: 2 });
    const budget = storage.rateBudget('exotel:fallback', 20, 600_000);
    // The fleet has spent 16 of 20 (this replica saw the count on its last answer).
    for (let i = 0; i < 16; i++) expect((await budget.tryHold(1000)).ok).toBe(true);
    stall();
    try {
      // 4 left for the fleet, so this replica's part is 2 (of its fallback limit of 10), not 10.
      const taken = [];
      for (let i = 0; i < 5; i++) taken.push((await budget.tryHold(1000)).ok);
      expect(taken).toEqual([true, true, false, false, false]);
      expect(await budget.status()).toMatchObject({ limit: 10, remaining: 0 });
    } finally {
      resume();
    }
  });

  /** Takes until refused (at most `max`); answers how many were granted. */
  const takeAll = async (budget: ReturnType<Storage['rateBudget']>, max: number) => {
    let granted = 0;
    while (granted < max && (await budget.tryHold(1000)).ok) granted += 1;
    return granted;
  };
  /** Waits until the budget answers from Redis again (its limit is the account's, not this replica's share). */
  const backOnRedis = async (budget: ReturnType<Storage['rateBudget']>) => {
    const deadline = Date.now() + 10_000;
    while ((await budget.status()).limit !== 20) {
      if (Date.now() > deadline) throw new Error('the budget never went back to Redis');
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  it('counts what was spent on the fallback once Redis answers again, so the window never holds more than the limit', async () => {
    const own = await createRedisStorage({ redisUrl: redis.url, keyPrefix: testPrefix('budget-resume'), expectedReplicas: 2 });
    try {
      const budget = own.rateBudget('exotel:resume', 20, 600_000);
      let sent = await takeAll(budget, 14);
      stall();
      try {
        sent += await takeAll(budget, 20);
      } finally {
        resume();
      }
      await backOnRedis(budget);
      sent += await takeAll(budget, 20);
      expect(sent).toBeLessThanOrEqual(20);
      expect(sent).toBeGreaterThanOrEqual(14 + 3);
    } finally {
      await own.close();
    }
  });

  it('puts back what this replica spent in the window when Redis restarts empty', async () => {
    const own = await createRedisStorage({ redisUrl: redis.url, keyPrefix: testPrefix('budget-restart'), expectedReplicas: 2 });
    try {
      const budget = own.rateBudget('exotel:restart', 20, 600_000);
      let sent = await takeAll(budget, 14);
      await redis.stop('SIGKILL');
      sent += await takeAll(budget, 20);
      await redis.start();
      await backOnRedis(budget);
      sent += await takeAll(budget, 20);
      // 14 on Redis, 3 (this replica's part of the 6 left) while it was down, and only the rest after.
      expect(sent).toBe(20);
    } finally {
      await own.close();
    }
  });
});
