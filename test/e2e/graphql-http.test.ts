/**
 * The GraphQL-over-HTTP route (src/http/graphql-http.ts) in front of express: every /graphql request —
 * GET or POST, one operation or a batch, executed or answered warm — goes through Apollo's pipeline
 * (CSRF prevention, plugins); bodies that never become a request are refused with a GraphQL-shaped body
 * and counted as client errors; every answer carries its request id, `no-store`, and one access-log line.
 * A fault of the route's own code is a GraphQL-shaped 500, and stop() answers the requests in flight.
 */
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import type { ApolloServer } from '@apollo/server';
import { beforeAll, describe, expect, it } from 'vitest';
import type { GraphQLContext } from '../../src/graphql/context.js';
import { graphqlHttpHandler } from '../../src/http/graphql-http.js';
import { createLogger } from '../../src/logger.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';

const CALL = 'query Held($sid: ID!) { call(sid: $sid) { sid status } }';
const PREFLIGHT = { 'apollo-require-preflight': '1' };

/** The value of one series of the gateway's /metrics text (0 when absent). */
async function series(gw: TestGateway, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  return line ? Number(line.split(' ').at(-1)) : 0;
}
const operations = (gw: TestGateway, name: string) => series(gw, 'gateway_graphql_operations_total', `operation="${name}",type="query",outcome="ok"`);
const clientErrors = (gw: TestGateway, kind: string) => series(gw, 'gateway_client_errors_total', `kind="${kind}"`);

const postRaw = (gw: TestGateway, body: string, headers: Record<string, string> = { 'content-type': 'application/json' }) => fetch(`${gw.url}/graphql`, { method: 'POST', headers, body });

let gw: TestGateway;
let sid: string;
beforeAll(async () => {
  gw = await startGateway({ LIVE_POLL_INTERVAL_MS: '60000', MAX_BODY_BYTES: '4096' });
  sid = gw.simulator!.calls.list().find((c) => c.Status === 'completed')!.Sid;
  // Twice: the first answer comes from Exotel, the second from the held call and is kept warm.
  for (let i = 0; i < 2; i++) expect((await gw.gql(CALL, { sid })).body.data.call.sid).toBe(sid);
});

describe("every request runs Apollo's pipeline", () => {
  it('a warm query sent as a simple cross-site GET is still refused by CSRF prevention, and counted', async () => {
    const warm = gw.warmAnswers.stats().warm;
    const refusedBefore = await clientErrors(gw, 'validation');
    const url = `${gw.url}/graphql?query=${encodeURIComponent(CALL)}&variables=${encodeURIComponent(JSON.stringify({ sid }))}`;
    const refused = await fetch(url);
    expect(refused.status).toBe(400);
    expect(await refused.text()).toMatch(/CSRF/);
    expect(await clientErrors(gw, 'validation')).toBe(refusedBefore + 1);
    expect(gw.warmAnswers.stats().warm).toBe(warm);

    const before = await operations(gw, 'Held');
    const ok = await fetch(url, { headers: PREFLIGHT });
    expect(ok.status).toBe(200);
    expect((await ok.json()).data.call.sid).toBe(sid);
    expect(gw.warmAnswers.stats().warm).toBe(warm + 1);
    expect(await operations(gw, 'Held')).toBe(before + 1);
  });

  it('a warm query over POST is answered by the warm-answer plugin and observed by the metrics plugin', async () => {
    const before = { warm: gw.warmAnswers.stats().warm, counted: await operations(gw, 'Held') };
    for (let i = 0; i < 3; i++) expect((await gw.gql(CALL, { sid })).body.data.call.status).toBe('COMPLETED');
    expect(gw.warmAnswers.stats().warm).toBe(before.warm + 3);
    expect(await operations(gw, 'Held')).toBe(before.counted + 3);
  });

  it('each operation of a batched POST is observed by the plugins, and a text/plain batch is refused', async () => {
    const before = { a: await operations(gw, 'BatchA'), b: await operations(gw, 'BatchB') };
    const batch = [
      { query: 'query BatchA { gateway { mode } }' },
      { query: 'query BatchB($sid: ID!) { call(sid: $sid) { sid } }', variables: { sid } },
    ];
    const res = await postRaw(gw, JSON.stringify(batch));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual([{ data: { gateway: { mode: 'SIMULATOR' } } }, { data: { call: { sid } } }]);
    expect(await operations(gw, 'BatchA')).toBe(before.a + 1);
    expect(await operations(gw, 'BatchB')).toBe(before.b + 1);

    const form = await postRaw(gw, JSON.stringify(batch), { 'content-type': 'text/plain' });
    expect(form.status).toBe(415);
    expect(await operations(gw, 'BatchA')).toBe(before.a + 1);
  });

  it('any method but GET and POST is answered by Apollo with 405', async () => {
    const res = await fetch(`${gw.url}/graphql`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ gateway { mode } }' }) });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET, POST');
    expect((await res.json()).errors[0].extensions.code).toBe('BAD_USER_INPUT');
  });
});

