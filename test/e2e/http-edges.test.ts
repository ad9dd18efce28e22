/**
 * The edges of the gateway's HTTP surface that a client meets by mistake, over real HTTP against the real
 * server: a path nothing is served at gets a GraphQL-shaped JSON 404 naming where GraphQL is (never an HTML
 * page, never the path echoed), counted as a client mistake; and a body streamed chunked past a route's limit
 * is answered 413 as soon as it crosses it, compressed or not, with the connection closed, however long the
 * sender keeps the stream open.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect } from 'node:net';
import { gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { callbackUrlsOf } from '../live/webhook-helpers.js';

/** The value of one series of the gateway's /metrics text (0 when absent). */
async function series(gw: TestGateway, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway({ LIVE_POLL_INTERVAL_MS: '60000' });
});

describe('a path nothing is served at', () => {
  const notFound = {
    errors: [{ message: expect.stringMatching(/GraphQL is served at \/graphql .*, GraphiQL at \/graphiql\.$/), extensions: { code: 'NOT_FOUND' } }],
  };

  it('is a 404 with a GraphQL-shaped JSON body naming /graphql, whatever the method; counted as a client mistake and logged at info only', async () => {
    const before = await series(gw, 'gateway_client_errors_total', 'kind="path"');
    const logged = gw.logs.length;
    const json = { 'content-type': 'application/json' };
    const query = JSON.stringify({ query: '{ gateway { mode } }' });
    const requests: Array<[string, RequestInit]> = [
      // A GraphQL client pointed at a near miss of the path.
      ['/graphql/', { method: 'POST', headers: json, body: query }],
      ['/GraphQL', { method: 'POST', headers: json, body: query }],
      ['/graphql/elsewhere', { method: 'GET' }],
      ['/api/graphql?query=%7B__typename%7D', { method: 'GET' }],
      ['/', { method: 'GET' }],
      ['/webhooks/other', { method: 'POST' }],
      // Every route has one exact path: a trailing slash or another case is not a second name for it.
      ['/healthz/', { method: 'GET' }],
      ['/readyz/', { method: 'GET' }],
      ['/metrics/', { method: 'GET' }],
      ['/graphiql/', { method: 'GET' }],
      ['/HEALTHZ', { method: 'GET' }],
      ['/Metrics', { method: 'GET' }],
      ['/GraphiQL', { method: 'GET' }],
      ['/GRAPHIQL/assets/x.js', { method: 'GET' }],
    ];
    for (const [path, init] of requests) {
      const res = await fetch(`${gw.url}${path}`, init);
      const text = await res.text();
      expect({ path, status: res.status, type: res.headers.get('content-type') }).toEqual({ path, status: 404, type: 'application/json; charset=utf-8' });
      expect(JSON.parse(text), path).toEqual(notFound);
      expect(res.headers.get('x-request-id'), path).toBeTruthy();
    }
    expect(await series(gw, 'gateway_client_errors_total', 'kind="path"')).toBe(before + requests.length);
    const lines = gw.logs.slice(logged).filter((l) => l.msg !== 'http request' || l.status === 404);
    expect(lines.filter((l) => l.level !== 'info')).toEqual([]);
    expect(lines.filter((l) => l.msg === 'http request').map((l) => l.route)).toEqual([
      ...['/graphql', '(other)', '/graphql', '(other)', '(other)', '/webhooks/(other)'],
      ...['/healthz', '/readyz', '/metrics', '/graphiql', '(other)', '(other)', '(other)', '(other)'],
    ]);
  });

  it('never echoes the request back', async () => {
    const res = await fetch(`${gw.url}/%3Cscript%3Ealert(1)%3C%2Fscript%3E?to=%2B919812345678`);
    const text = await res.text();
    expect(res.status).toBe(404);
    expect(JSON.parse(text)).toEqual(notFound);
    expect(text).not.toMatch(/script|alert|9812345678/i);
  });

  it('leaves the routes that are served alone', async () => {
    expect((await gw.gql('{ gateway { mode } }')).body.data.gateway.mode).toBe('SIMULATOR');
    const health = await fetch(`${gw.url}/healthz`);
    expect([health.status, await health.json()]).toEqual([200, { status: 'ok' }]);
    // The page, or where the bundle is not built a 503 naming the build command: served either way.
    const graphiql = await fetch(`${gw.url}/graphiql?x=1`);
    expect([graphiql.status === 404, await graphiql.text()]).toEqual([false, expect.stringMatching(/<div id="root">|npm run build:graphiql/)]);
  });
});

