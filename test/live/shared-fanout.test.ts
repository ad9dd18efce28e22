/**
 * Shared subscription execution: the real schema, the real feed and topics on the real in-memory event
 * log, the real graphql-ws transport (src/graphql/ws.ts) on a real HTTP server, real graphql-ws clients.
 * The only stand-in is the per-operation `call` loader (it would call Exotel), so its loads can be counted.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import DataLoader from 'dataloader';
import type { Client } from 'graphql-ws';
import { afterEach, describe, expect, it } from 'vitest';
import type { EntityCache } from '../../src/cache/entities.js';
import type { Call, ExotelApi } from '../../src/exotel/types.js';
import type { GraphQLContext } from '../../src/graphql/context.js';
import { createCallHistoryLoader } from '../../src/graphql/loaders.js';
import { Call as CallResolvers, CallEvent } from '../../src/graphql/resolvers/call.js';
import { createSubscriptionResolvers } from '../../src/graphql/resolvers/subscription.js';
import { createSchema } from '../../src/graphql/schema.js';
import { createGraphqlWs, type GraphqlWs } from '../../src/graphql/ws.js';
import { RECENT_EVENTS } from '../../src/graphql/shared-execution.js';
import { createFeed } from '../../src/live/feed.js';
import { createTopics } from '../../src/live/topics.js';
import { createLogger } from '../../src/logger.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import type { NewEvent } from '../../src/storage/types.js';
import { record, wsClient, type Recorded } from './ws-helpers.js';

const ACCOUNT = 'acct';
const SLIM = `subscription { callEvents { id callSid status } }`;
const WITH_CALL = `subscription { callEvents { callSid status call { sid from } } }`;
const FILTERED = `subscription($filter: CallEventFilter) { callEvents(filter: $filter) { id callSid status } }`;

const callOf = (sid: string): Call => ({
  sid, parentCallSid: null, accountSid: ACCOUNT, from: `from-${sid}`, to: '+919812345670', phoneNumberSid: null, status: 'COMPLETED',
  direction: null, startTime: null, endTime: null, durationSeconds: null, price: null, recordingUrl: null, answeredBy: null,
  customField: null, dateCreated: '2026-11-20T10:00:00+05:30', dateUpdated: '2026-11-20T10:00:00+05:30', conversationDurationSeconds: null, legs: null,
});

const event = (callSid: string, status: 'RINGING' | 'COMPLETED'): NewEvent => ({
  kind: 'call', accountSid: ACCOUNT, callSid, status, at: '2026-11-20T10:00:00+05:30', source: 'WEBHOOK', forward: true,
});

interface Rig {
  wsUrl: string;
  ws: GraphqlWs;
  topics: ReturnType<typeof createTopics>;
  append(e: NewEvent): Promise<void>;
  /** `CallEvent.call` resolver runs, `call` loader batch loads and history reads, over every subscriber. */
  counts: { callResolver: number; callLoads: number; historyReads: number };
  /** The loaders of every operation, in the order the operations came. */
  loaders: Array<Pick<GraphQLContext['loaders'], 'call' | 'callHistory'>>;
  close(): Promise<void>;
}