describe('a persisted-query hash', () => {
  it('is refused, so no document runs unseen by the limits (MAX_COST, list caps, the mutation exception)', async () => {
    let upstream = 0;
    const small = await startGateway({ LIVE_POLL_INTERVAL_MS: '60000', MAX_COST: '100' }, {}, { onUpstreamRequest: () => void upstream++ });
    const query = 'query Many($sids: [ID!]!) { callsBySid(sids: $sids) { sid status direction } }';
    const persistedQuery = { version: 1, sha256Hash: createHash('sha256').update(query).digest('hex') };
    const post = (body: unknown) => fetch(`${small.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const sids = Array.from({ length: 60 }, (_, i) => `CA${i}`);
    // The document itself is over MAX_COST with these variables.
    expect((await (await post({ query, variables: { sids } })).json()).errors[0].extensions.reason).toBe('MAX_COST');

    const before = { upstream, refused: await clientErrors(small, 'validation'), logged: small.logs.length };
    const register = await post({ query, variables: { sids: ['CA0'] }, extensions: { persistedQuery } });
    const replay = await post({ variables: { sids }, extensions: { persistedQuery } });
    for (const res of [register, replay]) {
      const body = await res.json();
      expect(body.data).toBeUndefined();
      expect(body.errors).toEqual([{ message: 'PersistedQueryNotSupported', extensions: { code: 'BAD_USER_INPUT', reason: 'PERSISTED_QUERY_NOT_SUPPORTED' } }]);
    }
    expect(upstream).toBe(before.upstream);
    expect(await clientErrors(small, 'validation')).toBe(before.refused + 2);
    expect(small.logs.slice(before.logged).filter((l) => l.level !== 'info')).toEqual([]);
  });
});

describe('bodies that never become a GraphQL request', () => {
  const cases: Array<{ what: string; send: () => Promise<Response>; status: number; kind: string; message: RegExp; reason?: string }> = [
    { what: 'malformed JSON', send: () => postRaw(gw, '{"query": "{ gateway { mode } }"'), status: 400, kind: 'syntax', message: /not valid JSON/ },
    { what: 'a JSON string, not an object or array', send: () => postRaw(gw, '"{ gateway { mode } }"'), status: 400, kind: 'syntax', message: /not valid JSON/ },
    { what: 'a body over MAX_BODY_BYTES', send: () => postRaw(gw, JSON.stringify({ query: `{ gateway { mode } } # ${'x'.repeat(5000)}` })), status: 413, kind: 'limit', message: /too large/, reason: 'MAX_BODY_BYTES' },
    {
      what: 'a body over MAX_BODY_BYTES sent without a Content-Length',
      send: () => {
        const body = JSON.stringify({ query: `{ gateway { mode } } # ${'x'.repeat(5000)}` });
        const chunks = new ReadableStream({
          start(controller) {
            controller.enqueue(new TextEncoder().encode(body));
            controller.close();
          },
        });
        // A stream body goes out chunked: only reading can tell its size.
        return fetch(`${gw.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chunks, duplex: 'half' } as RequestInit);
      },
      status: 413,
      kind: 'limit',
      message: /too large/,
      reason: 'MAX_BODY_BYTES',
    },
    { what: 'text/plain', send: () => postRaw(gw, '{"query":"{ gateway { mode } }"}', { 'content-type': 'text/plain' }), status: 415, kind: 'input', message: /application\/json/ },
    { what: 'no Content-Type', send: () => postRaw(gw, '{"query":"{ gateway { mode } }"}', {}), status: 415, kind: 'input', message: /application\/json/ },
    { what: 'a charset other than UTF-8', send: () => postRaw(gw, '{"query":"{ gateway { mode } }"}', { 'content-type': 'application/json; charset=latin1' }), status: 415, kind: 'input', message: /UTF-8/ },
    { what: 'a compressed body', send: () => postRaw(gw, '{"query":"{ gateway { mode } }"}', { 'content-type': 'application/json', 'content-encoding': 'gzip' }), status: 415, kind: 'input', message: /UTF-8/ },
  ];
  for (const c of cases) {
    it(`${c.what} → ${c.status} BAD_USER_INPUT, counted as a client error of kind ${c.kind}, logged at info`, async () => {
      const before = await clientErrors(gw, c.kind);
      const logged = gw.logs.length;
      const res = await c.send();
      expect(res.status).toBe(c.status);
      expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
      expect(await res.json()).toEqual({ errors: [{ message: expect.stringMatching(c.message), extensions: { code: 'BAD_USER_INPUT', ...(c.reason ? { reason: c.reason } : {}) } }] });
      expect(await clientErrors(gw, c.kind)).toBe(before + 1);
      const lines = gw.logs.slice(logged);
      expect(lines.filter((l) => l.level !== 'info')).toEqual([]);
      expect(lines.filter((l) => l.route === '/graphql').map((l) => l.status)).toEqual([c.status]);
    });
  }

  it('a client that goes away mid-body is logged once at info as 400, and nothing fails', async () => {
    const logged = gw.logs.length;
    const { port } = new URL(gw.url);
    const socket = connect(Number(port), '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write('POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\nX-Request-Id: gone-1\r\n\r\n{"query":', () => socket.destroy());
    await expect.poll(() => gw.logs.slice(logged).filter((l) => l.requestId === 'gone-1')).toEqual([expect.objectContaining({ level: 'info', route: '/graphql', status: 400 })]);
    expect(gw.logs.slice(logged).filter((l) => l.level !== 'info')).toEqual([]);
    expect((await gw.gql('{ gateway { mode } }')).status).toBe(200);
  });

  it('UTF-8 JSON with its charset named (any case) is read', async () => {
    const res = await postRaw(gw, '{"query":"{ gateway { mode } }"}', { 'content-type': 'Application/JSON; Charset="UTF-8"' });
    expect(res.status).toBe(200);
    expect((await res.json()).data.gateway.mode).toBe('SIMULATOR');
  });

  it('UTF-8 JSON behind a byte order mark is read, as a JSON parser may (and body-parser did)', async () => {
    const res = await postRaw(gw, '\ufeff{"query":"{ gateway { mode } }"}');
    expect(res.status).toBe(200);
    expect((await res.json()).data.gateway.mode).toBe('SIMULATOR');
  });
});

describe('variables nested deeper than the stack', () => {
  it('are bad input (400, counted, logged at info), not a server error', async () => {
    const wide = await startGateway({ LIVE_POLL_INTERVAL_MS: '60000' });
    const deep = `${'['.repeat(20_000)}${']'.repeat(20_000)}`;
    const body = `{"query":"query Many($sids: [ID!]!) { callsBySid(sids: $sids) { sid } }","variables":{"sids":[${deep}]}}`;
    const logged = wide.logs.length;
    const res = await postRaw(wide, body);
    const answer = await res.json();
    expect(res.status).toBe(400);
    expect(answer.errors[0].extensions.code).toBe('BAD_USER_INPUT');
    expect(await clientErrors(wide, 'variables')).toBe(1);
    expect(wide.logs.slice(logged).filter((l) => l.level !== 'info')).toEqual([]);
  });
});

describe('every answer', () => {
  it('carries the request id and no-store, and writes one access-log line with the route label', async () => {
    const logged = gw.logs.length;
    const res = await fetch(`${gw.url}/graphql?ignored=1`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': 'route-7' }, body: JSON.stringify({ query: '{ gateway { mode } }' }) });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe('route-7');
    expect(res.headers.get('cache-control')).toBe('no-store');
    await res.text();
    const access = gw.logs.slice(logged).filter((l) => l.msg === 'http request');
    expect(access).toEqual([expect.objectContaining({ level: 'info', requestId: 'route-7', method: 'POST', route: '/graphql', status: 200 })]);
  });

  it('other paths stay with express', async () => {
    expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${gw.url}/graphql/elsewhere`, { method: 'POST' })).status).toBe(404);
  });
});

describe('a fault in the route itself', () => {
  it('is a 500 in GraphQL shape, logged once at error, with one access-log line; the server keeps answering', async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', destination: new Writable({ write: (chunk, _enc, cb) => void (lines.push(String(chunk)), cb()) }) });
    let calls = 0;
    // Apollo answers every request itself, errors included: only a fault of the route's own code rejects.
    const apollo = {
      executeHTTPGraphQLRequest: async () => {
        calls++;
        throw new Error('route fault');
      },
    } as unknown as ApolloServer<GraphQLContext>;
    const route = graphqlHttpHandler({
      apollo,
      contextFactory: () => {
        throw new Error('not reached');
      },
      maxBodyBytes: 1024,
      guard: () => undefined,
      responseSize: () => undefined,
      accessLogger: logger,
      logger,
      onClientError: () => undefined,
      tracing: false,
    });
    const server = createServer(route);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
      for (let i = 1; i <= 2; i++) {
        const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': `fault-${i}` }, body: '{"query":"{ __typename }"}' });
        expect(res.status).toBe(500);
        expect(res.headers.get('x-request-id')).toBe(`fault-${i}`);
        expect(await res.json()).toEqual({ errors: [{ message: 'Internal server error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] });
      }
      expect(calls).toBe(2);
      const logged = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.requestId === 'fault-1');
      expect(logged).toEqual([
        expect.objectContaining({ level: 'error', msg: 'GraphQL over HTTP request failed', err: expect.objectContaining({ message: 'route fault' }) }),
        expect.objectContaining({ level: 'info', msg: 'http request', route: '/graphql', status: 500 }),
      ]);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('stop()', () => {
  it('answers a /graphql request in flight and accepts no new connection', async () => {
    const stopping = await startGateway({ LIVE_POLL_INTERVAL_MS: '60000' }, {}, {}, { autoStop: false });
    const body = '{"query":"{ gateway { mode } }"}';
    const socket = connect(Number(new URL(stopping.url).port), '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    let answer = '';
    socket.on('data', (chunk) => (answer += chunk));
    const closed = new Promise((resolve) => socket.once('close', resolve));
    // Half the body: the request is in flight when stop() begins.
    const received = new Promise((resolve) => stopping.httpServer.once('request', resolve));
    socket.write(`POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`);
    await received;
    const stopped = stopping.stop();
    await expect.poll(() => stopping.httpServer.listening).toBe(false);
    await expect(fetch(`${stopping.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })).rejects.toThrow();
    socket.write(body.slice(10));
    await closed;
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(answer.slice(answer.indexOf('\r\n\r\n') + 4)).toBe('{"data":{"gateway":{"mode":"SIMULATOR"}}}\n');
    await stopped;
  });
});

describe('a client that sends its request too slowly', () => {
  it('gets 408 and its socket closed once the whole request has taken longer than the receive timeout', async () => {
    const slow = await startGateway({ LIVE_POLL_INTERVAL_MS: '60000' }, {}, { httpReceiveTimeouts: { headersTimeout: 300, requestTimeout: 400, connectionsCheckingInterval: 50 } });
    const socket = connect(Number(new URL(slow.url).port), '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    let answer = '';
    socket.on('data', (chunk) => (answer += chunk));
    const closed = new Promise((resolve) => socket.once('close', resolve));
    // A byte of body now and then, never the whole of it.
    socket.write('POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{');
    const drip = setInterval(() => socket.write(' '), 50);
    await closed;
    clearInterval(drip);
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    // The gateway goes on answering everyone else.
    expect((await slow.gql('{ gateway { mode } }')).body.data.gateway.mode).toBe('SIMULATOR');
  });
});
