/**
 * Abuse limits and client auth over real HTTP and real graphql-ws sockets: every limit is
 * refused with its code before execution, and the simulator (Exotel) sees no request for any of them.
 */
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { ackedSocket, rawSocket, type RawSocket } from './ws-raw.js';

const READER = 'reader-secret-0123456789';
const WRITER = 'writer-secret-0123456789';
const LIMITS = {
  GATEWAY_API_KEYS: `reader:${READER}:read,writer:${WRITER}:read+write`,
  MAX_DEPTH: '4',
  MAX_ALIASES: '3',
  MAX_DIRECTIVES: '2',
  MAX_TOKENS: '200',
  MAX_COST: '100',
  MAX_BODY_BYTES: '2048',
  MAX_BATCH_OPERATIONS: '2',
  WS_MAX_PAYLOAD_BYTES: '1024',
  WS_CONNECTION_INIT_TIMEOUT_MS: '200',
  WS_MAX_SUBSCRIPTIONS_PER_SOCKET: '2',
  WS_MAX_SOCKETS_PER_KEY: '2',
  WS_ALLOWED_ORIGINS: 'https://ops.example.com',
  LIVE_POLL_INTERVAL_MS: '60000',
};
const bearer = (secret: string) => ({ authorization: `Bearer ${secret}` });

