/**
 * The live poller on real parts: the real Exotel client and its budget share against the real simulator,
 * in-memory storage, and an injected clock to open a fresh budget window between rounds (or to move the
 * gateway a day on while the simulator's calls stay live).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createEntityCache } from '../../src/cache/entities.js';
import { createExotelClient } from '../../src/exotel/client.js';
import { capturedLogger } from '../helpers/captured-logger.js';
import { LIVE_DEFAULTS } from '../../src/live/index.js';
import { ingest, type IngestDeps } from '../../src/live/ingest.js';
import { createPoller, pollOrder, type Poller } from '../../src/live/poller.js';
import { createTopics, type Topics } from '../../src/live/topics.js';
import { createSimulator, type Simulator } from '../../src/simulator/index.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { createMemoryRateBudget } from '../../src/storage/rate-budget.js';
import type { Storage } from '../../src/storage/types.js';
import { waitUntil } from '../helpers/processes.js';

const WINDOW_MS = 60_000;
const running: Array<{ stop(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
});

interface Harness {
  sim: Simulator;
  storage: Storage;
  poller: Poller;
  /** Moves the injected clock on. */
  advance(ms: number): void;
  /** Sids of the call-details requests the simulator answered since the last call. */
  takePolled(): string[];
  /** Sids of every call-details request since the last call, answered or failed. */
  takeAsked(): string[];
  topics: Topics;
  ingestDeps: IngestDeps;
  logs: Array<Record<string, unknown>>;
  /** What became of each request to Exotel, in order. */
  upstream: Array<number | string>;
}

async function setup(options: { budgetLimit: number; maxCallsPerTick: number }): Promise<Harness> {
  const sim = await createSimulator({ port: 0, seed: false, log: () => {} });
  running.push(sim);
  // Calls stay live for the whole test: the poller never sees one end and drop it.
  sim.faults.holdCalls('queued');
  let nowMs = Date.now();
  const now = () => nowMs;
  const storage = createMemoryStorage({ clock: now });
  const captured = capturedLogger();
  const { logger } = captured;
  // What became of each request to Exotel: an HTTP status, 'timeout' or 'network-error' (a cancel among them).
  const upstream: Array<number | string> = [];
  const exotel = createExotelClient({
    accountSid: sim.accountSid,
    apiKey: sim.apiKey,
    apiToken: sim.apiToken,
    baseUrl: sim.url,
    budget: createMemoryRateBudget({ limit: options.budgetLimit, windowMs: WINDOW_MS, clock: { now } }),
    backgroundShare: 0.2,
    onRequest: (event) => upstream.push(event.status),
    // A 5xx is not tried again: each poll is one request, and no backoff waits in real time.
    maxAttemptsGet: 1,
    clock: { now },
  });
  const ingestDeps: IngestDeps = {
    accountSid: sim.accountSid,
    events: storage.events,
    entities: createEntityCache(storage.cache, sim.accountSid),
    logger,
    now,
    stateTtlMs: LIVE_DEFAULTS.stateTtlMs,
    requestRefTtlMs: 600_000,
    unknownCallDueMs: 600_000,
  };
  const topics = createTopics({ events: storage.events, accountSid: sim.accountSid, queueLimit: 100 });
  running.push({ stop: async () => topics.close() });
  const poller = createPoller({
    accountSid: sim.accountSid,
    exotel,
    openItems: storage.openItems,
    lease: storage.lease,
    topics,
    ingestDeps,
    logger,
    now,
    // Rounds run only through runNow(); watch marks (3 intervals) outlive every round of the test.
    intervalMs: 10 * WINDOW_MS,
    maxCallsPerTick: options.maxCallsPerTick,
    giveUpAfterMs: LIVE_DEFAULTS.reconcileGiveUpMs,
  });
  running.push(poller);
  const taken = (answeredOnly: boolean) => {
    const sids = sim.requests
      .filter((r) => r.endpoint === 'calls.get' && (!answeredOnly || r.status === 200))
      .map((r) => /\/Calls\/([^/]+)\.json$/.exec(r.path)![1]!);
    sim.resetRequests();
    return sids;
  };
  return {
    sim,
    storage,
    poller,
    advance: (ms) => {
      nowMs += ms;
    },
    takePolled: () => taken(true),
    takeAsked: () => taken(false),
    topics,
    ingestDeps,
    get logs() {
      return captured.lines();
    },
    upstream,
  };
}