async function startRig(): Promise<Rig> {
  const storage = createMemoryStorage();
  const topics = createTopics({ events: storage.events, accountSid: ACCOUNT, queueLimit: 100 });
  // callEvents reads neither the entity cache nor Exotel (only the snapshots of the other fields do).
  const unused = new Proxy({}, { get: () => () => Promise.reject(new Error('not used by callEvents')) });
  const feed = createFeed({
    accountSid: ACCOUNT, events: storage.events, topics, entities: unused as EntityCache, exotel: unused as ExotelApi, onWatch: () => undefined, replayPageSize: 50,
  });
  const counts = { callResolver: 0, callLoads: 0, historyReads: 0 };
  const loaders: Rig['loaders'] = [];
  const history = { callHistory: (account: string, sid: string) => (counts.historyReads++, storage.events.callHistory(account, sid)) };
  const schema = createSchema({
    Subscription: createSubscriptionResolvers(feed),
    Call: CallResolvers,
    CallEvent: {
      call: (parent, args, ctx, info) => {
        counts.callResolver++;
        return (CallEvent.call as (...a: unknown[]) => unknown)(parent, args, ctx, info);
      },
    } as typeof CallEvent,
  });
  const logger = createLogger({ level: 'silent' });
  const httpServer: Server = createServer();
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  const ws = createGraphqlWs({
    httpServer,
    path: '/graphql',
    schema,
    contextFactory: () => {
      const own = {
        call: new DataLoader<string, Call | null>(async (sids) => {
          counts.callLoads++;
          // Exotel does not know this one: CallEvent.call then fails with NOT_FOUND.
          return sids.map((sid) => (sid === 'CA-GONE' ? null : callOf(sid)));
        }),
        callHistory: createCallHistoryLoader(history),
      };
      loaders.push(own);
      return { logger, loaders: own } as unknown as GraphQLContext;
    },
    limits: { wsMaxPayloadBytes: 65_536, wsConnectionInitTimeoutMs: 3_000, wsMaxSubscriptionsPerSocket: 200, wsMaxSocketsPerKey: 1_000, wsAllowedOrigins: [] },
    production: false,
    logger,
    closeGraceMs: 100,
  });
  const { port } = httpServer.address() as AddressInfo;
  return {
    wsUrl: `ws://127.0.0.1:${port}/graphql`,
    ws,
    topics,
    append: async (e) => void (await storage.events.append(e)),
    counts,
    loaders,
    close: async () => {
      await ws.close();
      topics.close();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
      await storage.close();
    },
  };
}

let rig: Rig | undefined;
const clients: Client[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.dispose()));
  await rig?.close();
  rig = undefined;
});

/** `count` subscriptions, spread over a few sockets (graphql-ws ids differ per socket, not per operation). */
function subscribeMany<T>(r: Rig, count: number, query: string, variables: Record<string, unknown> = {}): Array<Recorded<T>> {
  const sockets = Array.from({ length: 5 }, () => {
    const c = wsClient(r.wsUrl);
    clients.push(c);
    return c;
  });
  return Array.from({ length: count }, (_, i) => record<T>(sockets[i % sockets.length]!, query, variables, 'callEvents'));
}

/**
 * Every live subscription is registered with the topics once a probe event reaches all of them. The probe
 * goes out once the server has every operation, plus a moment for each source stream to open its channel
 * (a few microtasks after onSubscribe): an event appended before that would reach only some.
 */
