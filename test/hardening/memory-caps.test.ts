/**
 * Memory one key can make the gateway hold is bounded: subscriptions per key over all its sockets
 * (WS_MAX_SUBSCRIPTIONS_PER_KEY) and the size of a subscription's filter (`@maxItems` on
 * CallEventFilter.callSids). Real gateway, raw graphql-transport-ws sockets.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { ackedSocket, type RawSocket } from './ws-raw.js';

const A = 'key-a-secret-0123456789';
const B = 'key-b-secret-0123456789';
let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway({
    GATEWAY_API_KEYS: `a:${A}:read,b:${B}:read`,
    WS_MAX_SUBSCRIPTIONS_PER_SOCKET: '2',
    WS_MAX_SUBSCRIPTIONS_PER_KEY: '3',
    LIVE_POLL_INTERVAL_MS: '60000',
  });
});
const sockets: RawSocket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.ws.terminate();
});
const open = async (secret: string) => {
  const s = await ackedSocket(gw.wsUrl, `Bearer ${secret}`);
  sockets.push(s);
  return s;
};
const SUBSCRIPTION = 'subscription { incomingCalls { sid } }';
/** Subscriptions the gateway holds right now, as /metrics reports them. */
const held = async () => Number(/^gateway_ws_subscriptions (\d+)/m.exec(await (await fetch(`${gw.url}/metrics`)).text())?.[1]);

describe('a subscription filter is held to its cap', () => {
  const sids = (n: number) => Array.from({ length: n }, (_, i) => `CA${String(i).padStart(30, '0')}`);

  it('callEvents with more than 100 distinct call Sids → BAD_USER_INPUT naming filter.callSids, nothing held', async () => {
    const s = await open(A);
    s.send({ type: 'subscribe', id: 'big', payload: { query: 'subscription($s: [ID!]) { callEvents(filter: { callSids: $s }) { id } }', variables: { s: sids(101) } } });
    const refused = await s.next((m) => m.id === 'big');
    expect(refused).toEqual({
      id: 'big',
      type: 'error',
      payload: [{ message: 'filter.callSids: at most 100 distinct values (got 101)', extensions: { code: 'BAD_USER_INPUT', field: 'filter.callSids', reason: 'MAX_LIST_SIZE' } }],
    });
    expect(await held()).toBe(0);
  });

  it('100 distinct Sids, repeated, are within the cap', async () => {
    const s = await open(A);
    const list = sids(100);
    s.send({ type: 'subscribe', id: 'ok', payload: { query: 'subscription($s: [ID!]) { callEvents(filter: { callSids: $s }) { id } }', variables: { s: [...list, ...list] } } });
    // A query after it on the same socket answers; the subscription got no error.
    s.send({ type: 'subscribe', id: 'q', payload: { query: '{ rateLimit { limitPerMinute } }' } });
    expect(await s.next((m) => m.id === 'q' && m.type === 'next')).toMatchObject({ payload: { data: { rateLimit: { limitPerMinute: 200 } } } });
    expect(await held()).toBeGreaterThanOrEqual(1);
    s.send({ type: 'complete', id: 'ok' });
  });
});

describe('WS_MAX_SUBSCRIPTIONS_PER_KEY', () => {
  it('counts every socket of a key; the next operation gets RATE_LIMITED naming the limit; other keys are not affected', async () => {
    const first = await open(A);
    const second = await open(A);
    first.send({ type: 'subscribe', id: '1', payload: { query: SUBSCRIPTION } });
    first.send({ type: 'subscribe', id: '2', payload: { query: SUBSCRIPTION } });
    second.send({ type: 'subscribe', id: '3', payload: { query: SUBSCRIPTION } });
    // The three are held once a later query on the second socket has answered.
    second.send({ type: 'subscribe', id: '4', payload: { query: SUBSCRIPTION } });
    const refused = await second.next((m) => m.id === '4');
    expect(refused).toMatchObject({ type: 'error', payload: [{ extensions: { code: 'RATE_LIMITED', retryAfterSeconds: 1 } }] });
    expect(refused.payload[0].message).toMatch(/At most 3 operations at once for one API key \(WS_MAX_SUBSCRIPTIONS_PER_KEY\)/);

    const other = await open(B);
    other.send({ type: 'subscribe', id: 'b', payload: { query: '{ rateLimit { limitPerMinute } }' } });
    expect(await other.next((m) => m.id === 'b')).toMatchObject({ type: 'next' });
  });

  it('a finished operation and a closed socket give their places back', async () => {
    const s = await open(A);
    s.send({ type: 'subscribe', id: '1', payload: { query: SUBSCRIPTION } });
    s.send({ type: 'subscribe', id: '2', payload: { query: SUBSCRIPTION } });
    // Two held, one place left: queries one after the other each take it and give it back when complete.
    const t = await open(A);
    for (const id of ['q1', 'q2', 'q3']) {
      t.send({ type: 'subscribe', id, payload: { query: '{ rateLimit { limitPerMinute } }' } });
      expect(await t.next((m) => m.id === id)).toMatchObject({ type: 'next' });
      expect(await t.next((m) => m.id === id)).toEqual({ id, type: 'complete' });
    }
    // Closing the socket with two subscriptions frees both places.
    s.ws.close();
    await s.closed;
    for (let i = 0; i < 200 && (await held()) > 0; i++) await new Promise((r) => setImmediate(r));
    t.send({ type: 'subscribe', id: 'x', payload: { query: SUBSCRIPTION } });
    t.send({ type: 'subscribe', id: 'y', payload: { query: SUBSCRIPTION } });
    const u = await open(A);
    u.send({ type: 'subscribe', id: 'z', payload: { query: '{ rateLimit { limitPerMinute } }' } });
    expect(await u.next((m) => m.id === 'z')).toMatchObject({ type: 'next' });
  });
});
