/**
 * A graphql-ws subscriber that stops reading its socket (a frozen dashboard tab, a client paused by its
 * OS), against the real gateway: real callbacks, a real graphql-ws client beside it, and a real stalled
 * client (test/fixtures/stalled-ws-client.py: a tiny receive buffer, so the kernel's buffers for it fill
 * after a few hundred events and the gateway's writes to it stop completing). What must hold: the other
 * subscriber gets every event, in order, meanwhile; what waits in the gateway for the stalled one stays
 * bounded; and the stalled one is cut off — by the keep-alive, by its backlog (when it keeps sending), or as
 * soon as a subscription of its falls past its event queue's limit (src/live/topics.ts) — and its places are
 * given back. And the other side: a client that keeps reading, whose subscription falls past its limit in
 * one burst of events, loses that subscription alone, never its socket.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Client } from 'graphql-ws';
import type { GatewayDeps } from '../../src/server.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { deleteKeys, redisOrSkip, testPrefix, TEST_REDIS_URL } from '../helpers/redis.js';
import { startStallProxy } from '../helpers/stall-proxy.js';
import { callbackUrlsOf, callCallback, post } from '../live/webhook-helpers.js';
import { record, wsClient, type Recorded } from '../live/ws-helpers.js';

const STALLED_CLIENT = fileURLToPath(new URL('../fixtures/stalled-ws-client.py', import.meta.url));
const CALL_EVENTS = `subscription { callEvents { id callSid status } }`;
/** The stalled client's subscription: the same events, in frames of about a kilobyte, so its buffers fill sooner. */
const WIDE_CALL_EVENTS = `subscription { callEvents { id ${Array.from({ length: 30 }, (_, i) => `sid${i}: callSid`).join(' ')} } }`;

interface Ev {
  id: string;
  callSid: string;
  status: string;
}

const children: ChildProcess[] = [];
const clients: Client[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const child of children.splice(0)) child.kill();
  await Promise.all(clients.splice(0).map((c) => c.dispose()));
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The gateway's own count of open sockets and running operations, from GET /metrics. */
async function wsGauges(gw: TestGateway): Promise<{ sockets: number; subscriptions: number }> {
  const res = await fetch(gw.metricsUrl);
  const text = await res.text();
  expect(res.status).toBe(200);
  const gauge = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1]);
  return { sockets: gauge('gateway_ws_sockets'), subscriptions: gauge('gateway_ws_subscriptions') };
}

