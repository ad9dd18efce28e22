/**
 * Chaos on the callback path: real gateway processes on the machine's Redis (a key prefix of their own),
 * callbacks over real HTTP, posted and retried the way Exotel does it (once, then at most twice more, a
 * second apart, here to the other replica). A replica is SIGKILLed in the middle of a burst, restarted
 * while callbacks keep coming, and two replicas get conflicting final statuses for the same calls at the
 * same moment. What must hold: no callback lost, none published twice, exactly one final status per call.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSimulator, type Simulator } from '../../src/simulator/index.js';
import { deleteKeys, redisOrSkip, TEST_REDIS_URL, testPrefix } from '../helpers/redis.js';
import { spawnGateway, stopAllProcesses, type GatewayProcess } from '../helpers/processes.js';
import { countKeys, keyOf, newCallSid, postCallback, replicaEnv, subscriberPool, type CallCallback, type Subscriber } from './harness.js';

const GRAPHQL: Record<string, string> = { 'in-progress': 'IN_PROGRESS', completed: 'COMPLETED', busy: 'BUSY' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How one callback ended: the HTTP status of each attempt (0 = no answer: the replica died). */
interface Delivery {
  cb: CallCallback;
  attempts: number[];
}

/**
 * Exotel's delivery of one callback: the first attempt to `first`; unless it was answered 200, a retry a
 * second later to `retryTo()` and, if needed, one more a second after that.
 */
async function deliver(cb: CallCallback, accountSid: string, first: () => string, retryTo: () => string): Promise<Delivery> {
  const attempts: number[] = [];
  for (let attempt = 0; attempt < 3; attempt += 1) {
    if (attempt > 0) await sleep(1000);
    const { status } = await postCallback(attempt === 0 ? first() : retryTo(), accountSid, cb);
    attempts.push(status);
    if (status === 200) break;
  }
  return { cb, attempts };
}

/** A call's callbacks in Exotel's order, each delivered (retries included) before the next is sent. */
async function deliverCall(callSid: string, accountSid: string, first: () => string, retryTo: () => string): Promise<Delivery[]> {
  const out: Delivery[] = [];
  for (const status of ['in-progress', 'completed']) out.push(await deliver({ callSid, status }, accountSid, first, retryTo));
  return out;
}

/** Runs `work` over `items` with at most `concurrency` in flight; `onDone` sees each result as it lands. */
async function pool<T, R>(items: T[], concurrency: number, work: (item: T) => Promise<R>, onDone?: (done: number) => void): Promise<R[]> {
  const results: R[] = [];
  let next = 0;
  let done = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await work(items[i]!);
        onDone?.(++done);
      }
    }),
  );
  return results;
}


