/**
 * Operation ids a graphql-ws client reuses or repeats, against the real gateway over raw sockets. The
 * protocol lets a client subscribe again with an id once it has completed it; graphql-ws (the library)
 * forgets a completed id at once, while the operation it started may still be starting up on the server.
 * What must hold: each id runs one operation at a time, so nothing runs on after its socket has closed and
 * every event reaches an id once; and a repeated id is refused with 4409 as the protocol says, whatever
 * the id's length, as a client mistake.
 */
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { randomBytes } from 'node:crypto';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { callbackUrlsOf, callCallback, post } from '../live/webhook-helpers.js';
import { ackedSocket, type RawSocket } from './ws-raw.js';

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway({ LIVE_POLL_INTERVAL_MS: '60000' });
});
const sockets: RawSocket[] = [];
afterEach(() => {
  vi.restoreAllMocks();
  for (const s of sockets.splice(0)) s.ws.terminate();
});
const open = async () => {
  const s = await ackedSocket(gw.wsUrl);
  sockets.push(s);
  return s;
};

const CALL_EVENTS = { query: 'subscription { callEvents { callSid status } }' };
/** Subscriptions the gateway holds right now, as /metrics reports them. */
const held = async () => Number(/^gateway_ws_subscriptions (\d+)/m.exec(await (await fetch(gw.metricsUrl)).text())?.[1]);
/** Waits (bounded) until the gateway holds `n` subscriptions; answers what it holds then. */
const settleAt = async (n: number) => {
  for (let i = 0; i < 100 && (await held()) !== n; i++) await new Promise((r) => setTimeout(r, 10));
  return held();
};
/** A query answered on `s`: every message sent before it has been taken in. */
const roundTrip = async (s: RawSocket) => {
  const id = `q-${randomBytes(4).toString('hex')}`;
  s.send({ type: 'subscribe', id, payload: { query: '{ rateLimit { limitPerMinute } }' } });
  await s.next((m) => m.id === id && m.type === 'complete');
};
/** Sends `messages` in one write, so the gateway reads them in one go: the first operation is still starting when the last arrives. */
const burst = (s: RawSocket, messages: unknown[]) => {
  const tcp = (s.ws as unknown as { _socket: import('node:net').Socket })._socket;
  tcp.cork();
  for (const m of messages) s.send(m);
  tcp.uncork();
};
const newSid = () => randomBytes(16).toString('hex');
const callStatus = (sid: string) => post(callbackUrlsOf(gw).callStatus, callCallback(sid, 'completed'));

describe('an operation id reused right after its complete', () => {
  it('runs one operation: each event reaches the id once, and nothing is held after complete or close', async () => {
    const s = await open();
    // The first operation is still starting when the client completes it and reuses its id.
    burst(s, [
      { type: 'subscribe', id: 'x', payload: CALL_EVENTS },
      { type: 'complete', id: 'x' },
      { type: 'subscribe', id: 'x', payload: CALL_EVENTS },
    ]);
    await roundTrip(s);
    expect(await settleAt(1)).toBe(1);

    const [first, second] = [newSid(), newSid()];
    expect((await callStatus(first)).status).toBe(200);
    expect(await s.next((m) => m.id === 'x' && m.payload?.data?.callEvents?.callSid === first)).toMatchObject({ type: 'next' });
    // Every subscriber of the first event was handed it before the second one: a second copy would be here by now.
    expect((await callStatus(second)).status).toBe(200);
    await s.next((m) => m.id === 'x' && m.payload?.data?.callEvents?.callSid === second);
    await roundTrip(s);
    await expect(Promise.race([s.next((m) => m.id === 'x'), Promise.resolve('none')])).resolves.toBe('none');

    s.send({ type: 'complete', id: 'x' });
    await roundTrip(s);
    expect(await settleAt(0)).toBe(0);
  });

  it('whose first operation never ended is not left running when the socket closes', async () => {
    const s = await open();
    const cycle = [
      { type: 'subscribe', id: 'y', payload: CALL_EVENTS },
      { type: 'complete', id: 'y' },
    ];
    burst(s, [...cycle, ...cycle, ...cycle, ...cycle, ...cycle, { type: 'subscribe', id: 'y', payload: CALL_EVENTS }]);
    await roundTrip(s);
    expect(await settleAt(1)).toBe(1);
    s.ws.close();
    await s.closed;
    expect(await settleAt(0)).toBe(0);
  });

  it('waits with at most WS_MAX_SUBSCRIPTIONS_PER_SOCKET such subscribes; one more gets RATE_LIMITED', async () => {
    const small = await startGateway({ LIVE_POLL_INTERVAL_MS: '60000', WS_MAX_SUBSCRIPTIONS_PER_SOCKET: '2' });
    const s = await ackedSocket(small.wsUrl);
    sockets.push(s);
    burst(s, [
      ...['a', 'b', 'c'].flatMap((id) => [
        { type: 'subscribe', id, payload: CALL_EVENTS },
        { type: 'complete', id },
        { type: 'subscribe', id, payload: CALL_EVENTS },
      ]),
      // Refused while waiting, not once running: with a's given up, b and c would be within the socket's limit.
      { type: 'complete', id: 'a' },
    ]);
    expect(await s.next((m) => m.id === 'c')).toEqual({
      id: 'c',
      type: 'error',
      payload: [{ message: 'At most 2 operations at once on one socket', extensions: { code: 'RATE_LIMITED', retryAfterSeconds: 1 } }],
    });
    // The one still waiting runs: an event reaches it.
    const sid = newSid();
    expect((await post(callbackUrlsOf(small).callStatus, callCallback(sid, 'completed'))).status).toBe(200);
    await s.next((m) => m.id === 'b' && m.payload?.data?.callEvents?.callSid === sid);
  });
});

describe('a subscribe repeating the id of a running operation', () => {
  it('closes the socket with 4409, its reason within 123 bytes, as a client mistake (no internal error)', async () => {
    const consoleErrors = vi.spyOn(console, 'error');
    for (const id of ['dup', 'd'.repeat(200)]) {
      const s = await open();
      s.send({ type: 'subscribe', id, payload: CALL_EVENTS });
      s.send({ type: 'subscribe', id, payload: CALL_EVENTS });
      const closed = await s.closed;
      expect(closed.code).toBe(4409);
      expect(Buffer.byteLength(closed.reason)).toBeLessThanOrEqual(123);
      expect(closed.reason).toMatch(/^Subscriber for .* already exists$/);
    }
    expect(consoleErrors.mock.calls.map((args) => String(args[0]))).toEqual([]);
    expect(await settleAt(0)).toBe(0);
  });
});
