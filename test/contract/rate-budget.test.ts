/**
 * One RateBudget contract, run against the memory budget (injected clock) and the Redis budget (real Redis,
 * Redis TIME, so its "wait" really sleeps a short window). Then what the Redis storage's budget puts back
 * into the shared window after an outage, on a private redis-server that is killed and restarted empty.
 */
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createFallbackRateBudget, createMemoryRateBudget, createRedisRateBudget } from '../../src/storage/rate-budget.js';
import { createRedisStorage } from '../../src/storage/redis.js';
import type { RateBudget, Storage } from '../../src/storage/types.js';
import { startPrivateRedis, type RedisProcess } from '../helpers/processes.js';
import { redisAvailable, redisOrSkip, testPrefix, TEST_REDIS_URL } from '../helpers/redis.js';

interface Harness {
  make(limit: number): RateBudget;
  /** Lets `ms` of budget time pass. */
  wait(ms: number): Promise<void>;
  /** The window the harness builds budgets with, ms. */
  windowMs: number;
  /** A second budget object on the same shared state (another replica), when the backend has one. */
  makeReplica?(limit: number): RateBudget;
}

async function takeMany(budget: RateBudget, n: number): Promise<number> {
  const results = await Promise.all(Array.from({ length: n }, () => budget.tryTake()));
  return results.filter((r) => r.ok).length;
}

