/**
 * Scale-out: two real gateway processes sharing the machine's Redis (under a key prefix of
 * their own) and one simulator playing Exotel. Webhooks go to one replica, subscribers sit on the other;
 * lookups are spread over both and counted where they land, at the simulator.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSimulator, type Simulator } from '../../src/simulator/index.js';
import { deleteKeys, redisOrSkip, TEST_REDIS_URL, testPrefix } from '../helpers/redis.js';
import { stopAllProcesses, waitUntil, type GatewayProcess } from '../helpers/processes.js';
import {
  countKeys,
  GRAPHQL_STATUS,
  gql,
  keyOf,
  maxInRollingWindow,
  newCallSid,
  postCallback,
  replicaEnv,
  spawnPair,
  subscribeCallEvents,
  subscribeCallStatus,
  subscriberPool,
  type CallCallback,
} from './harness.js';

/** The budget under test: small, with a short window, so a few seconds cover several windows. */
const LIMIT = 20;
const WINDOW_MS = 2000;
const POLL_INTERVAL_MS = 250;

describe.skipIf(!(await redisOrSkip()))('two replicas on one Redis', () => {
  let sim: Simulator;
  let a: GatewayProcess;
  let b: GatewayProcess;
  const { subscribe, disposeAll } = subscriberPool();
  const prefix = testPrefix('scale');

  beforeAll(async () => {
    // The simulator's own budget is far above the gateway's: what is counted here is what the gateways send.
    sim = await createSimulator({ port: 0, ratePerMinute: 100_000, timeScale: 1, seedCalls: 5, log: () => {} });
    [a, b] = await spawnPair(
      replicaEnv(sim, TEST_REDIS_URL, prefix, {
        EXOTEL_RATE_LIMIT_PER_MIN: String(LIMIT),
        EXOTEL_RATE_WINDOW_MS: String(WINDOW_MS),
        // Short queue: a lookup waits a little for budget, then answers RATE_LIMITED.
        EXOTEL_RATE_QUEUE_MS: '300',
        LIVE_POLL_INTERVAL_MS: String(POLL_INTERVAL_MS),
        // The poller may spend half the budget: 10 polls per 2 s window, more than one per interval.
        LIVE_POLL_BUDGET_SHARE: '0.5',
      }),
    );
  }, 60_000);

  afterAll(async () => {
    await disposeAll();
    await stopAllProcesses();
    await sim?.stop();
    await deleteKeys(prefix);
  });

  it('a callback posted to replica A reaches a subscriber on replica B exactly once', async () => {
    const sid = newCallSid();
    const onB = await subscribe(b.wsUrl, { callSids: [sid] });
    const onA = await subscribe(a.wsUrl, { callSids: [sid] });

    const first = await postCallback(a.url, sim.accountSid, { callSid: sid, status: 'in-progress' });
    expect(first).toEqual({ status: 200, body: 'OK' });
    // Exotel's retry of the same callback, to the other replica: stored as history, not a second change.
    const retry = await postCallback(b.url, sim.accountSid, { callSid: sid, status: 'in-progress' });
    expect(retry).toEqual({ status: 200, body: 'OK' });
    const done = await postCallback(a.url, sim.accountSid, { callSid: sid, status: 'completed' });
    expect(done.status).toBe(200);

    const sawBoth = (events: Array<{ status: string }>) => events.some((e) => e.status === 'COMPLETED');
    await onB.waitFor(sawBoth, 'COMPLETED on B');
    await onA.waitFor(sawBoth, 'COMPLETED on A');
    for (const s of [onB, onA]) {
      expect(s.events.map((e) => [e.callSid, e.status, e.source])).toEqual([
        [sid, 'IN_PROGRESS', 'WEBHOOK'],
        [sid, 'COMPLETED', 'WEBHOOK'],
      ]);
    }
    // Both replicas saw the same stream entries (ids come from Redis, not from the replica).
    expect(onB.events.map((e) => e.id)).toEqual(onA.events.map((e) => e.id));
  });

  it('400 lookups over both replicas keep the combined upstream rate within the budget', async () => {
    sim.resetRequests();
    const distinct = 200;
    const numbers = Array.from({ length: distinct }, (_, i) => `+9198${String(10_000_000 + i * 7919).padStart(8, '0')}`);
    const query = `query($n: String!) { numberMetadata(number: $n) { phoneNumber operator } }`;
    const replicas = [a, b];
    const outcomes: Array<{ replica: number; number: string; ok: boolean; code?: string }> = [];

    // 400 lookups at a steady pace (~4 s, two budget windows): every number once on each replica.
    const started = Date.now();
    await Promise.all(
      Array.from({ length: 400 }, async (_, i) => {
        await new Promise((r) => setTimeout(r, i * 10));
        const replica = (i + Math.floor(i / distinct)) % 2;
        const number = numbers[i % distinct]!;
        const res = await gql<{ numberMetadata: { phoneNumber: string } | null }>(replicas[replica]!.url, query, { n: number });
        expect(res.status).toBe(200);
        if (res.data?.numberMetadata) {
          expect(res.errors).toBeUndefined();
          outcomes.push({ replica, number, ok: true });
        } else {
          // Beyond the budget the only acceptable failure is RATE_LIMITED, with a retry hint.
          expect(res.errors?.[0]?.extensions).toMatchObject({ code: 'RATE_LIMITED', retryAfterSeconds: expect.any(Number) });
          outcomes.push({ replica, number, ok: false, code: 'RATE_LIMITED' });
        }
      }),
    );
    const elapsedMs = Date.now() - started;

    const upstream = sim.requests.filter((r) => r.at >= started);
    // Counted here on arrival, over the whole window: each slot stays in the shared budget until its answer
    // is back (src/storage/rate-budget.ts), so arrivals never outrun it however slow the transit.
    expect(maxInRollingWindow(upstream.map((r) => r.at), WINDOW_MS)).toBeLessThanOrEqual(LIMIT);
    // The budget really was the bottleneck, on both replicas, and was spent (not starved).
    expect(upstream.length).toBeGreaterThanOrEqual(LIMIT);
    expect(upstream.length).toBeLessThanOrEqual(LIMIT * (Math.ceil(elapsedMs / WINDOW_MS) + 1));
    expect(upstream.every((r) => r.status !== 429)).toBe(true);
    for (const replica of [0, 1]) expect(outcomes.some((o) => o.replica === replica && !o.ok)).toBe(true);

    // The cache is shared: every number one replica fetched answers on the other without a request.
    const fetched = [...new Set(outcomes.filter((o) => o.ok).map((o) => o.number))];
    expect(fetched.length).toBeGreaterThan(0);
    const numberGets = sim.countRequests({ endpoint: 'numbers.get' });
    for (const number of fetched) {
      const fetchedOn = outcomes.find((o) => o.ok && o.number === number)!.replica;
      const res = await gql<{ numberMetadata: { phoneNumber: string } | null }>(replicas[1 - fetchedOn]!.url, query, { n: number });
      expect(res.errors).toBeUndefined();
      expect(res.data?.numberMetadata?.phoneNumber).toBeTruthy();
    }
    expect(sim.countRequests({ endpoint: 'numbers.get' })).toBe(numberGets);
  });

  it('the live poller runs on one replica at a time (a storage lease), though both have subscribers', async () => {
    // A real live call (the simulator runs at real speed here): it stays unanswered/in progress for seconds.
    const call = sim.calls.create({ from: '09812345001', to: '09812345002' });
    const watchers = [await subscribeCallStatus(a.wsUrl, call.Sid), await subscribeCallStatus(b.wsUrl, call.Sid)];
    try {
      const since = Date.now();
      const polls = () => sim.requests.filter((r) => r.at >= since && r.endpoint === 'calls.get' && r.path.includes(call.Sid)).map((r) => r.at);
      await waitUntil(() => polls().length >= 4, 'four polls of the watched call', 10_000);
      // One poller: each poll starts an interval after the previous round ended, so no two are closer.
      // Two pollers (one per replica) would interleave their rounds and land closer together.
      const times = polls();
      const gaps = times.slice(1).map((t, i) => t - times[i]!);
      expect(Math.min(...gaps)).toBeGreaterThanOrEqual(POLL_INTERVAL_MS - 5);
      expect(sim.calls.get(call.Sid)?.Status).not.toBe('completed');
    } finally {
      await Promise.all(watchers.map((w) => w.dispose()));
    }
  });

  it('a subscriber on A, with A killed mid-stream, resubscribes to B with `after` and loses nothing', async () => {
    const sids = Array.from({ length: 12 }, newCallSid);
    const sentinelSid = newCallSid();
    const posted: CallCallback[] = sids.flatMap((callSid) => [
      { callSid, status: 'in-progress' },
      { callSid, status: 'completed' },
    ]);
    const first = await subscribe(a.wsUrl, { callSids: [...sids, sentinelSid] });

    // Posted to B throughout, so the stream goes on while A dies; half before the kill, half after.
    const post = async (cb: CallCallback) => {
      const res = await postCallback(b.url, sim.accountSid, cb);
      expect(res).toEqual({ status: 200, body: 'OK' });
    };
    // A third before the kill, a third while A dies and nobody listens, a third after the resubscribe.
    const third = posted.length / 3;
    for (const cb of posted.slice(0, third)) await post(cb);
    await first.waitFor((events) => events.length >= 3, 'a few events on A');

    const killed = a.stop('SIGKILL');
    for (const cb of posted.slice(third, 2 * third)) await post(cb);
    await killed;
    const end = await first.ended;
    expect(end.error).toBeDefined();
    const seenOnA = [...first.events];
    const last = seenOnA.at(-1)!;

    const second = await subscribe(b.wsUrl, { after: last.id, callSids: [...sids, sentinelSid] });
    const more = (async () => {
      for (const cb of posted.slice(2 * third)) await post(cb);
    })();
    await more;
    const want = posted.map((cb) => `${cb.callSid}/${GRAPHQL_STATUS[cb.status]}`);
    await second.waitFor((events) => seenOnA.length + events.length >= want.length, 'the rest of the stream on B');

    // What was stored while nobody listened came from the replay.
    const missed = posted.slice(third, 2 * third).map((cb) => `${cb.callSid}/${GRAPHQL_STATUS[cb.status]}`);
    expect(second.events.map(keyOf)).toEqual(expect.arrayContaining(missed));
    const all = [...seenOnA, ...second.events];
    expect(all.every((e) => e.id !== 'error')).toBe(true);
    // Nothing lost, nothing twice, and in stream order across the switch.
    expect([...countKeys(all.map(keyOf)).values()].every((n) => n === 1)).toBe(true);
    expect(new Set(all.map(keyOf))).toEqual(new Set(want));
    const ids = all.map((e) => e.id);
    expect(ids).toEqual([...ids].sort(compareIds));
    // Nothing turns up late either: a sentinel posted last is the barrier, and it is the only newcomer.
    const sentinel = await postCallback(b.url, sim.accountSid, { callSid: sentinelSid, status: 'in-progress' });
    expect(sentinel.status).toBe(200);
    await second.waitFor((events) => events.some((e) => e.callSid === sentinelSid), 'the sentinel on B');
    expect(second.events.filter((e) => e.callSid !== sentinelSid).length).toBe(want.length - seenOnA.length);
  });
});