describe.skipIf(!(await redisOrSkip()))('chaos: replicas killed and restarted mid-burst, conflicting final statuses', () => {
  let sim: Simulator;
  let env: Record<string, string>;
  let a: GatewayProcess;
  let b: GatewayProcess;
  const { subscribe, disposeAll } = subscriberPool();
  const prefix = testPrefix('chaos');

  beforeAll(async () => {
    sim = await createSimulator({ port: 0, ratePerMinute: 100_000, timeScale: 1, seedCalls: 1, log: () => {} });
    // The poller and reconciler stay out of the way: every event here comes from a callback.
    env = replicaEnv(sim, TEST_REDIS_URL, prefix, { LIVE_POLL_INTERVAL_MS: '3600000', RECONCILE_GRACE_SECONDS: '3600' });
    [a, b] = await Promise.all([spawnGateway('chaos-A', env), spawnGateway('chaos-B', env)]);
  }, 60_000);

  afterAll(async () => {
    await disposeAll();
    await stopAllProcesses();
    await sim?.stop();
    await deleteKeys(prefix);
  });

  it('loses no callback and publishes none twice when a replica is SIGKILLed mid-burst and restarted during it', async () => {
    // The survivor's subscriber replays from the start of this test's (empty) log, then follows it live.
    const onB = await subscribe(b.wsUrl, { after: '0-0' });

    // First burst: 200 calls × (in-progress, completed) = 400 callbacks to A; A dies part-way through.
    const firstCalls = Array.from({ length: 200 }, newCallSid);
    let killed: Promise<unknown> | undefined;
    const firstDeliveries = (
      await pool(
        firstCalls,
        24,
        (callSid) => deliverCall(callSid, sim.accountSid, () => a.url, () => b.url),
        (done) => {
          // Mid-burst, with a full pool of callbacks in flight on A.
          if (done === 75) killed = a.stop('SIGKILL');
        },
      )
    ).flat();
    await killed;
    expect(a.running()).toBe(false);
    // Some callbacks really were cut off by the kill, and their retries went to the survivor.
    expect(firstDeliveries.filter((d) => d.attempts[0] !== 200).length).toBeGreaterThan(0);

    // A restarts while the second burst runs: until it is up, callbacks go to B; then 60 more calls,
    // every other one to the restarted replica.
    let restarted: GatewayProcess | undefined;
    let onRestarted: Subscriber | undefined;
    const postedToRestarted: string[] = [];
    const restarting = spawnGateway('chaos-A2', env).then(async (p) => {
      // A live subscriber on the restarted replica (no `after`): it must get no replay of older events.
      onRestarted = await subscribe(p.wsUrl);
      restarted = p;
    });
    const whileRestarting: string[] = [];
    const secondDeliveries: Delivery[] = [];
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (!restarted && whileRestarting.length < 1000) {
          const callSid = newCallSid();
          whileRestarting.push(callSid);
          secondDeliveries.push(...(await deliverCall(callSid, sim.accountSid, () => b.url, () => b.url)));
          await sleep(20);
        }
      }),
    );
    await restarting;
    expect(whileRestarting.length).toBeGreaterThan(0);
    const afterRestart = Array.from({ length: 60 }, newCallSid);
    secondDeliveries.push(
      ...(
        await pool(afterRestart, 4, (callSid) => {
          const target = afterRestart.indexOf(callSid) % 2 === 0 ? restarted! : b;
          if (target === restarted) postedToRestarted.push(`${callSid}/IN_PROGRESS`, `${callSid}/COMPLETED`);
          return deliverCall(callSid, sim.accountSid, () => target.url, () => b.url);
        })
      ).flat(),
    );
    const deliveries = [...firstDeliveries, ...secondDeliveries];

    // 0 lost: every callback was answered 200 within Exotel's three attempts…
    expect(deliveries.filter((d) => !d.attempts.includes(200)).map((d) => [keyOf({ callSid: d.cb.callSid, status: GRAPHQL[d.cb.status]! }), d.attempts])).toEqual([]);
    const want = deliveries.map((d) => `${d.cb.callSid}/${GRAPHQL[d.cb.status]}`);
    // …and reached the survivor's subscriber exactly once: 0 published twice.
    await onB.waitFor((events) => events.length >= want.length, `all ${want.length} events on B`, 30_000);
    await sleep(300);
    const seen = onB.events.map(keyOf);
    expect([...countKeys(seen)].filter(([, n]) => n > 1)).toEqual([]);
    expect(new Set(seen)).toEqual(new Set(want));
    expect(seen).toHaveLength(want.length);

    // The restarted replica joined without replaying or losing anything: what its live subscriber saw
    // is exactly a tail of the stream, each event once, including every callback posted to it.
    const tail = onRestarted!.events.map((e) => e.id);
    expect(tail.length).toBeGreaterThan(0);
    const start = onB.events.findIndex((e) => e.id === tail[0]);
    expect(start).toBeGreaterThan(0);
    expect(tail).toEqual(onB.events.slice(start).map((e) => e.id));
    expect(postedToRestarted.length).toBeGreaterThan(0);
    const tailKeys = new Set(onRestarted!.events.map(keyOf));
    expect(postedToRestarted.filter((k) => !tailKeys.has(k))).toEqual([]);
    a = restarted!;
  }, 100_000);

  it('publishes exactly one final status per call when two replicas get conflicting ones at the same moment', async () => {
    // Independent of the test before: A is up whatever happened there.
    if (!a.running()) a = await spawnGateway('chaos-A3', env);
    const sids = Array.from({ length: 100 }, newCallSid);
    const onB = await subscribe(b.wsUrl);
    const onA = await subscribe(a.wsUrl);
    const answers = await pool(sids, 10, (callSid) =>
      Promise.all([postCallback(a.url, sim.accountSid, { callSid, status: 'completed' }), postCallback(b.url, sim.accountSid, { callSid, status: 'busy' })]),
    );
    expect(answers.flat().filter((r) => r.status !== 200)).toEqual([]);
    for (const s of [onB, onA]) {
      await s.waitFor((events) => new Set(events.map((e) => e.callSid)).size >= sids.length, 'a final status for every call', 20_000);
    }
    await sleep(300);
    for (const s of [onB, onA]) {
      const perCall = countKeys(s.events.map((e) => e.callSid));
      expect([...perCall].filter(([, n]) => n !== 1)).toEqual([]);
      expect(perCall.size).toBe(sids.length);
    }
    // Both replicas published the same winner for every call.
    const winners = (s: Subscriber) => Object.fromEntries(s.events.map((e) => [e.callSid, e.status]));
    expect(winners(onA)).toEqual(winners(onB));
  }, 60_000);
});
