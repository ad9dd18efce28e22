/**
 * The reconciler on real parts: the real Exotel client against the real simulator, in-memory storage (the
 * real Redis where the open list's Redis form matters), and an injected clock that moves the gateway a day
 * on while the simulator's calls and SMS stay unfinished.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createEntityCache } from '../../src/cache/entities.js';
import { createExotelClient } from '../../src/exotel/client.js';
import { epochMsToIso } from '../../src/exotel/dates.js';
import { capturedLogger } from '../helpers/captured-logger.js';
import { LIVE_DEFAULTS } from '../../src/live/index.js';
import { callStatusRank, type ExotelApi } from '../../src/exotel/types.js';
import { ingest, type IngestDeps } from '../../src/live/ingest.js';
import type { Loop } from '../../src/live/loop.js';
import { createReconciler, unknownCallItem } from '../../src/live/reconciler.js';
import { openSets } from '../../src/live/updates.js';
import { createSimulator, type Simulator } from '../../src/simulator/index.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { createMemoryRateBudget } from '../../src/storage/rate-budget.js';
import { createRedisStorage } from '../../src/storage/redis.js';
import { waitUntil } from '../helpers/processes.js';
import { deleteKeys, redisOrSkip, testPrefix, TEST_REDIS_URL } from '../helpers/redis.js';
import type { Storage } from '../../src/storage/types.js';

const HOUR_MS = 60 * 60_000;
const RECHECK_MS = 5 * 60_000;
const running: Array<{ stop(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
});

interface Harness {
  sim: Simulator;
  ingestDeps: IngestDeps;
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
  /** What the reconciler reported letting go (the metrics hook). */
  givenUp: string[];
  /** What became of each request to Exotel, in order. */
  upstream: Array<number | string>;
}

/** Storage on the harness's clock: memory unless the test builds another. */
type MakeStorage = (clock: () => number) => Promise<Storage>;

interface SetupOptions {
  makeStorage?: MakeStorage;
  /** Runs when a call's details request has come back, answered or failed, before the reconciler hears of it. */
  afterCallLook?: (callSid: string) => Promise<void>;
}