async function liveCalls(sim: Simulator, poller: Poller, count: number): Promise<string[]> {
  const sids = Array.from({ length: count }, (_, i) => sim.calls.create({ from: '09876543210', to: `098123456${70 + i}` }).Sid);
  for (const sid of sids) await poller.watch(sid);
  return sids;
}

describe('live poller fairness', () => {
  it('polls all 5 watched calls within 3 rounds when the background share allows 2 polls per round', async () => {
    // 20 % of 10 requests per window: 2 background polls, the 3rd is refused and ends the round.
    const { sim, storage, poller, advance, takePolled } = await setup({ budgetLimit: 10, maxCallsPerTick: 100 });
    const sids = await liveCalls(sim, poller, 5);
    const rounds: string[][] = [];
    for (let round = 0; round < 3; round++) {
      await poller.runNow();
      rounds.push(takePolled());
      advance(WINDOW_MS);
    }
    expect(rounds.map((r) => r.length)).toEqual([2, 2, 2]);
    expect(new Set(rounds.flat())).toEqual(new Set(sids));
    // Round 3 goes back to the call polled longest ago once every call has had its turn.
    expect(rounds[2]).toEqual([sids[4], sids[0]]);
    // What the poller learnt went through ingest: every call's QUEUED is in its history, from POLL.
    for (const sid of sids) {
      const history = await storage.events.callHistory(sim.accountSid, sid);
      expect(history.map((e) => `${e.status}:${e.source}`)).toEqual(['QUEUED:POLL']);
    }
  });

  it('rotates through more watched calls than maxCallsPerTick instead of polling the same first ones', async () => {
    const { sim, poller, advance, takePolled } = await setup({ budgetLimit: 1_000, maxCallsPerTick: 2 });
    const sids = await liveCalls(sim, poller, 5);
    const rounds: string[][] = [];
    for (let round = 0; round < 3; round++) {
      await poller.runNow();
      rounds.push(takePolled());
      advance(1_000);
    }
    expect(rounds).toEqual([
      [sids[0], sids[1]],
      [sids[2], sids[3]],
      [sids[4], sids[0]],
    ]);
  });
});

describe('pollOrder', () => {
  it('puts never-tried calls first, then the least recently tried, keeping the given order on ties, up to max', () => {
    const tried = new Map([
      ['a', 5],
      ['b', 2],
      ['d', 9],
    ]);
    expect(pollOrder(['a', 'b', 'c', 'd', 'e'], tried, 4)).toEqual(['c', 'e', 'b', 'a']);
    expect(pollOrder([], tried, 4)).toEqual([]);
  });
});

