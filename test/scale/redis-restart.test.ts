/**
 * Redis restarted mid-stream under two real replicas. The Redis here is a
 * private redis-server on a free port, never the machine's shared one: it is SIGKILLed (a crash) while
 * callbacks keep arriving, then started again on the same port and data directory.
 *
 * It runs with an append-only file fsynced on every write, the way a Redis that holds acknowledged
 * webhooks must run (docker-compose.yml does the same): "answered 200" means "Redis stored it", and
 * a Redis that forgets what it stored would break that promise whatever the gateway did.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSimulator, type Simulator } from '../../src/simulator/index.js';
import { redisAvailable, testPrefix } from '../helpers/redis.js';
import { spawnGateway, startPrivateRedis, stopAllProcesses, waitUntil, type GatewayProcess, type RedisProcess } from '../helpers/processes.js';
import {
  countKeys,
  GRAPHQL_STATUS,
  gql,
  keyOf,
  newCallSid,
  postCallback,
  replicaEnv,
  spawnPair,
  subscribeCallEvents,
  type CallCallback,
  type Subscriber,
  WEBHOOK_SECRET,
} from './harness.js';
import { callbackToken } from '../../src/live/callback-urls.js';

/** redis-server must be installed for a private instance; CI (REQUIRE_REDIS=1) has it. */
const haveRedisServer = (await redisAvailable()) || process.env.REQUIRE_REDIS === '1';