function rateBudgetContract(name: string, setup: () => Harness): void {
  describe(`RateBudget contract: ${name}`, () => {
    it('allows exactly `limit` takes in a window, then refuses with a retryAfterMs within the window', async () => {
      const h = setup();
      const budget = h.make(3);
      for (let i = 0; i < 3; i++) expect(await budget.tryTake()).toEqual({ ok: true });
      const refused = await budget.tryTake();
      expect(refused.ok).toBe(false);
      if (refused.ok) return;
      expect(refused.retryAfterMs).toBeGreaterThan(0);
      expect(refused.retryAfterMs).toBeLessThanOrEqual(h.windowMs);
    });

    it('never lets more than `limit` through when many take at once', async () => {
      const h = setup();
      const budget = h.make(5);
      expect(await takeMany(budget, 20)).toBe(5);
      const status = await budget.status();
      expect(status).toMatchObject({ limit: 5, remaining: 0 });
    });

    it('reports remaining and when the oldest request leaves the window', async () => {
      const h = setup();
      const budget = h.make(4);
      const before = await budget.status();
      expect(before).toMatchObject({ limit: 4, remaining: 4 });
      await budget.tryTake();
      await budget.tryTake();
      const after = await budget.status();
      expect(after.remaining).toBe(2);
      // resetsAt = the first take + window: later than "now", at most one window ahead of the first status.
      expect(after.resetsAtMs).toBeGreaterThan(before.resetsAtMs);
      expect(after.resetsAtMs - before.resetsAtMs).toBeLessThanOrEqual(h.windowMs + 50);
    });

    it('rolls: capacity comes back as each old request leaves, not all at once at a boundary', async () => {
      const h = setup();
      const budget = h.make(3);
      expect(await takeMany(budget, 2)).toBe(2); // t = 0
      await h.wait(h.windowMs * 0.6);
      expect(await takeMany(budget, 1)).toBe(1); // t = 0.6 w: window full
      expect((await budget.tryTake()).ok).toBe(false);
      await h.wait(h.windowMs * 0.55); // t = 1.15 w: the two from t = 0 have left, the one from 0.6 w has not
      // A fixed window would hand out 3 here; a rolling one only the 2 that left.
      expect(await takeMany(budget, 3)).toBe(2);
    });

    it('a refused take does not use up budget', async () => {
      const h = setup();
      const budget = h.make(1);
      expect((await budget.tryTake()).ok).toBe(true);
      for (let i = 0; i < 5; i++) expect((await budget.tryTake()).ok).toBe(false);
      const refused = await budget.tryTake();
      if (refused.ok) throw new Error('expected a refusal');
      await h.wait(refused.retryAfterMs + 20);
      expect((await budget.tryTake()).ok).toBe(true);
    });

    it('is shared by every budget object on the same state (replicas)', async (ctx) => {
      const h = setup();
      if (!h.makeReplica) return ctx.skip();
      const a = h.make(4);
      const b = h.makeReplica(4);
      const [fromA, fromB] = await Promise.all([takeMany(a, 4), takeMany(b, 4)]);
      expect(fromA + fromB).toBe(4);
      expect((await b.status()).remaining).toBe(0);
    });

    it('a hold stays in the window until settled, however old, then counts from the settle', async () => {
      const h = setup();
      const budget = h.make(2);
      const hold = await budget.tryHold(h.windowMs * 3);
      if (!hold.ok) throw new Error('expected a hold');
      expect((await budget.tryTake()).ok).toBe(true);
      await h.wait(h.windowMs * 1.5);
      // The plain take has left; the unsettled hold has not (its request may not have arrived yet).
      expect(await takeMany(budget, 2)).toBe(1);
      await hold.settle();
      await hold.settle(); // a second settle does nothing
      await h.wait(h.windowMs * 0.5);
      // Settled 0.5 w ago: still in the window.
      expect((await budget.tryTake()).ok).toBe(false);
      await h.wait(h.windowMs * 0.6);
      expect((await budget.status()).remaining).toBeGreaterThanOrEqual(1);
    });

    it('a hold nobody settles leaves the window maxHoldMs after its take (its process died)', async () => {
      const h = setup();
      const budget = h.make(1);
      const hold = await budget.tryHold(h.windowMs * 0.5);
      expect(hold.ok).toBe(true);
      await h.wait(h.windowMs * 1.2);
      expect((await budget.tryTake()).ok).toBe(false);
      await h.wait(h.windowMs * 0.4);
      expect((await budget.tryTake()).ok).toBe(true);
    });

    it('a client at its share may not take the reserved rest of the window, another client may, and each sees its own use', async () => {
      const h = setup();
      const budget = h.make(10);
      const flood = { client: 'flood', share: 5, reserve: 3 };
      const calm = { client: 'calm', share: 5, reserve: 3 };
      // Its share (5), then on while more than the reserve would be left: 7 in all.
      for (let i = 0; i < 7; i++) expect((await budget.tryHold(1000, flood)).ok).toBe(true);
      const refused = await budget.tryHold(1000, flood);
      expect(refused).toMatchObject({ ok: false, reason: 'over-share' });
      if (refused.ok) return;
      // True for that client: no sooner than its own requests (or enough of all) leave the window.
      expect(refused.retryAfterMs).toBeGreaterThan(h.windowMs / 2);
      expect(refused.retryAfterMs).toBeLessThanOrEqual(h.windowMs + 1000);
      for (let i = 0; i < 3; i++) expect(await budget.tryHold(1000, calm)).toMatchObject({ ok: true, clientUsed: i + 1 });
      expect(await budget.tryHold(1000, calm)).toMatchObject({ ok: false, reason: 'exhausted' });
      expect(await budget.status('flood')).toMatchObject({ remaining: 0, clientUsed: 7 });
      expect((await budget.status('calm')).clientUsed).toBe(3);
      expect((await budget.status()).clientUsed).toBe(0);
    });

    it("the over-share refusal's wait is true for that client: once it has passed, the client takes again", async () => {
      const h = setup();
      const budget = h.make(4);
      const flood = { client: 'flood', share: 2, reserve: 2 };
      for (let i = 0; i < 2; i++) {
        const hold = await budget.tryHold(1000, flood);
        if (hold.ok) await hold.settle();
      }
      const refused = await budget.tryHold(1000, flood);
      expect(refused).toMatchObject({ ok: false, reason: 'over-share' });
      if (refused.ok) return;
      await h.wait(refused.retryAfterMs + 20);
      expect((await budget.tryHold(1000, flood)).ok).toBe(true);
    });

    it('a client under its share takes even from the reserve', async () => {
      const h = setup();
      const budget = h.make(4);
      const big = { client: 'big', share: 3, reserve: 2 };
      for (let i = 0; i < 3; i++) expect((await budget.tryHold(1000, big)).ok).toBe(true);
      expect((await budget.tryHold(1000, { client: 'small', share: 1, reserve: 2 })).ok).toBe(true);
    });

    it('rejects a non-positive limit or window', () => {
      const h = setup();
      expect(() => h.make(0)).toThrow(/limit/);
    });
  });
}