describe('live poller: a call Exotel never finishes', () => {
  const HOUR_MS = 60 * 60_000;
  const STOPPED = 'live poller: the call is still unfinished a day on; no longer polling it (its subscribers still get what callbacks bring)';

  it('stops polling a call a day after its DateCreated, logs it once at info, and its subscription still gets what a callback brings', async () => {
    const h = await setup({ budgetLimit: 1_000, maxCallsPerTick: 100 });
    const [sid] = await liveCalls(h.sim, h.poller, 1);
    // A callStatusChanged subscriber on this replica: its topic keeps the call watched.
    const channel = h.topics.subscribe(`call:${sid}`);

    await h.poller.runNow();
    expect(h.takePolled()).toEqual([sid]);
    h.advance(23 * HOUR_MS);
    await h.poller.runNow();
    expect(h.takePolled()).toEqual([sid]);
    expect(h.logs.filter((l) => l.msg === STOPPED)).toEqual([]);

    // A day after Exotel created it, still queued upstream: this poll is the last.
    h.advance(2 * HOUR_MS);
    await h.poller.runNow();
    expect(h.takePolled()).toEqual([sid]);
    for (let round = 0; round < 3; round++) {
      h.advance(HOUR_MS);
      await h.poller.runNow();
      expect(h.takePolled()).toEqual([]);
    }
    const stopped = h.logs.filter((l) => l.msg === STOPPED);
    expect(stopped).toMatchObject([{ level: 'info', callSid: sid }]);
    expect(stopped[0]!.dateCreated).toEqual(expect.any(String));

    // The subscription goes on: a callback that comes after all still reaches it.
    await ingest({ kind: 'call', callSid: sid!, status: 'COMPLETED', at: '2026-11-20T10:00:00+05:30', source: 'WEBHOOK', fields: {} }, h.ingestDeps);
    const seen: string[] = [];
    while (!seen.includes('COMPLETED:WEBHOOK')) {
      const { value } = await channel.next();
      if (value?.kind === 'call') seen.push(`${value.status}:${value.source}`);
    }
    // What the poller told it before it stopped (the first poll), then the callback.
    expect(seen).toEqual(['QUEUED:POLL', 'COMPLETED:WEBHOOK']);
    channel.close();
  });

  it('stops polling a call whose polls always fail a day after it was first watched (its DateCreated never read)', async () => {
    const h = await setup({ budgetLimit: 1_000, maxCallsPerTick: 100 });
    const sid = h.sim.calls.create({ from: '09876543210', to: '09812345679' }).Sid;
    // Watched ten hours after Exotel created it; every poll fails, so the day counts from the watching.
    h.advance(10 * HOUR_MS);
    const channel = h.topics.subscribe(`call:${sid}`);
    await h.poller.watch(sid);
    h.sim.faults.inject({ kind: 'error', status: 500, count: 'all', endpoint: 'calls.get' });

    for (const step of [0, 15 * HOUR_MS]) {
      h.advance(step);
      await h.poller.runNow();
      expect(h.takeAsked()).toEqual([sid]);
    }
    h.advance(9 * HOUR_MS + 60_000);
    await h.poller.runNow();
    expect(h.takeAsked()).toEqual([sid]);
    h.advance(HOUR_MS);
    await h.poller.runNow();
    expect(h.takeAsked()).toEqual([]);
    expect(h.logs.filter((l) => l.msg === STOPPED)).toMatchObject([{ level: 'info', callSid: sid, watchedSince: expect.any(String) }]);
    channel.close();

    // Its subscribers gone and its mark lapsed, it is forgotten; watched again, its day starts again.
    h.advance(HOUR_MS);
    await h.poller.runNow();
    expect(h.takeAsked()).toEqual([]);
    const again = h.topics.subscribe(`call:${sid}`);
    await h.poller.watch(sid);
    await h.poller.runNow();
    expect(h.takeAsked()).toEqual([sid]);
    h.advance(23 * HOUR_MS);
    await h.poller.runNow();
    expect(h.takeAsked()).toEqual([sid]);
    expect(h.logs.filter((l) => l.msg === STOPPED)).toHaveLength(1);
    again.close();
  });
});

describe('live poller: stopping', () => {
  it('cancels a poll still waiting on Exotel: the round ends with stop(), not as a failed poll', async () => {
    const h = await setup({ budgetLimit: 1_000, maxCallsPerTick: 100 });
    const [sid] = await liveCalls(h.sim, h.poller, 1);
    const channel = h.topics.subscribe(`call:${sid}`);
    // Answered only after a minute: far past the client's own timeout.
    h.sim.faults.slowNext(1, 60_000, 'calls.get');
    const round = h.poller.runNow();
    await waitUntil(() => h.sim.requests.some((r) => r.path.includes(sid!)), 'the poll to reach Exotel');
    await h.poller.stop();
    await round;
    // The request itself was cut, not left to the client's timeout (a failed poll, logged as the round stopping early).
    expect(h.upstream).toEqual(['network-error']);
    expect(h.logs.filter((l) => l.msg === 'live poller: stopping this round early')).toEqual([]);
    channel.close();
  });
});
