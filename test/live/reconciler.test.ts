/**
 * The reconciler on real parts: the real Exotel client against the real simulator, in-memory storage, and
 * an injected clock that moves the gateway a day on while the simulator's calls and SMS stay unfinished.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { createEntityCache } from '../../src/cache/entities.js';
import { createExotelClient } from '../../src/exotel/client.js';
import { createLogger } from '../../src/logger.js';
import { LIVE_DEFAULTS } from '../../src/live/index.js';
import type { ExotelApi } from '../../src/exotel/types.js';
import type { IngestDeps } from '../../src/live/ingest.js';
import type { Loop } from '../../src/live/loop.js';
import { createReconciler } from '../../src/live/reconciler.js';
import { openSets } from '../../src/live/updates.js';
import { createSimulator, type Simulator } from '../../src/simulator/index.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { createMemoryRateBudget } from '../../src/storage/rate-budget.js';
import type { Storage } from '../../src/storage/types.js';

const HOUR_MS = 60 * 60_000;
const RECHECK_MS = 5 * 60_000;
const running: Array<{ stop(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
});

interface Harness {
  sim: Simulator;
  exotel: ExotelApi;
  storage: Storage;
  reconciler: Loop;
  sets: ReturnType<typeof openSets>;
  advance(ms: number): void;
  /** Every open item of `set`, due or not. */
  open(set: string): Promise<string[]>;
  /** Sids of the detail requests the simulator answered since the last call. */
  takeFetched(): string[];
  /** Sids of every detail request since the last call, answered or failed. */
  takeAsked(): string[];
  logs: Array<Record<string, unknown>>;
}

async function setup(): Promise<Harness> {
  // Simulated time 10,000× slower than real time: new calls and SMS stay queued upstream for the whole test,
  // however far the gateway's clock moves.
  const sim = await createSimulator({ port: 0, seed: false, timeScale: 10_000, log: () => {} });
  running.push(sim);
  let nowMs = Date.now();
  const now = () => nowMs;
  const storage = createMemoryStorage({ clock: now });
  const lines: string[] = [];
  const logger = createLogger({
    level: 'info',
    destination: new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    }),
  });
  const exotel = createExotelClient({
    accountSid: sim.accountSid,
    apiKey: sim.apiKey,
    apiToken: sim.apiToken,
    baseUrl: sim.url,
    budget: createMemoryRateBudget({ limit: 1_000, windowMs: 60_000, clock: { now } }),
    backgroundShare: 0.5,
    clock: { now },
  });
  const ingestDeps: IngestDeps = {
    accountSid: sim.accountSid,
    events: storage.events,
    entities: createEntityCache(storage.cache, sim.accountSid),
    logger,
    now,
    stateTtlMs: 48 * HOUR_MS,
    requestRefTtlMs: 24 * HOUR_MS,
    unknownCallDueMs: HOUR_MS,
  };
  const reconciler = createReconciler({
    accountSid: sim.accountSid,
    exotel,
    openItems: storage.openItems,
    lease: storage.lease,
    ingestDeps,
    logger,
    now,
    // Rounds run only through runNow().
    intervalMs: 24 * HOUR_MS,
    recheckMs: RECHECK_MS,
    maxItemsPerTick: 100,
    giveUpAfterMs: LIVE_DEFAULTS.reconcileGiveUpMs,
  });
  running.push(reconciler);
  const taken = (answeredOnly: boolean) => {
    const sids = sim.requests
      .filter((r) => (r.endpoint === 'calls.get' || r.endpoint === 'sms.get') && (!answeredOnly || r.status === 200))
      .map((r) => /\/([^/]+)\.json$/.exec(r.path)![1]!);
    sim.resetRequests();
    return sids;
  };
  return {
    sim,
    exotel,
    storage,
    reconciler,
    sets: openSets(sim.accountSid),
    advance: (ms) => void (nowMs += ms),
    open: (set) => storage.openItems.dueBy(set, Number.MAX_SAFE_INTEGER, 10_000),
    takeFetched: () => taken(true),
    takeAsked: () => taken(false),
    get logs() {
      return lines.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    },
  };
}