describe('a GET-only path asked with another method', () => {
  it('is a 405 naming the methods it takes (not the 404 of a path nothing is served at), counted as a client mistake; OPTIONS is answered 204', async () => {
    const before = await series(gw, 'gateway_client_errors_total', 'kind="path"');
    const logged = gw.logs.length;
    for (const path of ['/healthz', '/readyz', '/metrics']) {
      const res = await fetch(`${gw.url}${path}`, { method: 'POST', body: '{}' });
      expect([path, res.status, res.headers.get('allow'), await res.text()]).toEqual([path, 405, 'GET, HEAD, OPTIONS', 'Method Not Allowed']);
      const options = await fetch(`${gw.url}${path}`, { method: 'OPTIONS' });
      expect([path, options.status, options.headers.get('allow'), await options.text()]).toEqual([path, 204, 'GET, HEAD, OPTIONS', '']);
      const head = await fetch(`${gw.url}${path}`, { method: 'HEAD' });
      expect([path, head.status < 500, await head.text()]).toEqual([path, true, '']);
    }
    expect(await series(gw, 'gateway_client_errors_total', 'kind="path"')).toBe(before + 3);
    expect(gw.logs.slice(logged).filter((l) => l.level === 'warn' || l.level === 'error')).toEqual([]);
  });
});

/**
 * Sends `path` a chunked body of more than `bytes`, then keeps the stream open without its last chunk.
 * Returns what came back and how long the server took to close the socket (undefined: it did not, in 5 s).
 */