async function primed(r: Rig, subs: Array<Recorded<unknown>>): Promise<void> {
  const t0 = Date.now();
  while (r.ws.operationCount() < subs.length) {
    if (Date.now() - t0 > 5000) throw new Error(`only ${r.ws.operationCount()} of ${subs.length} subscribed`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await new Promise((resolve) => setTimeout(resolve, 50));
  await r.append(event('probe', 'RINGING'));
  await Promise.all(subs.map((s) => s.until((items) => items.length >= 1)));
}

describe('shared subscription execution', () => {
  it('executes an event once for 100 subscribers of the same operation, and each gets it', async () => {
    rig = await startRig();
    const subs = subscribeMany<{ id: string; callSid: string; status: string }>(rig, 100, WITH_CALL);
    await primed(rig, subs);
    const before = { ...rig.ws.sharedStats(), ...rig.counts };

    await rig.append(event('CA1', 'RINGING'));
    await rig.append(event('CA1', 'COMPLETED'));
    for (const s of subs) {
      const items = await s.until((got) => got.length >= 3);
      expect(items.slice(1)).toEqual([
        { callSid: 'CA1', status: 'RINGING', call: { sid: 'CA1', from: 'from-CA1' } },
        { callSid: 'CA1', status: 'COMPLETED', call: { sid: 'CA1', from: 'from-CA1' } },
      ]);
    }
    const after = rig.ws.sharedStats();
    // Two events, one operation shape: two executions, the call resolved twice.
    expect(after.executions - before.executions).toBe(2);
    expect(rig.counts.callResolver - before.callResolver).toBe(2);
    expect(rig.counts.callLoads - before.callLoads).toBe(2);
  });

  it('ends the shared stream of a subscriber that completes: its topic channel closes, the others go on', async () => {
    rig = await startRig();
    const subs = subscribeMany<{ callSid: string }>(rig, 10, SLIM);
    await primed(rig, subs);
    expect(rig.topics.subscriberCount('calls')).toBe(10);
    const [leaving, ...staying] = subs;
    leaving!.dispose();
    const t0 = Date.now();
    while (rig.ws.operationCount() > 9 && Date.now() - t0 < 5000) await new Promise((resolve) => setTimeout(resolve, 10));
    // graphql-ws completes the operation by calling return() on the stream it was given.
    expect(rig.topics.subscriberCount('calls')).toBe(9);
    await rig.append(event('CA-AFTER', 'RINGING'));
    for (const s of staying) expect((await s.until((items) => items.length >= 2))[1]).toMatchObject({ callSid: 'CA-AFTER' });
    expect(leaving!.items.map((e) => e.callSid)).toEqual(['probe']);
  });

  it('gives subscribers of different selections their own shape, one execution per selection', async () => {
    rig = await startRig();
    const slim = subscribeMany<Record<string, unknown>>(rig, 30, SLIM);
    const full = subscribeMany<Record<string, unknown>>(rig, 30, WITH_CALL);
    await primed(rig, [...slim, ...full]);
    const before = rig.ws.sharedStats();
    const resolverBefore = rig.counts.callResolver;

    await rig.append(event('CA2', 'COMPLETED'));
    for (const s of slim) {
      const [, got] = await s.until((items) => items.length >= 2);
      expect(Object.keys(got!).sort()).toEqual(['callSid', 'id', 'status']);
      expect(got).toMatchObject({ callSid: 'CA2', status: 'COMPLETED' });
    }
    for (const s of full) {
      const [, got] = await s.until((items) => items.length >= 2);
      expect(got).toEqual({ callSid: 'CA2', status: 'COMPLETED', call: { sid: 'CA2', from: 'from-CA2' } });
    }
    expect(rig.ws.sharedStats().executions - before.executions).toBe(2);
    // Only the selection that asks for `call` resolves it.
    expect(rig.counts.callResolver - resolverBefore).toBe(1);
  });

  it('gives a subscriber with different variables only its own events', async () => {
    rig = await startRig();
    const all = subscribeMany<{ callSid: string }>(rig, 20, FILTERED);
    const [mine] = subscribeMany<{ callSid: string }>(rig, 1, FILTERED, { filter: { callSids: ['CA-MINE', 'probe'] } });
    await primed(rig, [...all, mine!]);

    await rig.append(event('CA-OTHER', 'RINGING'));
    await rig.append(event('CA-MINE', 'RINGING'));
    await rig.append(event('CA-OTHER', 'COMPLETED'));
    for (const s of all) {
      const items = await s.until((got) => got.length >= 4);
      expect(items.slice(1).map((e) => e.callSid)).toEqual(['CA-OTHER', 'CA-MINE', 'CA-OTHER']);
    }
    // The filtered subscriber saw CA-MINE; the events around it, delivered to everyone else, never came.
    await mine!.until((got) => got.length >= 2);
    await rig.append(event('CA-MINE', 'COMPLETED'));
    const items = await mine!.until((got) => got.length >= 3);
    expect(items.slice(1).map((e) => e.callSid)).toEqual(['CA-MINE', 'CA-MINE']);
    // Ids are the log's: the filtered subscriber's events are the very ones the others got.
    expect(items[1]).toEqual(all[0]!.items[2]);
  });

  it('stops delivering to a subscriber that completes while others keep receiving', async () => {
    rig = await startRig();
    const subs = subscribeMany<{ callSid: string }>(rig, 10, SLIM);
    await primed(rig, subs);
    const [leaver, ...stayers] = subs;
    leaver!.dispose();
    await rig.append(event('CA3', 'RINGING'));
    for (const s of stayers) await s.until((got) => got.length >= 2);
    expect(leaver!.items.map((e) => e.callSid)).toEqual(['probe']);
  });

  it('sends an event whose execution failed to every subscriber with its error formatted once, and goes on', async () => {
    rig = await startRig();
    const sockets = Array.from({ length: 3 }, () => {
      const c = wsClient(rig!.wsUrl);
      clients.push(c);
      return c;
    });
    const messages = sockets.map(() => [] as Array<{ data?: unknown; errors?: unknown }>);
    sockets.forEach((c, i) => c.subscribe({ query: WITH_CALL }, { next: (m) => void messages[i]!.push(m), error: () => undefined, complete: () => undefined }));
    const t0 = Date.now();
    while (rig.ws.operationCount() < 3 && Date.now() - t0 < 5000) await new Promise((resolve) => setTimeout(resolve, 20));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const before = rig.ws.sharedStats().executions;

    await rig.append(event('CA-GONE', 'RINGING'));
    await rig.append(event('CA1', 'RINGING'));
    while (messages.some((m) => m.length < 2) && Date.now() - t0 < 5_000) await new Promise((resolve) => setTimeout(resolve, 20));
    for (const got of messages) {
      expect(got[0]).toEqual({ data: null, errors: [expect.objectContaining({ message: 'Exotel has no call CA-GONE', extensions: expect.objectContaining({ code: 'NOT_FOUND' }) })] });
      expect(got[1]).toEqual({ data: { callEvents: { callSid: 'CA1', status: 'RINGING', call: { sid: 'CA1', from: 'from-CA1' } } } });
    }
    expect(rig.ws.sharedStats().executions - before).toBe(2);
  });

  it('keeps shared results for recent events only, however many the log holds', async () => {
    rig = await startRig();
    const subs = subscribeMany<{ callSid: string }>(rig, 5, SLIM);
    await primed(rig, subs);
    // In rounds, so no subscriber falls behind the topic's queue limit (100).
    for (let round = 0; round < 6; round++) {
      for (let i = 0; i < 50; i++) await rig.append(event(`CA-R${round}-${i}`, 'RINGING'));
      for (const s of subs) await s.until((got) => got.length >= 1 + 50 * (round + 1));
    }
    expect(rig.ws.sharedStats().retainedEvents).toBe(RECENT_EVENTS);
  });
  it('keeps nothing an event loaded once the next event comes: a subscription open for days does not pile up calls and histories', async () => {
    rig = await startRig();
    const [sub] = subscribeMany<{ callSid: string }>(rig, 1, `subscription { callEvents { callSid call { sid events { status } } } }`);
    await primed(rig, [sub!]);
    await rig.append(event('CA-OLD', 'RINGING'));
    await rig.append(event('CA-NEW', 'RINGING'));
    await sub!.until((items) => items.length >= 3);
    expect(sub!.items.slice(1)).toEqual([
      { callSid: 'CA-OLD', call: { sid: 'CA-OLD', events: [{ status: 'RINGING' }] } },
      { callSid: 'CA-NEW', call: { sid: 'CA-NEW', events: [{ status: 'RINGING' }] } },
    ]);
    // What the operation's loaders still hold of the earlier event: nothing, so asking again reads again.
    const [loaders] = rig.loaders;
    const before = { ...rig.counts };
    await loaders!.call.load('CA-OLD');
    await loaders!.callHistory.load({ accountSid: ACCOUNT, sid: 'CA-OLD' });
    expect(rig.counts.callLoads - before.callLoads).toBe(1);
    expect(rig.counts.historyReads - before.historyReads).toBe(1);
  });

  it('keeps nothing an announced incoming call loaded once the next one is announced', async () => {
    rig = await startRig();
    const client = wsClient(rig.wsUrl);
    clients.push(client);
    const sub = record<{ sid: string }>(client, `subscription { incomingCalls { sid events { status } } }`, {}, 'incomingCalls');
    const t0 = Date.now();
    while (rig.ws.operationCount() < 1 && Date.now() - t0 < 5000) await new Promise((resolve) => setTimeout(resolve, 20));
    await new Promise((resolve) => setTimeout(resolve, 50));
    for (const sid of ['CA-IN-1', 'CA-IN-2']) {
      await rig.append(event(sid, 'RINGING'));
      await rig.append({ kind: 'incoming', accountSid: ACCOUNT, callSid: sid, at: '2026-11-20T10:00:00+05:30', source: 'WEBHOOK', forward: true, data: { call: callOf(sid) } });
    }
    await sub.until((items) => items.length >= 2);
    expect(sub.items).toEqual([
      { sid: 'CA-IN-1', events: [{ status: 'RINGING' }] },
      { sid: 'CA-IN-2', events: [{ status: 'RINGING' }] },
    ]);
    const [loaders] = rig.loaders;
    const before = rig.counts.historyReads;
    await loaders!.callHistory.load({ accountSid: ACCOUNT, sid: 'CA-IN-1' });
    expect(rig.counts.historyReads - before).toBe(1);
  });
});