describe.skipIf(!(await redisOrSkip()))('the reconciler on two replicas', () => {
  let sim: Simulator;
  let a: GatewayProcess;
  let b: GatewayProcess;
  const prefix = testPrefix('scale-reconcile');

  beforeAll(async () => {
    // Calls end upstream within a second; their terminal callbacks are lost on the way.
    sim = await createSimulator({ port: 0, ratePerMinute: 100_000, timeScale: 0.02, seedCalls: 0, log: () => {} });
    sim.faults.dropCallbacks('all', { kind: 'call', eventType: 'terminal' });
    [a, b] = await spawnPair(replicaEnv(sim, TEST_REDIS_URL, prefix, { RECONCILE_GRACE_SECONDS: '0', LIVE_POLL_INTERVAL_MS: '100' }));
  }, 60_000);

  afterAll(async () => {
    await stopAllProcesses();
    await sim?.stop();
    await deleteKeys(prefix);
  });

  it('runs once across the fleet: each overdue call is fetched once, not once per replica', async () => {
    const connect = `mutation($input: ConnectCallInput!) { connectCall(input: $input) { call { sid } } }`;
    const sids: string[] = [];
    for (let i = 0; i < 4; i++) {
      // Placed through either replica: the open call is shared, whoever placed it.
      const res = await gql<{ connectCall: { call: { sid: string } } }>([a, b][i % 2]!.url, connect, {
        input: { from: '09876543210', to: `+91981234500${i + 4}`, callerId: '08039591111', timeLimit: 1, timeOut: 1 },
      });
      expect(res.errors).toBeUndefined();
      sids.push(res.data!.connectCall.call.sid);
    }
    const watcher = await subscribeCallEvents(b.wsUrl, { callSids: sids });
    try {
      // Due 2 s after the connect (TimeLimit + TimeOut); by then every call has ended upstream.
      await watcher.waitFor((events) => sids.every((sid) => events.some((e) => e.callSid === sid && e.status === 'COMPLETED')), 'every call finished by the reconciler', 20_000);
      for (const sid of sids) {
        const gets = sim.requests.filter((r) => r.endpoint === 'calls.get' && r.path.includes(sid));
        expect(gets, sid).toHaveLength(1);
      }
      expect(watcher.events.filter((e) => e.status === 'COMPLETED').map((e) => e.source)).toEqual(sids.map(() => 'POLL'));
    } finally {
      await watcher.dispose();
    }
  });
});


function compareIds(x: string, y: string): number {
  const [xm, xs] = x.split('-').map(BigInt) as [bigint, bigint];
  const [ym, ys] = y.split('-').map(BigInt) as [bigint, bigint];
  return xm !== ym ? (xm < ym ? -1 : 1) : xs === ys ? 0 : xs < ys ? -1 : 1;
}