describe('reconciler: calls and SMS Exotel never finishes', () => {
  it('looks at a call Exotel still reports unfinished again after each recheck, and lets it go once it is a day old, so the open list does not keep it for ever', async () => {
    const h = await setup();
    const sids = Array.from({ length: 5 }, (_, i) => h.sim.calls.create({ from: '09876543210', to: `098123456${70 + i}` }).Sid);
    for (const sid of sids) await h.storage.openItems.put(h.sets.calls, sid, 0);

    // Within the day: every due call is fetched, found live, and looked at again a recheck later.
    await h.reconciler.runNow();
    expect(h.takeFetched().sort()).toEqual([...sids].sort());
    expect((await h.open(h.sets.calls)).sort()).toEqual([...sids].sort());
    h.advance(23 * HOUR_MS);
    await h.reconciler.runNow();
    expect(h.takeFetched()).toHaveLength(sids.length);
    expect(await h.open(h.sets.calls)).toHaveLength(sids.length);

    // A day after they were created, still live upstream: let go, with a warning per call.
    h.advance(2 * HOUR_MS);
    await h.reconciler.runNow();
    expect(h.takeFetched()).toHaveLength(sids.length);
    expect(await h.open(h.sets.calls)).toEqual([]);
    const warned = h.logs.filter((l) => l.msg === 'reconciler: Exotel still reports a call unfinished long after it was created; no longer looking at it');
    expect(warned.map((l) => l.callSid).sort()).toEqual([...sids].sort());
    expect(warned[0]).toMatchObject({ level: 'warn', status: 'QUEUED' });

    // Nothing is asked about them any more.
    h.advance(HOUR_MS);
    await h.reconciler.runNow();
    expect(h.takeFetched()).toEqual([]);
  });

  it('lets go of an SMS Exotel still reports queued a day after it was sent', async () => {
    const h = await setup();
    const sms = await h.exotel.sendSms({ from: '08039591111', to: '09812345670', body: 'Your order has shipped' });
    expect(sms.status).toBe('QUEUED');
    await h.storage.openItems.put(h.sets.sms, sms.sid, 0);
    h.takeFetched();

    await h.reconciler.runNow();
    expect(h.takeFetched()).toEqual([sms.sid]);
    expect(await h.open(h.sets.sms)).toEqual([sms.sid]);

    h.advance(25 * HOUR_MS);
    await h.reconciler.runNow();
    expect(h.takeFetched()).toEqual([sms.sid]);
    expect(await h.open(h.sets.sms)).toEqual([]);
    expect(h.logs.filter((l) => l.msg === 'reconciler: Exotel still reports an SMS unfinished long after it was created; no longer looking at it')).toMatchObject([
      { level: 'warn', smsSid: sms.sid, status: 'QUEUED' },
    ]);
    h.advance(HOUR_MS);
    await h.reconciler.runNow();
    expect(h.takeFetched()).toEqual([]);
  });
});

describe('reconciler: a call Exotel keeps failing on', () => {
  it('goes to the back after a failed look, so the calls due after it are still looked at', async () => {
    const h = await setup();
    const sids = Array.from({ length: 3 }, (_, i) => h.sim.calls.create({ from: '09876543210', to: `098123456${70 + i}` }).Sid);
    for (const [i, sid] of sids.entries()) await h.storage.openItems.put(h.sets.calls, sid, i);
    // Exotel refuses every call-details request (a 4xx: the client does not retry it).
    h.sim.faults.inject({ kind: 'exotel-error', status: 400, message: 'Invalid call', count: 'all', endpoint: 'calls.get' });

    // Each round stops at its first failure, but never at the same call twice while others are due.
    const rounds: string[][] = [];
    for (let round = 0; round < 3; round++) {
      await h.reconciler.runNow();
      rounds.push(h.takeAsked());
    }
    expect(rounds).toEqual([[sids[0]], [sids[1]], [sids[2]]]);
    expect((await h.open(h.sets.calls)).sort()).toEqual([...sids].sort());

    // Once Exotel answers again, each is looked at a recheck later.
    h.sim.faults.clear();
    h.advance(RECHECK_MS);
    await h.reconciler.runNow();
    expect(h.takeFetched().sort()).toEqual([...sids].sort());
  });

  it('keeps its place when the budget refused the look: it was not looked at', async () => {
    const h = await setup();
    const sids = Array.from({ length: 2 }, (_, i) => h.sim.calls.create({ from: '09876543210', to: `098123456${80 + i}` }).Sid);
    for (const [i, sid] of sids.entries()) await h.storage.openItems.put(h.sets.calls, sid, i);
    // Exotel says the account is out of requests: the client holds off, and background looks are refused.
    h.sim.faults.rateLimitNext(1, 30, 'calls.get');
    await h.reconciler.runNow();
    expect(h.takeAsked()).toEqual([sids[0]]);
    await h.reconciler.runNow();
    expect(h.takeAsked()).toEqual([]);
    h.advance(60_000);
    await h.reconciler.runNow();
    expect(h.takeFetched()).toEqual(sids);
  });
});