async function setup(options: SetupOptions = {}): Promise<Harness> {
  const makeStorage: MakeStorage = options.makeStorage ?? (async (clock) => createMemoryStorage({ clock }));
  // Simulated time 10,000× slower than real time: new calls and SMS stay queued upstream for the whole test,
  // however far the gateway's clock moves.
  const sim = await createSimulator({ port: 0, seed: false, timeScale: 10_000, log: () => {} });
  running.push(sim);
  let nowMs = Date.now();
  const now = () => nowMs;
  const storage = await makeStorage(now);
  running.push({ stop: () => storage.close() });
  const captured = capturedLogger();
  const { logger } = captured;
  // What became of each request to Exotel: an HTTP status, 'timeout' or 'network-error' (a cancel among them).
  const upstream: Array<number | string> = [];
  const exotel = createExotelClient({
    accountSid: sim.accountSid,
    apiKey: sim.apiKey,
    apiToken: sim.apiToken,
    baseUrl: sim.url,
    budget: createMemoryRateBudget({ limit: 1_000, windowMs: 60_000, clock: { now } }),
    backgroundShare: 0.5,
    onRequest: (event) => upstream.push(event.status),
    // A 5xx is not tried again: each look is one request, and no backoff waits in real time.
    maxAttemptsGet: 1,
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
  const afterCallLook = options.afterCallLook;
  const reconciler = createReconciler({
    accountSid: sim.accountSid,
    exotel: afterCallLook
      ? {
          ...exotel,
          getCall: async (sid, requestOptions) => {
            try {
              return await exotel.getCall(sid, requestOptions);
            } finally {
              await afterCallLook(sid);
            }
          },
        }
      : exotel,
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
    onGivenUp: (kind, reason) => givenUp.push(`${kind}:${reason}`),
  });
  const givenUp: string[] = [];
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
    ingestDeps,
    exotel,
    storage,
    reconciler,
    sets: openSets(sim.accountSid),
    advance: (ms) => void (nowMs += ms),
    open: (set) => storage.openItems.dueBy(set, Number.MAX_SAFE_INTEGER, 10_000),
    takeFetched: () => taken(true),
    takeAsked: () => taken(false),
    get logs() {
      return captured.lines();
    },
    givenUp,
    upstream,
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
    expect(h.givenUp).toEqual(sids.map(() => 'call:unfinished'));

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

describe('reconciler: an open item whose look always fails', () => {
  const LISTED_A_DAY = 'reconciler: looking this up has failed for a day since it entered the open list; no longer looking at it';

  it('lets go of a call Exotel answers 500 for, a day after it entered the open list (not after its DateCreated), with a warning and a count', async () => {
    const h = await setup();
    const sid = h.sim.calls.create({ from: '09876543210', to: '09812345690' }).Sid;
    // Listed ten hours after Exotel created it: the day counts from the listing, which is all the
    // gateway knows of a call it has never once read.
    h.advance(10 * HOUR_MS);
    await h.storage.openItems.put(h.sets.calls, sid, 0);
    const listed = (await h.storage.openItems.addedAt(h.sets.calls, sid))!;
    h.sim.faults.inject({ kind: 'error', status: 500, count: 'all', endpoint: 'calls.get' });

    // Within the day (25 h after DateCreated, 15 h after listing): it fails, goes to the back, stays listed.
    for (const step of [0, 15 * HOUR_MS]) {
      h.advance(step);
      await h.reconciler.runNow();
      expect(h.takeAsked()).toEqual([sid]);
      expect(await h.open(h.sets.calls)).toEqual([sid]);
    }
    expect(h.logs.filter((l) => l.msg === LISTED_A_DAY)).toEqual([]);

    // A day after it was listed, still failing: let go, once, with a warning and a count.
    h.advance(9 * HOUR_MS + RECHECK_MS);
    await h.reconciler.runNow();
    expect(h.takeAsked()).toEqual([sid]);
    expect(await h.open(h.sets.calls)).toEqual([]);
    expect(h.logs.filter((l) => l.msg === LISTED_A_DAY)).toMatchObject([{ level: 'warn', callSid: sid, kind: 'call', listedAt: epochMsToIso(listed) }]);
    expect(h.givenUp).toEqual(['call:lookup-failing']);
    h.advance(HOUR_MS);
    await h.reconciler.runNow();
    expect(h.takeAsked()).toEqual([]);
  });

  it('lets go of an SMS and of an unknown outcome whose looks always fail, a day after each was listed', async () => {
    const h = await setup();
    const sms = await h.exotel.sendSms({ from: '08039591111', to: '09812345670', body: 'Your order has shipped' });
    await h.storage.openItems.put(h.sets.sms, sms.sid, 0);
    await h.storage.openItems.put(h.sets.unknownCalls, unknownCallItem('ref-0123456789abcdef', 0), 0);
    h.sim.faults.inject({ kind: 'exotel-error', status: 400, message: 'Invalid request', count: 'all', endpoint: 'sms.get' });
    h.sim.faults.inject({ kind: 'error', status: 500, count: 'all', endpoint: 'calls.list' });
    h.sim.resetRequests();

    // Each round stops at its first failure, and the failed item goes to the back: both are looked at, both
    // fail, neither is let go within the day.
    await h.reconciler.runNow();
    await h.reconciler.runNow();
    expect(h.sim.requests.map((r) => `${r.endpoint}:${r.status}`)).toEqual(['sms.get:400', 'calls.list:500']);
    expect(await h.open(h.sets.sms)).toEqual([sms.sid]);
    expect(await h.open(h.sets.unknownCalls)).toHaveLength(1);
    expect(h.givenUp).toEqual([]);

    h.advance(24 * HOUR_MS + RECHECK_MS);
    await h.reconciler.runNow();
    await h.reconciler.runNow();
    expect(await h.open(h.sets.sms)).toEqual([]);
    expect(await h.open(h.sets.unknownCalls)).toEqual([]);
    expect(h.givenUp.sort()).toEqual(['sms:lookup-failing', 'unknown-outcome:lookup-failing']);
    expect(h.logs.filter((l) => l.msg === LISTED_A_DAY).map((l) => l.smsSid ?? l.requestRef)).toEqual(expect.arrayContaining([sms.sid, 'ref-0123456789abcdef']));
  });

  it('does not put back an item a callback finished while its look was failing', async () => {
    // While the look is on its way, the final callback's status step removes the call from the open list.
    let finish = async (_sid: string) => {};
    const h = await setup({ afterCallLook: (sid) => finish(sid) });
    finish = (sid) => h.storage.openItems.remove(h.sets.calls, sid);
    const sid = h.sim.calls.create({ from: '09876543210', to: '09812345691' }).Sid;
    await h.storage.openItems.put(h.sets.calls, sid, 0);
    h.sim.faults.inject({ kind: 'error', status: 500, count: 'all', endpoint: 'calls.get' });
    await h.reconciler.runNow();
    expect(h.takeAsked()).toEqual([sid]);
    expect(await h.open(h.sets.calls)).toEqual([]);
  });

  it('does not put back an item a callback finished between reading when it was listed and moving it to the back', async () => {
    // The final callback's status step removes the call right after the reconciler read when it was listed.
    let finish = async (_set: string, _id: string) => {};
    const h = await setup({
      makeStorage: async (clock) => {
        const storage = createMemoryStorage({ clock });
        const { openItems } = storage;
        const addedAt: typeof openItems.addedAt = async (set, id) => {
          const at = await openItems.addedAt(set, id);
          await finish(set, id);
          return at;
        };
        return { ...storage, openItems: { ...openItems, addedAt } };
      },
    });
    finish = (set, id) => h.storage.openItems.remove(set, id);
    const sid = h.sim.calls.create({ from: '09876543210', to: '09812345693' }).Sid;
    await h.storage.openItems.put(h.sets.calls, sid, 0);
    h.sim.faults.inject({ kind: 'error', status: 500, count: 'all', endpoint: 'calls.get' });
    await h.reconciler.runNow();
    expect(h.takeAsked()).toEqual([sid]);
    expect(await h.open(h.sets.calls)).toEqual([]);
  });
});

describe('reconciler: a call a callback finishes while its look is on its way', () => {
  it('is not put back when the look found it unfinished: the callback\'s final status took it out of the open list', async () => {
    let finish = async (_sid: string) => {};
    const h = await setup({ afterCallLook: (sid) => finish(sid) });
    finish = async (callSid) => {
      await ingest({ kind: 'call', callSid, status: 'COMPLETED', at: epochMsToIso(Date.now()), source: 'WEBHOOK', fields: {} }, h.ingestDeps);
    };
    const sid = h.sim.calls.create({ from: '09876543210', to: '09812345694' }).Sid;
    await h.storage.openItems.put(h.sets.calls, sid, 0);
    await h.reconciler.runNow();
    // Exotel still said queued; the callback said completed first, and that stands.
    expect(h.takeFetched()).toEqual([sid]);
    expect(await h.storage.events.statusRank('call', h.sim.accountSid, sid)).toBeGreaterThanOrEqual(callStatusRank('COMPLETED'));
    expect(await h.open(h.sets.calls)).toEqual([]);
  });
});

const redisUp = await redisOrSkip();
describe.skipIf(!redisUp)('reconciler on Redis: an open list the previous version wrote', () => {
  const prefix = testPrefix('reconciler');
  afterAll(() => deleteKeys(prefix));

  it('counts the day of a call listed without an added time from the first failed look at it, then lets it go', async () => {
    const keyPrefix = `${prefix}legacy:`;
    const h = await setup({ makeStorage: (clock) => createRedisStorage({ redisUrl: TEST_REDIS_URL, keyPrefix, clock }) });
    const sid = h.sim.calls.create({ from: '09876543210', to: '09812345692' }).Sid;
    // What the previous version left in Redis: the open-list member, no added time.
    const redis = new Redis(TEST_REDIS_URL);
    try {
      await redis.zadd(`${keyPrefix}open:${h.sets.calls}`, 0, sid);
    } finally {
      await redis.quit();
    }
    h.sim.faults.inject({ kind: 'error', status: 500, count: 'all', endpoint: 'calls.get' });
    h.advance(3 * 24 * HOUR_MS);

    // First seen by a failed look, days after it was listed: taken as listed now, so not let go yet.
    await h.reconciler.runNow();
    expect(h.takeAsked()).toEqual([sid]);
    expect(await h.open(h.sets.calls)).toEqual([sid]);
    h.advance(23 * HOUR_MS);
    await h.reconciler.runNow();
    expect(await h.open(h.sets.calls)).toEqual([sid]);
    expect(h.givenUp).toEqual([]);

    h.advance(2 * HOUR_MS);
    await h.reconciler.runNow();
    expect(await h.open(h.sets.calls)).toEqual([]);
    expect(h.givenUp).toEqual(['call:lookup-failing']);
  });
});

describe('reconciler: stopping', () => {
  it('cancels a look still waiting on Exotel: the round ends with stop(), and the item stays listed, its look not counted as failed', async () => {
    const h = await setup();
    const sid = h.sim.calls.create({ from: '09876543210', to: '09812345670' }).Sid;
    await h.storage.openItems.put(h.sets.calls, sid, 0);
    // Answered only after a minute: far past the client's own timeout.
    h.sim.faults.slowNext(1, 60_000, 'calls.get');
    const round = h.reconciler.runNow();
    await waitUntil(() => h.sim.requests.some((r) => r.path.includes(sid)), 'the look to reach Exotel');
    await h.reconciler.stop();
    await round;
    // The request itself was cut, not left to the client's timeout.
    expect(h.upstream).toEqual(['network-error']);
    // Not a failed look: nothing logged, nothing let go.
    expect(h.logs.filter((l) => l.msg === 'reconciler: stopping this round early')).toEqual([]);
    expect(h.logs.filter((l) => l.level !== 'info' && l.level !== 'debug')).toEqual([]);
    expect(h.givenUp).toEqual([]);
    expect(await h.open(h.sets.calls)).toEqual([sid]);
  });

  it.each([
    ['an SMS', 'sms.get'],
    ['an unknown outcome', 'calls.list'],
  ] as const)('cancels the look at %s still waiting on Exotel the same way', async (_what, endpoint) => {
    const h = await setup();
    const set = endpoint === 'sms.get' ? h.sets.sms : h.sets.unknownCalls;
    const item = endpoint === 'sms.get' ? (await h.exotel.sendSms({ from: '08039591111', to: '09812345670', body: 'Your order has shipped' })).sid : unknownCallItem('ref-0123456789abcdef', Date.now());
    await h.storage.openItems.put(set, item, 0);
    h.upstream.length = 0;
    h.sim.resetRequests();
    h.sim.faults.slowNext(1, 60_000, endpoint);
    const round = h.reconciler.runNow();
    await waitUntil(() => h.sim.requests.some((r) => r.endpoint === endpoint), 'the look to reach Exotel');
    await h.reconciler.stop();
    await round;
    expect(h.upstream).toEqual(['network-error']);
    expect(h.logs.filter((l) => l.level !== 'info' && l.level !== 'debug')).toEqual([]);
    expect(h.givenUp).toEqual([]);
    expect(await h.open(set)).toEqual([item]);
  });
});