async function streamPast(port: number, path: string, contentType: string, bytes: number, options: { contentEncoding?: string; chunk?: () => Buffer } = {}): Promise<{ answer: string; closedAfterMs: number | undefined }> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  let answer = '';
  socket.setEncoding('utf8').on('data', (chunk: string) => (answer += chunk));
  // The server may reset a socket it closes with bytes still unread; that is a close all the same.
  socket.on('error', () => undefined);
  const started = Date.now();
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - started)));
  const encoding = options.contentEncoding ? `Content-Encoding: ${options.contentEncoding}\r\n` : '';
  socket.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: ${contentType}\r\n${encoding}Transfer-Encoding: chunked\r\n\r\n`);
  const nextChunk = options.chunk ?? (() => Buffer.from('x'.repeat(8 * 1024)));
  for (let sent = 0; sent <= bytes; ) {
    const chunk = nextChunk();
    socket.write(`${chunk.length.toString(16)}\r\n`);
    socket.write(chunk);
    socket.write('\r\n');
    sent += chunk.length;
  }
  // No last chunk: the body never ends, as a sender streaming garbage would have it.
  const gaveUp = AbortSignal.timeout(5_000);
  const closedAfterMs = await Promise.race([closed, new Promise<undefined>((resolve) => gaveUp.addEventListener('abort', () => resolve(undefined)))]);
  socket.destroy();
  return { answer, closedAfterMs };
}

const bodyOf = (answer: string) => answer.slice(answer.indexOf('\r\n\r\n') + 4);

describe('a chunked body over the limit, its stream kept open', () => {
  it('(a chunked callback within the limit is read to its end and stored, as before)', async () => {
    const body = new URLSearchParams({ CallSid: `chunked${process.pid}x${Date.now()}`, Status: 'completed', DateUpdated: '2026-11-20 10:00:47' }).toString();
    const stream = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(body));
        controller.close();
      },
    });
    const res = await fetch(callbackUrlsOf(gw).callStatus, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: stream, duplex: 'half' } as RequestInit);
    expect([res.status, await res.text()]).toEqual([200, 'OK']);
  });

  it('on a webhook: 413 as soon as it crosses 64 KiB, Connection: close, the socket closed; counted once', async () => {
    const url = new URL(callbackUrlsOf(gw).callStatus);
    const labels = 'kind="call-status",outcome="rejected"';
    const before = await series(gw, 'gateway_webhooks_total', labels);
    const { answer, closedAfterMs } = await streamPast(Number(url.port), `${url.pathname}${url.search}`, 'application/x-www-form-urlencoded', 64 * 1024);
    expect(closedAfterMs).toBeDefined();
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer.toLowerCase()).toContain('\r\nconnection: close\r\n');
    expect(bodyOf(answer)).toBe('Payload Too Large');
    expect(await series(gw, 'gateway_webhooks_total', labels)).toBe(before + 1);
  });

  it('on a webhook, compressed: 413 as soon as the bytes on the wire cross 64 KiB, whatever they decode to, Connection: close, the socket closed; counted once', async () => {
    const url = new URL(callbackUrlsOf(gw).callStatus);
    const labels = 'kind="call-status",outcome="rejected"';
    const before = await series(gw, 'gateway_webhooks_total', labels);
    // A well-formed gzip stream (random bytes do not compress), sent in slices and never finished.
    const gzipped = gzipSync(randomBytes(128 * 1024));
    let offset = 0;
    const chunk = () => gzipped.subarray(offset, (offset += 8 * 1024));
    const { answer, closedAfterMs } = await streamPast(Number(url.port), `${url.pathname}${url.search}`, 'application/x-www-form-urlencoded', 64 * 1024, { contentEncoding: 'gzip', chunk });
    expect(closedAfterMs).toBeDefined();
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer.toLowerCase()).toContain('\r\nconnection: close\r\n');
    expect(bodyOf(answer)).toBe('Payload Too Large');
    expect(await series(gw, 'gateway_webhooks_total', labels)).toBe(before + 1);
  });

  it('on a webhook, compressed with a declared length over 64 KiB: 413 before the body is read, Connection: close', async () => {
    const url = new URL(callbackUrlsOf(gw).callStatus);
    const socket = connect(Number(url.port), '127.0.0.1');
    await once(socket, 'connect');
    let answer = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (answer += chunk));
    socket.on('error', () => undefined);
    const closed = once(socket, 'close');
    // Only the headers and a few bytes of the body: the answer cannot wait for the rest.
    socket.write(`POST ${url.pathname}${url.search} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Encoding: gzip\r\nContent-Length: ${128 * 1024}\r\n\r\n`);
    socket.write(gzipSync(Buffer.from('CallSid=x')).subarray(0, 8));
    const gaveUp = AbortSignal.timeout(5_000);
    await Promise.race([closed, once(gaveUp, 'abort')]);
    socket.destroy();
    expect([answer.split('\r\n')[0], answer.toLowerCase().includes('\r\nconnection: close\r\n'), bodyOf(answer)]).toEqual(['HTTP/1.1 413 Payload Too Large', true, 'Payload Too Large']);
  });

  it('on a webhook, a compressed body that decodes past 64 KiB (a few KiB on the wire): 413, nothing stored', async () => {
    const sid = `bomb${process.pid}x${Date.now()}`;
    const form = new URLSearchParams({ CallSid: sid, Status: 'completed', DateUpdated: '2026-11-20 10:00:47', Padding: 'x'.repeat(1024 * 1024) }).toString();
    const body = gzipSync(form);
    expect(body.length).toBeLessThan(8 * 1024);
    const res = await fetch(callbackUrlsOf(gw).callStatus, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-encoding': 'gzip' }, body });
    expect([res.status, await res.text()]).toEqual([413, 'Payload Too Large']);
    expect(await gw.storage.events.callHistory(gw.exotel.accountSid, sid)).toEqual([]);
  });

  it('on /graphql: 413 BAD_USER_INPUT naming MAX_BODY_BYTES as soon as it crosses the limit, Connection: close, the socket closed', async () => {
    const before = await series(gw, 'gateway_client_errors_total', 'kind="limit"');
    const { answer, closedAfterMs } = await streamPast(Number(new URL(gw.url).port), '/graphql', 'application/json', gw.config.limits.maxBodyBytes);
    expect(closedAfterMs).toBeDefined();
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer.toLowerCase()).toContain('\r\nconnection: close\r\n');
    expect(JSON.parse(bodyOf(answer))).toEqual({ errors: [{ message: expect.stringMatching(/too large/), extensions: { code: 'BAD_USER_INPUT', reason: 'MAX_BODY_BYTES' } }] });
    expect(await series(gw, 'gateway_client_errors_total', 'kind="limit"')).toBe(before + 1);
  });
});