rateBudgetContract('memory', () => {
  let now = 1_700_000_000_000;
  const clock = { now: () => now };
  const windowMs = 1_000;
  return {
    windowMs,
    make: (limit) => createMemoryRateBudget({ limit, windowMs, clock }),
    wait: async (ms) => {
      now += ms;
    },
  };
});

const redisUp = await redisOrSkip();
const clients: Redis[] = [];
afterAll(async () => {
  await Promise.all(clients.map((c) => c.quit().catch(() => c.disconnect())));
});

describe.skipIf(!redisUp)('with Redis', () => {
  const prefix = testPrefix('rate-budget');
  let n = 0;
  const client = () => {
    const c = new Redis(TEST_REDIS_URL, { lazyConnect: false, maxRetriesPerRequest: 1 });
    clients.push(c);
    return c;
  };
  rateBudgetContract('redis', () => {
    const key = `${prefix}${++n}`;
    const windowMs = 400;
    return {
      windowMs,
      make: (limit) => createRedisRateBudget({ redis: client(), key, limit, windowMs }),
      makeReplica: (limit) => createRedisRateBudget({ redis: client(), key, limit, windowMs }),
      wait: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    };
  });
});

describe('createFallbackRateBudget', () => {
  it('uses the per-replica fallback while the primary fails, and the primary again once it answers', async () => {
    let now = 0;
    const clock = { now: () => now };
    const shared = createMemoryRateBudget({ limit: 10, windowMs: 1_000, clock });
    let primaryDown = false;
    // The fault (the shared store failing and recovering) is the one thing a real part cannot be told to do on cue.
    const primary: RateBudget = {
      tryTake: () => (primaryDown ? Promise.reject(new Error('ECONNREFUSED')) : shared.tryTake()),
      tryHold: (maxHoldMs) => (primaryDown ? Promise.reject(new Error('ECONNREFUSED')) : shared.tryHold(maxHoldMs)),
      status: () => (primaryDown ? Promise.reject(new Error('ECONNREFUSED')) : shared.status()),
    };
    const local = createMemoryRateBudget({ limit: 2, windowMs: 1_000, clock });
    const switches: string[] = [];
    const budget = createFallbackRateBudget(primary, local, { probeIntervalMs: 100, clock, onSwitch: (using) => switches.push(using) });

    expect(await takeMany(budget, 3)).toBe(3);
    expect((await shared.status()).remaining).toBe(7);

    primaryDown = true;
    // The fallback has its own, smaller limit: the replica's share of the account.
    expect(await takeMany(budget, 5)).toBe(2);
    expect((await budget.status()).limit).toBe(2);
    expect(switches).toEqual(['fallback']);

    primaryDown = false;
    now += 50; // still inside the probe interval: stays on the fallback
    expect((await budget.status()).limit).toBe(2);
    now += 100;
    expect((await budget.status()).limit).toBe(10);
    expect(switches).toEqual(['fallback', 'primary']);
  });

  it('falls back when a real Redis is unreachable', async () => {
    const dead = new Redis({ port: 1, host: '127.0.0.1', lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
    clients.push(dead);
    const primary = createRedisRateBudget({ redis: dead, key: 'never', limit: 100, windowMs: 1_000 });
    const budget = createFallbackRateBudget(primary, createMemoryRateBudget({ limit: 1, windowMs: 1_000 }));
    expect((await budget.tryTake()).ok).toBe(true);
    expect((await budget.tryTake()).ok).toBe(false);
    expect((await budget.status()).limit).toBe(1);
  });
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
const privateRedis = (await redisAvailable()) || process.env.REQUIRE_REDIS === '1';

describe.skipIf(!privateRedis)('putting back into the shared window what was spent while Redis was away', () => {
  let redis: RedisProcess;
  const storages: Storage[] = [];
  beforeAll(async () => {
    // Not durable: a restart starts empty, as a Redis without persistence does, and forgets every request.
    redis = await startPrivateRedis({ durable: false });
  });
  afterEach(async () => {
    await Promise.all(storages.splice(0).map((s) => s.close()));
  });
  afterAll(async () => {
    await redis?.dispose();
  });

  /** The Redis storage's budget (Redis, with this replica's fallback of limit ÷ 2 while Redis is away). */
  async function budgetOf(name: string, limit: number, windowMs: number): Promise<{ budget: RateBudget; key: string }> {
    const keyPrefix = testPrefix(`budget-${name}`);
    const storage = await createRedisStorage({ redisUrl: redis.url, keyPrefix, expectedReplicas: 2 });
    storages.push(storage);
    return { budget: storage.rateBudget(name, limit, windowMs), key: `${keyPrefix}budget:${name}` };
  }

  /** Until the budget answers from Redis again: its limit is the account's, not this replica's part. */
  async function backOnRedis(budget: RateBudget, limit: number): Promise<void> {
    const deadline = Date.now() + 10_000;
    while ((await budget.status()).limit !== limit) {
      if (Date.now() > deadline) throw new Error('the budget never went back to Redis');
      await sleep(50);
    }
  }

  // A hold is the request between its take and its answer: pending, it stays in the window however long
  // it takes (Exotel counts it when it arrives, which only its answer proves), and a hold never settled
  // (its process died) leaves the window maxHoldMs after the take. Settled, it counts from its answer.
  // What this replica keeps to put back must follow the settle too, or a Redis that restarts empty is
  // given its requests as still pending, and refuses the window to everyone until their holds would end.
  it('puts each answered request back at its answer, not at the end of its hold', async () => {
    const windowMs = 5_000;
    const maxHoldMs = 60_000;
    const { budget } = await budgetOf('holds', 4, windowMs);
    for (let i = 0; i < 2; i++) {
      const hold = await budget.tryHold(maxHoldMs);
      if (!hold.ok) throw new Error('expected a hold on Redis');
      await hold.settle();
    }

    await redis.stop('SIGKILL');
    // On this replica's fallback (2 of the 4; the fleet had 2 left, so its part is 1): one request, answered.
    const onFallback = await budget.tryHold(maxHoldMs);
    if (!onFallback.ok) throw new Error('expected a hold on the fallback');
    await onFallback.settle();
    const lastAnsweredAt = Date.now();
    expect(await budget.status()).toMatchObject({ limit: 2, remaining: 0 });

    await redis.start();
    await backOnRedis(budget, 4);
    // All three are back in the emptied window (well within a window of their answers)…
    expect(await budget.status()).toMatchObject({ limit: 4, remaining: 1 });
    // …and leave it a window after their answers, not a window after their holds would have ended.
    await sleep(lastAnsweredAt + windowMs + 200 - Date.now());
    expect(await budget.status()).toMatchObject({ limit: 4, remaining: 4 });
    for (let i = 0; i < 4; i++) expect((await budget.tryHold(maxHoldMs)).ok).toBe(true);
  }, 20_000);

  // Old requests sent along would count nothing (every take and status drops what is a window old first),
  // but what this replica keeps to put back would grow with every request it ever made, and so would the
  // put-back: so what is seen here is what Redis is sent.
  it('puts back only the requests still in the window, and sends Redis no others', async () => {
    const windowMs = 1_500;
    const { budget, key } = await budgetOf('window', 4, windowMs);
    for (let i = 0; i < 3; i++) expect((await budget.tryTake()).ok).toBe(true);
    await sleep(windowMs + 200);
    // The three have left the window; this one has not.
    expect((await budget.tryTake()).ok).toBe(true);

    await redis.stop('SIGKILL');
    expect((await budget.status()).limit).toBe(2);
    await redis.start();
    // Every script call on the budget's key, as Redis receives it.
    const monitor = await new Redis(redis.url).monitor();
    const calls: string[][] = [];
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (/^eval(sha)?$/i.test(args[0] ?? '') && args[3] === key) calls.push(args);
    });
    try {
      await backOnRedis(budget, 4);
      expect(await budget.status()).toMatchObject({ limit: 4, remaining: 3 });
      // The put-back (one key, then the window and member–age pairs): the one request in the window, no more.
      const restores = calls.filter((args) => args[2] === '1');
      expect(restores.length).toBeGreaterThan(0);
      for (const args of restores) expect((args.length - 5) / 2).toBe(1);
    } finally {
      monitor.disconnect();
    }
  });
});