describe.skipIf(!haveRedisServer)('Redis restarted under two replicas', () => {
  let sim: Simulator;
  let redis: RedisProcess;
  let a: GatewayProcess;
  let b: GatewayProcess;
  let subscriber: Subscriber | undefined;
  const prefix = testPrefix('scale-restart');

  beforeAll(async () => {
    sim = await createSimulator({ port: 0, ratePerMinute: 100_000, timeScale: 0.01, seedCalls: 5, log: () => {} });
    redis = await startPrivateRedis({ durable: true });
    [a, b] = await spawnPair(replicaEnv(sim, redis.url, prefix, { EXOTEL_RATE_QUEUE_MS: '500' }));
  }, 60_000);

  afterAll(async () => {
    await subscriber?.dispose();
    await stopAllProcesses();
    await redis?.dispose();
    await sim?.stop();
  });

  const ready = async (url: string) => {
    const res = await fetch(`${url}/readyz`);
    return { status: res.status, body: (await res.json()) as { status: string; checks: Record<string, boolean> } };
  };

  it('answers 503 while Redis is down, never a 200 it did not store, and stores each retry once after', async () => {
    const sids = Array.from({ length: 40 }, newCallSid);
    const sentinelSid = newCallSid();
    const callbacks: CallCallback[] = sids.flatMap((callSid) => [
      { callSid, status: 'in-progress' },
      { callSid, status: 'completed' },
    ]);
    const want = callbacks.map((cb) => `${cb.callSid}/${GRAPHQL_STATUS[cb.status]}`);
    subscriber = await subscribeCallEvents(b.wsUrl, { callSids: [...sids, sentinelSid] });
    const replicas = [a, b];
    const answered200: CallCallback[] = [];
    const post = async (cb: CallCallback, i: number) => {
      const res = await postCallback(replicas[i % 2]!.url, sim.accountSid, cb);
      if (res.status === 200) answered200.push(cb);
      return res;
    };

    // Before: Redis up, every callback stored.
    const before = callbacks.slice(0, 8);
    for (const [i, cb] of before.entries()) expect(await post(cb, i)).toEqual({ status: 200, body: 'OK' });
    await subscriber.waitFor((events) => events.length >= before.length, 'the first callbacks on B');

    // Redis crashes.
    await redis.stop('SIGKILL');
    const during = callbacks.slice(8, 14);
    for (const [i, cb] of during.entries()) {
      // Exotel is told to try again: nothing was stored, so a 200 would lose the callback.
      expect(await post(cb, i)).toEqual({ status: 503, body: 'Service Unavailable: try again' });
    }
    for (const replica of replicas) {
      expect(await ready(replica.url)).toEqual({ status: 503, body: { status: 'not ready', checks: { started: true, storage: false, upstream: true }, reason: 'storage is unreachable' } });
      expect(await (await fetch(`${replica.url}/metrics`)).text()).toContain('gateway_dependency_up{dependency="storage"} 0');
    }
    // Queries still answer from Exotel: cache errors are misses, the budget falls back to this replica's share.
    const lookup = await gql<{ numberMetadata: { phoneNumber: string } | null }>(a.url, 'query($n: String!) { numberMetadata(number: $n) { phoneNumber } }', {
      n: '+919812345678',
    });
    expect(lookup.errors).toBeUndefined();
    expect(lookup.data?.numberMetadata?.phoneNumber).toBeTruthy();
    // ...spending this replica's share of the account budget (200/min over GATEWAY_REPLICAS=2) until Redis is back.
    const budget = await gql<{ rateLimit: { limitPerMinute: number } }>(a.url, '{ rateLimit { limitPerMinute } }');
    expect(budget.data?.rateLimit.limitPerMinute).toBe(100);

    // A mutation whose idempotencyKey cannot be checked is refused clearly, before anything is sent.
    const smsSent = sim.countRequests({ endpoint: 'sms.send' });
    const mutation = await gql(b.url, 'mutation($k: String!) { sendSms(input: { from: "08039591111", to: "09812345678", body: "hi", idempotencyKey: $k }) { sms { sid } } }', {
      k: `outage-${prefix}`,
    });
    expect(mutation.data).toBeNull();
    expect(mutation.errors).toEqual([
      expect.objectContaining({ message: expect.stringContaining("shared storage is unavailable; nothing was sent to Exotel"), extensions: { code: 'STORAGE_UNAVAILABLE', retryAfterSeconds: 5 } }),
    ]);
    expect(sim.countRequests({ endpoint: 'sms.send' })).toBe(smsSent);

    // Redis comes back on the same port; the replicas reconnect by themselves.
    await redis.start();
    await waitUntil(async () => (await ready(a.url)).status === 200 && (await ready(b.url)).status === 200, 'both replicas ready again', 10_000, 50);
    await waitUntil(async () => (await gql<{ rateLimit: { limitPerMinute: number } }>(a.url, '{ rateLimit { limitPerMinute } }')).data?.rateLimit.limitPerMinute === 200, 'the shared budget again', 10_000, 50);

    // Exotel's retries: the ones answered 503, the ones already stored (a retry after a lost 200), and the rest.
    const retries = [...during, ...before, ...callbacks.slice(14, 20)];
    for (const [i, cb] of retries.entries()) expect(await post(cb, i + 1)).toEqual({ status: 200, body: 'OK' });

    // Mid-stream: callbacks keep arriving from several "Exotel workers" that retry until they get a 200,
    // and Redis crashes under them, with requests in flight, and comes back. Each worker sends a call's
    // callbacks in order (a late in-progress after completed is rightly not a change: statuses only move
    // forward), several calls at once.
    const stream = callbacks.slice(20);
    const calls = sids.slice(10);
    let next = 0;
    let ok = 0;
    const statuses = new Set<number>();
    const worker = async (w: number) => {
      for (let sid = calls[next++]; sid; sid = calls[next++]) {
        for (const cb of stream.filter((c) => c.callSid === sid)) {
          const deadline = Date.now() + 15_000;
          for (let attempt = 0; ; attempt++) {
            const res = await post(cb, w + attempt);
            statuses.add(res.status);
            if (res.status === 200) break;
            expect(res.status).toBe(503);
            if (Date.now() > deadline) throw new Error(`callback ${keyOf(cb)} never stored`);
            await new Promise((r) => setTimeout(r, 30));
          }
          ok += 1;
        }
      }
    };
    const workers = Promise.all([0, 1, 2, 3].map(worker));
    await waitUntil(() => ok >= stream.length / 4, 'a quarter of the stream stored', 10_000, 5);
    await redis.stop('SIGKILL');
    await waitUntil(() => statuses.has(503), 'a 503 while Redis is down', 5_000, 5);
    await redis.start();
    await workers;
    expect(ok).toBe(stream.length);
    // And every one of them once more, as a late retry: all already stored.
    for (const [i, cb] of stream.entries()) expect(await post(cb, i)).toEqual({ status: 200, body: 'OK' });

    expect(await postCallback(a.url, sim.accountSid, { callSid: sentinelSid, status: 'in-progress' })).toMatchObject({ status: 200 });
    await subscriber.waitFor((events) => events.some((e) => e.callSid === sentinelSid), 'the sentinel on B');

    // The subscriber on B lived through the outage and saw every change exactly once.
    const seen = subscriber.events.filter((e) => e.callSid !== sentinelSid);
    expect(seen.every((e) => e.id !== 'error')).toBe(true);
    expect([...countKeys(seen.map(keyOf)).entries()].filter(([, n]) => n !== 1)).toEqual([]);
    expect(new Set(seen.map(keyOf))).toEqual(new Set(want));

    // The stream itself: every callback answered 200 is there, each change stored forward exactly once.
    const direct = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    try {
      await direct.connect();
      const entries = (await direct.xrange(`${prefix}events`, '-', '+')) as Array<[string, string[]]>;
      const stored = entries
        .map(([, fields]) => JSON.parse(fields[fields.indexOf('e') + 1]!) as { kind: string; callSid: string; status: string; forward: boolean })
        .filter((e) => e.kind === 'call' && sids.includes(e.callSid));
      const forward = stored.filter((e) => e.forward).map(keyOf);
      expect([...countKeys(forward).entries()].filter(([, n]) => n !== 1)).toEqual([]);
      expect(new Set(forward)).toEqual(new Set(want));
      const storedKeys = new Set(stored.map(keyOf));
      for (const cb of answered200) expect(storedKeys.has(`${cb.callSid}/${GRAPHQL_STATUS[cb.status]}`)).toBe(true);
    } finally {
      direct.disconnect();
    }

    // No crash, no unhandled rejection; the outage and the recovery are in the logs.
    for (const replica of replicas) {
      expect(replica.running()).toBe(true);
      const logs = replica.logs();
      expect(logs.filter((l) => l.msg === 'unhandled rejection')).toEqual([]);
      expect(logs.some((l) => l.msg === 'redis connection failed; retrying')).toBe(true);
      expect(logs.some((l) => l.msg === 'redis connection restored')).toBe(true);
      for (const secret of [sim.apiToken, WEBHOOK_SECRET, callbackToken(WEBHOOK_SECRET, sim.accountSid, 'call-status')]) expect(replica.output()).not.toContain(secret);
    }
  });

  it('a replica started while Redis is down reports not ready, answers webhooks 503, and recovers by itself', async () => {
    await redis.stop('SIGKILL');
    const c = await spawnGateway('replica-C', replicaEnv(sim, redis.url, prefix));
    expect(await ready(c.url)).toEqual({ status: 503, body: { status: 'not ready', checks: { started: true, storage: false, upstream: true }, reason: 'storage is unreachable' } });
    const sid = newCallSid();
    expect(await postCallback(c.url, sim.accountSid, { callSid: sid, status: 'in-progress' })).toEqual({ status: 503, body: 'Service Unavailable: try again' });

    await redis.start();
    await waitUntil(async () => (await ready(c.url)).status === 200, 'replica C ready', 10_000, 50);
    // Its event log reader started without Redis; once connected, events reach its subscribers.
    await waitUntil(async () => (await ready(b.url)).status === 200, 'replica B ready', 10_000, 50);
    const onC = await subscribeCallEvents(c.wsUrl, { callSids: [sid] });
    try {
      expect(await postCallback(b.url, sim.accountSid, { callSid: sid, status: 'in-progress' })).toEqual({ status: 200, body: 'OK' });
      await onC.waitFor((events) => events.length === 1, 'the callback on C');
      expect(onC.events.map(keyOf)).toEqual([`${sid}/IN_PROGRESS`]);
    } finally {
      await onC.dispose();
    }
    expect(c.running()).toBe(true);
    expect(c.logs().filter((l) => l.msg === 'unhandled rejection')).toEqual([]);
  });
});