async function waitFor<T>(what: string, read: () => Promise<T>, holds: (value: T) => boolean, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (holds(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(value)} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

interface Stalled {
  /** The gateway's end of the stalled client's socket: what Node holds for it, not yet taken by the kernel. */
  server: Socket;
  /** Most bytes ever seen waiting in the gateway for it (sampled every few ms). */
  maxWaitingBytes(): number;
  /** Whether a write to it has ever been seen waiting (the kernel's buffers for it were full). */
  everBlocked(): boolean;
  /** Lines the client printed. */
  output: string[];
}

/** Starts the stalled client on `gw` and resolves once the gateway counts its subscription. */
async function startStalled(gw: TestGateway, mode: 'silent' | 'ping-flood' = 'silent'): Promise<Stalled> {
  const before = await wsGauges(gw);
  const upgraded = new Promise<Socket>((resolve) => gw.httpServer.once('upgrade', (_req, socket: Socket) => resolve(socket)));
  const { hostname, port } = new URL(gw.url);
  const child = spawn('python3', [STALLED_CLIENT, hostname, port, '/graphql', WIDE_CALL_EVENTS, mode], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(child);
  const output: string[] = [];
  child.stdout!.setEncoding('utf8').on('data', (text: string) => output.push(...text.split('\n').filter(Boolean)));
  const server = await upgraded;
  let max = 0;
  const sampler = setInterval(() => (max = Math.max(max, server.writableLength)), 2);
  server.once('close', () => clearInterval(sampler));
  child.once('exit', () => clearInterval(sampler));
  // A flooding client may be cut off before its subscription is ever seen counted.
  if (mode === 'silent') await waitFor('stalled client subscribed', () => wsGauges(gw), (g) => g.subscriptions === before.subscriptions + 1, 10_000);
  else await waitFor('stalled client subscribed', async () => output, (lines) => lines.includes('subscribed'), 10_000);
  return { server, maxWaitingBytes: () => max, everBlocked: () => max > 0, output };
}

/** Posts `count` call-status callbacks, 20 at a time; every one must be accepted. */
async function postEvents(gw: TestGateway, count: number, tag: string): Promise<void> {
  const url = callbackUrlsOf(gw).callStatus;
  for (let i = 0; i < count; i += 20) {
    const batch = Array.from({ length: Math.min(20, count - i) }, (_, j) => post(url, callCallback(`CA${tag}${process.pid}x${i + j}`, 'in-progress')));
    for (const res of await Promise.all(batch)) expect(res.status).toBe(200);
  }
}

/** The forward call events logged after `afterId`, in log order. */
async function loggedCallEvents(gw: TestGateway, afterId: string | undefined): Promise<string[]> {
  return (await gw.storage.events.readAfter(afterId, 100_000)).filter((e) => e.kind === 'call' && e.forward).map((e) => e.id);
}

async function startWatched(deps: GatewayDeps, env: Record<string, string> = {}) {
  const gw = await startGateway({ LIVE_POLL_INTERVAL_MS: '60000', ...env }, {}, deps);
  const start = await gw.storage.events.lastId();
  const normalClient = wsClient(gw.wsUrl);
  clients.push(normalClient);
  const normal = record<Ev>(normalClient, CALL_EVENTS, {}, 'callEvents');
  await waitFor('normal subscriber counted', () => wsGauges(gw), (g) => g.subscriptions === 1, 10_000);
  return { gw, start, normal };
}

/** Every event logged since `start` reached the normal subscriber, in log order. */
async function expectAllDelivered(gw: TestGateway, start: string | undefined, normal: Recorded<Ev>): Promise<void> {
  const logged = await loggedCallEvents(gw, start);
  await normal.until((items) => items.length >= logged.length, 15_000);
  expect(normal.items.map((e) => e.id)).toEqual(logged);
  expect(normal.error).toBeUndefined();
}

describe('a subscriber that stops reading its socket', () => {
  it('does not hold up the others, holds a frame or so in the gateway, and is cut off by the keep-alive with its places given back', async () => {
    const keepAliveMs = 5_000;
    // Two sockets per key: the normal one and the stalled one; a third fits only once the stalled one is gone.
    const { gw, start, normal } = await startWatched({ wsKeepAliveMs: keepAliveMs }, { WS_MAX_SOCKETS_PER_KEY: '2' });
    // graphql-ws prints its 'Internal error …' lines on the console, not through the gateway's logger.
    const consoleErrors = vi.spyOn(console, 'error');
    const connectedAt = Date.now();
    const stalled = await startStalled(gw);

    // Until the kernel's buffers for the stalled client are full and the gateway's writes to it wait.
    let posted = 0;
    while (!stalled.everBlocked() && posted < 5_000) {
      await postEvents(gw, 100, `k${posted}`);
      posted += 100;
    }
    expect(stalled.everBlocked()).toBe(true);
    expect(stalled.server.destroyed).toBe(false);
    // Events keep coming while it is stuck; the other subscriber gets each of them.
    await postEvents(gw, 200, 'more');
    await expectAllDelivered(gw, start, normal);

    // graphql-ws writes a subscription's next frame only once the last has left: one frame (a kilobyte) and
    // a keep-alive ping at most, however many events went by.
    expect(stalled.maxWaitingBytes()).toBeLessThan(8 * 1024);

    // No pong comes back: cut off within two keep-alive intervals of connecting, places given back.
    await waitFor('stalled socket cut off', () => wsGauges(gw), (g) => g.sockets === 1 && g.subscriptions === 1, 2 * keepAliveMs + 5_000 - (Date.now() - connectedAt));
    expect(stalled.server.destroyed).toBe(true);
    const again = wsClient(gw.wsUrl);
    clients.push(again);
    const fresh = record<Ev>(again, CALL_EVENTS, {}, 'callEvents');
    await waitFor('new socket counted', () => wsGauges(gw), (g) => g.sockets === 2 && g.subscriptions === 2, 10_000);
    await postEvents(gw, 1, 'after');
    await fresh.until((items) => items.length === 1);
    await expectAllDelivered(gw, start, normal);
    expect(gw.logText()).not.toContain('Internal error');
    expect(consoleErrors.mock.calls.map((args) => String(args[0]))).toEqual([]);
    consoleErrors.mockRestore();
  }, 40_000);

  it('is cut off once a subscription of its falls past its event queue limit, its places given back long before the keep-alive would', async () => {
    const queueLimit = 100;
    // Far beyond the test's own waits: only the queue limit can cut the stalled client here.
    const keepAliveMs = 120_000;
    // Two subscriptions per key: the normal one and the stalled one; a third fits only once the stalled one is gone.
    const { gw, start, normal } = await startWatched({ wsKeepAliveMs: keepAliveMs, liveTimings: { subscriberQueueLimit: queueLimit } }, { WS_MAX_SUBSCRIPTIONS_PER_KEY: '2' });
    const consoleErrors = vi.spyOn(console, 'error');
    const stalled = await startStalled(gw);

    const refusedClient = wsClient(gw.wsUrl);
    clients.push(refusedClient);
    const refused = record<Ev>(refusedClient, CALL_EVENTS, {}, 'callEvents');
    await expect(refused.done).rejects.toBeDefined();
    expect(refused.error).toMatchObject([{ message: expect.stringContaining('WS_MAX_SUBSCRIPTIONS_PER_KEY'), extensions: { code: 'RATE_LIMITED' } }]);
    await refusedClient.dispose();

    // Until the gateway's writes to the stalled client wait.
    let posted = 0;
    while (!stalled.everBlocked() && posted < 5_000) {
      await postEvents(gw, 100, `q${posted}`);
      posted += 100;
    }
    expect(stalled.everBlocked()).toBe(true);
    expect(await wsGauges(gw)).toEqual({ sockets: 2, subscriptions: 2 });
    // Then past its queue limit while a write waits. The kernel's buffers for a stalled socket grow for a
    // while before they stay full, so events go on until the cut is seen.
    const overflowFrom = Date.now();
    let gauges = await wsGauges(gw);
    while (gauges.sockets !== 1 && Date.now() - overflowFrom < 30_000) {
      await postEvents(gw, 20, `over${posted}`);
      posted += 20;
      gauges = await wsGauges(gw);
    }
    // Its socket is cut, and its subscription's places are back, long before the keep-alive would have.
    expect(gauges).toEqual({ sockets: 1, subscriptions: 1 });
    expect(stalled.server.destroyed).toBe(true);
    const line = gw.logs.find((l) => l.msg === 'graphql-ws socket cut off: a subscription fell past its event queue limit while its client was not reading');
    expect(line).toMatchObject({ level: 'info' });
    const metricsRes = await fetch(gw.metricsUrl);
    const metricsText = await metricsRes.text();
    expect(metricsRes.status).toBe(200);
    expect(metricsText).toMatch(/^gateway_client_errors_total\{kind="limit"\} 1$/m);

    // The key's place is back: a new subscription is taken and gets the next event.
    const again = wsClient(gw.wsUrl);
    clients.push(again);
    const fresh = record<Ev>(again, CALL_EVENTS, {}, 'callEvents');
    await waitFor('new subscription counted', () => wsGauges(gw), (g) => g.sockets === 2 && g.subscriptions === 2, 5_000);
    await postEvents(gw, 1, 'after');
    await fresh.until((items) => items.length === 1);
    expect(fresh.error).toBeUndefined();
    await expectAllDelivered(gw, start, normal);
    expect(gw.logText()).not.toContain('Internal error');
    expect(consoleErrors.mock.calls.map((args) => String(args[0]))).toEqual([]);
    consoleErrors.mockRestore();
  }, 60_000);

  it('is cut off when it keeps sending while reading nothing, before what waits for it grows past its limit', async () => {
    // Small limits make the backlog limit small: one answer of 1 KiB plus a frame of 1 KiB per operation.
    const env = { MAX_RESPONSE_BYTES: '1024', WS_MAX_PAYLOAD_BYTES: '1024', WS_MAX_SUBSCRIPTIONS_PER_SOCKET: '2' };
    const { gw, start, normal } = await startWatched({ wsKeepAliveMs: 0 }, env);
    // graphql-ws's own console output: a reply still waiting when the socket is cut must not read as a fault.
    const consoleErrors = vi.spyOn(console, 'error');
    const stalled = await startStalled(gw, 'ping-flood');

    await waitFor('flooding socket cut off', () => wsGauges(gw), (g) => g.sockets === 1 && g.subscriptions === 1, 15_000);
    expect(stalled.server.destroyed).toBe(true);
    await waitFor('client saw the cut', async () => stalled.output, (lines) => lines.includes('cut off'), 5_000);
    // Checked as each message arrives: past the limit by at most the answers to one read's worth of messages.
    expect(stalled.maxWaitingBytes()).toBeLessThan(4 * 1024 + 128 * 1024);
    const line = gw.logs.find((l) => l.msg === 'graphql-ws socket cut off: what waits for its client to read passed its bound');
    expect(line).toMatchObject({ level: 'info', maxBacklogBytes: 4 * 1024 });
    const metricsRes = await fetch(gw.metricsUrl);
    const metricsText = await metricsRes.text();
    expect(metricsRes.status).toBe(200);
    expect(metricsText).toMatch(/^gateway_client_errors_total\{kind="limit"\} 1$/m);

    await postEvents(gw, 20, 'after');
    await expectAllDelivered(gw, start, normal);
    expect(consoleErrors.mock.calls.map((args) => String(args[0]))).toEqual([]);
    consoleErrors.mockRestore();
  }, 40_000);
});

const redisUp = await redisOrSkip();

describe.skipIf(!redisUp)('a subscriber that keeps reading', () => {
  // On Redis every replica reads the event log in batches: events appended while its reader is away (a
  // lost connection, a slow read) arrive together and are handed to each subscription at once, before its
  // reader can take any. A burst past the queue limit ends that subscription (RATE_LIMITED, to resume with
  // callEvents(after:)); its client is reading (no write to it waits), so its socket and its other
  // operations stay.
  it('falling past its queue limit in one burst of events loses that subscription (RATE_LIMITED), not its socket', async () => {
    const queueLimit = 5;
    const burst = 20;
    const prefix = testPrefix('burst');
    const proxy = await startStallProxy(TEST_REDIS_URL);
    const gw = await startGateway(
      { REDIS_URL: proxy.url, REDIS_KEY_PREFIX: prefix, LIVE_POLL_INTERVAL_MS: '60000' },
      {},
      { wsKeepAliveMs: 120_000, liveTimings: { subscriberQueueLimit: queueLimit } },
      { autoStop: false },
    );
    try {
      const client = wsClient(gw.wsUrl);
      clients.push(client);
      const closes: unknown[] = [];
      client.on('closed', (event) => closes.push(event));
      const all = record<Ev>(client, CALL_EVENTS, {}, 'callEvents');
      // A second operation on the same socket, offered none of the burst.
      const calmSid = `CAcalm${process.pid}x0`;
      const calm = record<Ev>(client, 'subscription($sids: [ID!]) { callEvents(filter: { callSids: $sids }) { id callSid status } }', { sids: [calmSid] }, 'callEvents');
      await waitFor('both operations counted', () => wsGauges(gw), (g) => g.sockets === 1 && g.subscriptions === 2, 10_000);
      await postEvents(gw, 1, 'warm');
      await all.until((items) => items.length === 1);

      // The event log's reader is stalled after its next read: Redis answers that read with the burst's first
      // event; the rest of the burst is stored meanwhile and reaches the reader in one batch once let go.
      proxy.stallAfter((sent) => /xread/i.test(sent));
      await postEvents(gw, 1, 'warm2');
      await all.until((items) => items.length === 2);
      await waitFor('event log reader stalled', async () => proxy.stalled(), (stalled) => stalled, 10_000);
      await postEvents(gw, burst, 'burst');
      proxy.release();

      await expect(all.done).rejects.toBeDefined();
      expect(all.error).toEqual([
        expect.objectContaining({ message: `Subscriber fell more than ${queueLimit} events behind; subscribe again (with callEvents(after:) to resume)`, extensions: expect.objectContaining({ code: 'RATE_LIMITED' }) }),
      ]);
      // What it had been handed before the limit was passed: the two warm-ups and the burst's first event, then
      // of the batch the one its reader was waiting for, and a queue's worth.
      const logged = await loggedCallEvents(gw, undefined);
      expect(logged).toHaveLength(2 + burst);
      expect(all.items.map((e) => e.id)).toEqual(logged.slice(0, 3 + 1 + queueLimit));

      // The socket stays, with its other operation, which gets its next event.
      expect(await wsGauges(gw)).toEqual({ sockets: 1, subscriptions: 1 });
      await postEvents(gw, 1, 'calm');
      await calm.until((items) => items.length === 1);
      expect(calm.items).toEqual([expect.objectContaining({ callSid: calmSid, status: 'IN_PROGRESS' })]);
      expect(calm.error).toBeUndefined();
      expect(closes).toEqual([]);
      expect(gw.logs.filter((l) => String(l.msg).startsWith('graphql-ws socket cut off'))).toEqual([]);
      const metricsRes = await fetch(gw.metricsUrl);
      const metricsText = await metricsRes.text();
      expect(metricsRes.status).toBe(200);
      expect(metricsText).not.toMatch(/^gateway_client_errors_total\{kind="limit"\}/m);
    } finally {
      await gw.stop();
      await proxy.close();
      await deleteKeys(prefix);
    }
  }, 40_000);
});