const F = 'sid from to status direction startTime endTime durationSeconds price recordingUrl answeredBy customField dateCreated dateUpdated';
/** Each document breaks exactly one limit, and each would make Exotel requests if it ran. */
const OVER: Array<[reason: string, query: string]> = [
  ['MAX_DEPTH', '{ calls(first: 1) { edges { node { events { call { events { call { sid } } } } } } } }'],
  ['MAX_ALIASES', '{ a: call(sid: "a1") { sid } b: call(sid: "b1") { sid } c: call(sid: "c1") { sid } d: call(sid: "d1") { sid } }'],
  ['MAX_DIRECTIVES', '{ call(sid: "x1") { sid @include(if: true) from @include(if: true) to @skip(if: false) } }'],
  ['MAX_COST', `{ a: calls(first: 5) { nodes { ${F} } edges { cursor node { ${F} } } } b: calls(first: 2) { nodes { ${F} } } }`],
  // Small enough in bytes for WS_MAX_PAYLOAD_BYTES, so graphql-ws sees the token limit, not the frame size.
  ['MAX_TOKENS', `{ exophones { ${'sid '.repeat(210)}} }`],
];

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway(LIMITS);
});
const upstream = () => gw.simulator!.countRequests();
/** gateway_client_errors_total{kind} from the gateway's /metrics (0 when absent). */
async function clientErrors(kind: string): Promise<number> {
  const res = await fetch(gw.metricsUrl);
  const text = await res.text();
  expect(res.status).toBe(200);
  return Number(new RegExp(`^gateway_client_errors_total\\{kind="${kind}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
}
const sockets: RawSocket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.ws.terminate();
});
const track = (s: RawSocket) => (sockets.push(s), s);

describe('GraphQL over HTTP limits', () => {
  it.each(OVER)('%s: refused as BAD_USER_INPUT before execution, with no upstream request', async (reason, query) => {
    const before = upstream();
    const res = await gw.gql(query, undefined, bearer(READER));
    expect(res.status).toBe(400);
    expect(res.body.data).toBeUndefined();
    expect(res.body.errors?.map((e) => e.extensions)).toEqual([expect.objectContaining({ code: 'BAD_USER_INPUT', reason })]);
    expect(upstream()).toBe(before);
  });

  it('a document just inside every limit runs', async () => {
    const res = await gw.gql('{ a: exophones { sid } b: rateLimit { remaining } }', undefined, bearer(READER));
    expect(res.status).toBe(200);
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data.a.length).toBeGreaterThan(0);
  });

  it('a body over MAX_BODY_BYTES → 413 BAD_USER_INPUT naming the limit, no upstream request', async () => {
    const before = upstream();
    const res = await fetch(`${gw.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...bearer(READER) },
      body: JSON.stringify({ query: '{ exophones { sid } }', variables: { pad: 'x'.repeat(3000) } }),
    });
    expect(res.status).toBe(413);
    expect(await res.json()).toEqual({ errors: [{ message: expect.stringContaining('MAX_BODY_BYTES'), extensions: { code: 'BAD_USER_INPUT', reason: 'MAX_BODY_BYTES' } }] });
    expect(upstream()).toBe(before);
  });

  it('batches: up to MAX_BATCH_OPERATIONS run, one more → 400 MAX_BATCH_SIZE with nothing run', async () => {
    const op = { query: '{ rateLimit { limitPerMinute } }' };
    const ok = await fetch(`${gw.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...bearer(READER) }, body: JSON.stringify([op, op]) });
    const okBody = (await ok.json()) as Array<{ data: { rateLimit: { limitPerMinute: number } } }>;
    expect(ok.status).toBe(200);
    expect(okBody).toHaveLength(2);
    expect(okBody[1]!.data.rateLimit.limitPerMinute).toBe(200);

    const before = upstream();
    const tooMany = [{ query: '{ exophones { sid } }' }, { query: '{ exophones { sid } }' }, { query: '{ exophones { sid } }' }];
    const res = await fetch(`${gw.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...bearer(READER) }, body: JSON.stringify(tooMany) });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ errors: [{ message: expect.any(String), extensions: { code: 'BAD_USER_INPUT', reason: 'MAX_BATCH_SIZE' } }] });
    expect(upstream()).toBe(before);
  });

  it('a token limit inside a batch refuses the whole batch', async () => {
    const before = upstream();
    const batch = [{ query: '{ exophones { sid } }' }, { query: OVER.find(([r]) => r === 'MAX_TOKENS')![1] }];
    const res = await fetch(`${gw.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...bearer(READER) }, body: JSON.stringify(batch) });
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).errors[0].extensions).toEqual({ code: 'BAD_USER_INPUT', reason: 'MAX_TOKENS' });
    expect(upstream()).toBe(before);
  });

  it('a read key cannot mutate (FORBIDDEN, nothing sent); a read+write key can', async () => {
    const mutation = 'mutation { sendSms(input: { from: "08047112345", to: "09812345670", body: "hi" }) { sms { sid } } }';
    const before = upstream();
    const denied = await gw.gql(mutation, undefined, bearer(READER));
    expect(denied.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(denied.body.data ?? null).toBeNull();
    expect(upstream()).toBe(before);
    const allowed = await gw.gql(mutation, undefined, bearer(WRITER));
    expect(allowed.body.errors).toBeUndefined();
    expect(allowed.body.data.sendSms.sms.sid).toEqual(expect.any(String));
  });

  it('a wrong key → 401 UNAUTHENTICATED', async () => {
    const res = await gw.gql('{ exophones { sid } }', undefined, bearer('not-a-key-0123456789'));
    expect(res.status).toBe(401);
    expect(res.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('echoes a sane X-Request-Id and replaces an insane one', async () => {
    const sane = await fetch(`${gw.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': 'trace-42.a:b', ...bearer(READER) }, body: '{"query":"{ rateLimit { remaining } }"}' });
    await sane.text();
    expect(sane.headers.get('x-request-id')).toBe('trace-42.a:b');
    const insane = await fetch(`${gw.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': 'a b<script>', ...bearer(READER) }, body: '{"query":"{ rateLimit { remaining } }"}' });
    await insane.text();
    expect(insane.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const line = gw.logs.find((l) => l.msg === 'http request' && l.requestId === 'trace-42.a:b');
    expect(line).toMatchObject({ method: 'POST', route: '/graphql', status: 200 });
  });
});

describe('graphql-ws limits', () => {
  it('a wrong key cannot subscribe: close 4403 before any operation', async () => {
    const s = track(rawSocket(gw.wsUrl));
    await s.opened;
    s.send({ type: 'connection_init', payload: bearer('wrong-key-0123456789') });
    expect((await s.closed).code).toBe(4403);
  });

  it('a missing key, or a key only in the URL, cannot subscribe: 4403', async () => {
    const s = track(rawSocket(`${gw.wsUrl}?authorization=${encodeURIComponent(`Bearer ${READER}`)}`));
    await s.opened;
    s.send({ type: 'connection_init', payload: {} });
    expect((await s.closed).code).toBe(4403);
  });

  it('no connection_init within WS_CONNECTION_INIT_TIMEOUT_MS → 4408', async () => {
    const s = track(rawSocket(gw.wsUrl));
    await s.opened;
    expect((await s.closed).code).toBe(4408);
  });

  it('declines permessage-deflate when the client offers it (as ws clients do by default)', async () => {
    const s = track(rawSocket(gw.wsUrl));
    await s.opened;
    // Frames differ per subscriber (their ids), so each would be compressed on its own, per subscriber.
    expect(s.ws.extensions).toBe('');
  });

  it('a frame over WS_MAX_PAYLOAD_BYTES → 1009, nothing run; a client mistake, logged at info and never printed as an internal error', async () => {
    const s = track(await ackedSocket(gw.wsUrl, `Bearer ${READER}`));
    const before = upstream();
    const limitErrors = await clientErrors('limit');
    const consoleErrors = vi.spyOn(console, 'error');
    try {
      s.send({ type: 'subscribe', id: '1', payload: { query: `{ exophones { sid } } # ${'x'.repeat(2000)}` } });
      expect((await s.closed).code).toBe(1009);
      expect(upstream()).toBe(before);
      expect(consoleErrors.mock.calls.map((args) => String(args[0]))).toEqual([]);
    } finally {
      consoleErrors.mockRestore();
    }
    const line = gw.logs.find((l) => l.msg === 'graphql-ws frame refused: the client sent a frame it may not');
    expect(line).toMatchObject({ level: 'info', code: 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' });
    expect(await clientErrors('limit')).toBe(limitErrors + 1);
  });

  it('subscriptions past WS_MAX_SUBSCRIPTIONS_PER_SOCKET → RATE_LIMITED error for that operation; the socket stays', async () => {
    const s = track(await ackedSocket(gw.wsUrl, `Bearer ${READER}`));
    for (const id of ['1', '2']) s.send({ type: 'subscribe', id, payload: { query: 'subscription { incomingCalls { sid } }' } });
    s.send({ type: 'subscribe', id: '3', payload: { query: 'subscription { incomingCalls { sid } }' } });
    const error = await s.next((m) => m.id === '3');
    expect(error).toMatchObject({ type: 'error', payload: [{ extensions: { code: 'RATE_LIMITED', retryAfterSeconds: 1 } }] });
    // Completing one frees a slot.
    s.send({ type: 'complete', id: '1' });
    s.send({ type: 'subscribe', id: '4', payload: { query: '{ rateLimit { limitPerMinute } }' } });
    expect(await s.next((m) => m.id === '4')).toMatchObject({ type: 'next', payload: { data: { rateLimit: { limitPerMinute: 200 } } } });
  });

  /** Log lines at warn or above written since line `from`: a client's doing writes none. */
  const warnings = (from: number) => gw.logs.slice(from).filter((l) => Number(l.level) >= 40).map((l) => l.msg);

  it('sockets past WS_MAX_SOCKETS_PER_KEY → close 4429 for that key only, counted as a client limit, no warning', async () => {
    track(await ackedSocket(gw.wsUrl, `Bearer ${READER}`));
    track(await ackedSocket(gw.wsUrl, `Bearer ${READER}`));
    const [logged, limits] = [gw.logs.length, await clientErrors('limit')];
    const third = track(rawSocket(gw.wsUrl));
    await third.opened;
    third.send({ type: 'connection_init', payload: bearer(READER) });
    expect(await third.closed).toEqual({ code: 4429, reason: 'Too many sockets for this API key' });
    expect(await clientErrors('limit')).toBe(limits + 1);
    expect(warnings(logged)).toEqual([]);
    // Another key is not affected.
    track(await ackedSocket(gw.wsUrl, `Bearer ${WRITER}`));
  });

  it('an Origin not in WS_ALLOWED_ORIGINS is refused at the upgrade with 403, counted, no warning; an allowed one connects', async () => {
    const [logged, refusals] = [gw.logs.length, await clientErrors('auth')];
    const evil = track(rawSocket(gw.wsUrl, { origin: 'https://evil.example' }));
    expect(await evil.refused).toBe(403);
    expect(await clientErrors('auth')).toBe(refusals + 1);
    expect(warnings(logged)).toEqual([]);
    track(await ackedSocket(gw.wsUrl, `Bearer ${WRITER}`, { origin: 'https://ops.example.com' }));
  });

  it.each(OVER)('%s applies to operations over graphql-ws too, with no upstream request', async (reason, query) => {
    const s = track(await ackedSocket(gw.wsUrl, `Bearer ${WRITER}`));
    const before = upstream();
    s.send({ type: 'subscribe', id: 'x', payload: { query } });
    const error = await s.next((m) => m.id === 'x');
    expect(error.type).toBe('error');
    expect(error.payload.map((e: any) => e.extensions)).toEqual([expect.objectContaining({ code: 'BAD_USER_INPUT', reason })]);
    expect(upstream()).toBe(before);
  });

  it('a read key may subscribe and query over graphql-ws but not mutate', async () => {
    const s = track(await ackedSocket(gw.wsUrl, `Bearer ${READER}`));
    const before = upstream();
    s.send({ type: 'subscribe', id: 'm', payload: { query: 'mutation { sendSms(input: { from: "08047112345", to: "09812345670", body: "hi" }) { sms { sid } } }' } });
    const result = await s.next((m) => m.id === 'm');
    expect(JSON.stringify(result)).toContain('FORBIDDEN');
    expect(upstream()).toBe(before);
  });
});

describe('production: introspection and field suggestions are off on both transports', () => {
  let prod: TestGateway;
  beforeAll(async () => {
    prod = await startGateway({ NODE_ENV: 'production', GATEWAY_API_KEYS: `reader:${READER}:read` });
  });

  it('HTTP: __schema refused, a misspelt field names no suggestion, limits name no numbers', async () => {
    const intro = await prod.gql('{ __schema { types { name } } }', undefined, bearer(READER));
    expect(intro.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(intro.body.data).toBeUndefined();
    const typo = await prod.gql('{ exophone { sid } }', undefined, bearer(READER));
    expect(typo.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(typo.body.errors?.[0]?.message).not.toMatch(/Did you mean|exophones/);
    const deep = await prod.gql(OVER[0]![1].replace('{ sid }', '{ events { call { events { call { sid } } } } }'), undefined, bearer(READER));
    expect(deep.body.errors?.[0]).toEqual({ message: 'The operation was rejected: the selection is nested too deeply.', extensions: { code: 'BAD_USER_INPUT', reason: 'MAX_DEPTH' } });
  });

  it('graphql-ws: __schema refused, no suggestions', async () => {
    const s = track(await ackedSocket(prod.wsUrl, `Bearer ${READER}`));
    s.send({ type: 'subscribe', id: 'i', payload: { query: '{ __schema { types { name } } }' } });
    const intro = await s.next((m) => m.id === 'i');
    expect(intro.type).toBe('error');
    expect(intro.payload.map((e: any) => e.extensions.code)).toEqual(intro.payload.map(() => 'BAD_USER_INPUT'));
    expect(JSON.stringify(intro)).toContain('INTROSPECTION=off');
    s.send({ type: 'subscribe', id: 't', payload: { query: '{ exophone { sid } }' } });
    const typo = await s.next((m) => m.id === 't');
    expect(typo.type).toBe('error');
    expect(JSON.stringify(typo)).not.toMatch(/Did you mean|exophones/);
  });
});
