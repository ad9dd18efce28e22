/**
 * The live poller on real parts: the real Exotel client and its budget share against the real simulator,
 * in-memory storage, and an injected clock to open a fresh budget window between rounds.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createEntityCache } from '../../src/cache/entities.js';
import { createExotelClient } from '../../src/exotel/client.js';
import { createLogger } from '../../src/logger.js';
import type { IngestDeps } from '../../src/live/ingest.js';
import { createPoller, pollOrder, type Poller } from '../../src/live/poller.js';
import { createTopics } from '../../src/live/topics.js';
import { createSimulator, type Simulator } from '../../src/simulator/index.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { createMemoryRateBudget } from '../../src/storage/rate-budget.js';
import type { Storage } from '../../src/storage/types.js';

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
  /** Sids of the call-details requests the simulator received since the last call. */
  takePolled(): string[];
}

async function setup(options: { budgetLimit: number; maxCallsPerTick: number }): Promise<Harness> {
  const sim = await createSimulator({ port: 0, seed: false, log: () => {} });
  running.push(sim);
  // Calls stay live for the whole test: the poller never sees one end and drop it.
  sim.faults.holdCalls('queued');
  let nowMs = Date.now();
  const now = () => nowMs;
  const storage = createMemoryStorage({ clock: now });
  const logger = createLogger({ level: 'silent' });
  const exotel = createExotelClient({
    accountSid: sim.accountSid,
    apiKey: sim.apiKey,
    apiToken: sim.apiToken,
    baseUrl: sim.url,
    budget: createMemoryRateBudget({ limit: options.budgetLimit, windowMs: WINDOW_MS, clock: { now } }),
    backgroundShare: 0.2,
    clock: { now },
  });
  const ingestDeps: IngestDeps = {
    accountSid: sim.accountSid,
    events: storage.events,
    entities: createEntityCache(storage.cache, sim.accountSid),
    logger,
    now,
    stateTtlMs: 600_000,
    requestRefTtlMs: 600_000,
    unknownCallDueMs: 600_000,
  };
  const poller = createPoller({
    accountSid: sim.accountSid,
    exotel,
    openItems: storage.openItems,
    lease: storage.lease,
    topics: createTopics({ events: storage.events, accountSid: sim.accountSid, queueLimit: 100 }),
    ingestDeps,
    logger,
    now,
    // Rounds run only through runNow(); watch marks (3 intervals) outlive every round of the test.
    intervalMs: 10 * WINDOW_MS,
    maxCallsPerTick: options.maxCallsPerTick,
  });
  running.push(poller);
  return {
    sim,
    storage,
    poller,
    advance: (ms) => {
      nowMs += ms;
    },
    takePolled: () => {
      const sids = sim.requests.filter((r) => r.endpoint === 'calls.get' && r.status === 200).map((r) => /\/Calls\/([^/]+)\.json$/.exec(r.path)![1]!);
      sim.resetRequests();
      return sids;
    },
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
