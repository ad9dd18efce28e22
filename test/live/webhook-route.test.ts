/** Which requests the node:http webhook route takes from the server (the rest go to express), and a fault of its own. */
import { createServer } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { IsoDateTime } from '../../src/exotel/types.js';
import { WEBHOOK_BASE_PATH } from '../../src/live/callback-urls.js';
import type { IngestDeps } from '../../src/live/ingest.js';
import { createWebhookRoute, isWebhookRequest } from '../../src/live/webhooks.js';
import { createLogger } from '../../src/logger.js';

/** A webhook route on a real server; every answer it counts is kept. By default its only good token is `good`. */
async function withRoute(
  run: (base: string, port: number, observed: unknown[][]) => Promise<void>,
  options: { checkToken?: (kind: string, presented: string) => boolean; logger?: ReturnType<typeof createLogger> } = {},
) {
  const observed: unknown[][] = [];
  const logger = options.logger ?? createLogger({ level: 'silent' });
  const route = createWebhookRoute({
    basePath: WEBHOOK_BASE_PATH,
    checkToken: options.checkToken ?? ((_kind, presented) => presented === 'good'),
    accountSid: 'acct',
    ingestDeps: {} as IngestDeps,
    logger,
    accessLogger: logger,
    maxBodyBytes: 1024,
    nowIso: () => '2026-12-01T00:00:00.000Z' as IsoDateTime,
    onWebhook: (...args) => void observed.push(args),
  });
  const server = createServer(route);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  try {
    await run(`http://127.0.0.1:${port}${WEBHOOK_BASE_PATH}`, port, observed);
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

describe('isWebhookRequest', () => {
  it('takes every path under the webhook base, with or without a query string, and nothing else', () => {
    for (const url of [`${WEBHOOK_BASE_PATH}/tok/call-status`, `${WEBHOOK_BASE_PATH}/tok/incoming-call?CallSid=x`, `${WEBHOOK_BASE_PATH}`, `${WEBHOOK_BASE_PATH}/`, `${WEBHOOK_BASE_PATH}?x=1`]) {
      expect(isWebhookRequest(url, WEBHOOK_BASE_PATH), url).toBe(true);
    }
    for (const url of [`${WEBHOOK_BASE_PATH}x/tok/call-status`, '/webhooks', '/graphql', '/', undefined]) {
      expect(isWebhookRequest(url, WEBHOOK_BASE_PATH), String(url)).toBe(false);
    }
  });
});

describe('a fault in the webhook route itself', () => {
  it('is a 500 logged once at error, counted as unavailable, with one access-log line that hides the token', async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', destination: new Writable({ write: (chunk, _enc, cb) => void (lines.push(String(chunk)), cb()) }) });
    // Nothing the route calls should throw: a throw here stands for a fault of the route's own code.
    const checkToken = () => {
      throw new Error('route fault');
    };
    await withRoute(
      async (base, _port, observed) => {
        const res = await fetch(`${base}/secret-token/call-status`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-request-id': 'fault-1' }, body: 'CallSid=abc&Status=completed' });
        expect(res.status).toBe(500);
        expect(res.headers.get('x-request-id')).toBe('fault-1');
        expect(await res.text()).toBe('Internal Server Error');
        expect(observed).toEqual([['unknown', 'unavailable', 500]]);
        const logged = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.requestId === 'fault-1');
        expect(logged).toEqual([
          expect.objectContaining({ level: 'error', msg: 'webhook failed', err: expect.objectContaining({ message: 'route fault' }) }),
          expect.objectContaining({ level: 'info', msg: 'http request', route: '/webhooks/exotel/:token/call-status', status: 500 }),
        ]);
        expect(lines.join('')).not.toContain('secret-token');
      },
      { checkToken, logger },
    );
  });
});

describe('what the route counts and when it stops reading', () => {
  const form = { 'content-type': 'application/x-www-form-urlencoded' };

  it('counts every answer once: a body refused under a good token by its kind, a wrong method and a path without a token as rejected', async () => {
    await withRoute(async (base, _port, observed) => {
      const answers = [
        await fetch(`${base}/good/call-status`, { method: 'POST', headers: form, body: `CallSid=${'x'.repeat(2048)}` }),
        await fetch(`${base}/good/sms-status`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"SmsSid":' }),
        await fetch(`${base}/good/call-status`, { method: 'PUT', headers: form, body: 'CallSid=a' }),
        await fetch(`${base}/good/incoming-call`, { method: 'OPTIONS' }),
        await fetch(`${base}/good`, { method: 'POST', headers: form, body: 'CallSid=a' }),
        await fetch(`${base}/bad/call-status`, { method: 'POST', headers: form, body: 'CallSid=a' }),
      ];
      expect(await Promise.all(answers.map(async (r) => [r.status, await r.text()]))).toEqual([
        [413, 'Payload Too Large'],
        [400, 'Bad Request: the body is not valid JSON'],
        [405, 'Method Not Allowed'],
        [405, 'Method Not Allowed'],
        [404, 'Not Found'],
        [404, 'Not Found'],
      ]);
      expect(observed).toEqual([
        ['call-status', 'rejected', 413],
        ['sms-status', 'rejected', 400],
        ['call-status', 'rejected', 405],
        ['incoming-call', 'rejected', 405],
        ['unknown', 'rejected', 404],
        ['unknown', 'rejected', 404],
      ]);
    });
  });

  it('answers a declared body over the limit with 413 at once and closes, reading none of it', async () => {
    await withRoute(async (_base, port, observed) => {
      const socket = connect(port, '127.0.0.1');
      let text = '';
      socket.on('data', (chunk) => (text += String(chunk)));
      const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
      // Headers only: the body (10 MB) is never sent, so only an answer that does not wait for it arrives.
      socket.write(`POST ${WEBHOOK_BASE_PATH}/good/call-status HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000000\r\n\r\nCallSid=`);
      await closed;
      expect(text).toMatch(/^HTTP\/1\.1 413 /);
      expect(text.toLowerCase()).toContain('connection: close');
      expect(text.endsWith('Payload Too Large')).toBe(true);
      expect(observed).toEqual([['call-status', 'rejected', 413]]);
    });
  });
});

describe('what a sender of a refused webhook is told, and what the log says', () => {
  const form = { 'content-type': 'application/x-www-form-urlencoded' };
  /** Refused requests, each with the answer it must get. */
  const refusals = (base: string): Array<[RequestInit & { url: string }, number, string]> => [
    [{ url: `${base}/bad/call-status`, method: 'POST', headers: form, body: 'CallSid=a' }, 404, 'Not Found'],
    [{ url: `${base}/good/other`, method: 'POST', headers: form, body: 'CallSid=a' }, 404, 'Not Found'],
    [{ url: `${base}/good/call-status`, method: 'GET' }, 405, 'Method Not Allowed'],
    [{ url: `${base}/good/call-status`, method: 'POST', headers: form, body: `CallSid=${'x'.repeat(2048)}` }, 413, 'Payload Too Large'],
    [{ url: `${base}/good/call-status`, method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"CallSid":' }, 400, 'Bad Request: the body is not valid JSON'],
    [{ url: `${base}/good/call-status`, method: 'POST', headers: { 'content-type': 'application/json' }, body: '"CallSid"' }, 400, 'Bad Request: the body is not valid JSON'],
    [
      { url: `${base}/good/call-status`, method: 'POST', headers: { 'content-type': 'application/json; charset=latin1' }, body: '{"CallSid":"a"}' },
      415,
      'Unsupported Media Type: the body’s charset is not supported; send UTF-8',
    ],
    [
      { url: `${base}/good/call-status`, method: 'POST', headers: { ...form, 'content-encoding': 'compress' }, body: 'CallSid=a' },
      415,
      'Unsupported Media Type: the body’s Content-Encoding is not supported (gzip, deflate or br)',
    ],
    [{ url: `${base}/good/call-status`, method: 'POST', headers: { ...form, 'content-encoding': 'gzip' }, body: 'CallSid=a' }, 400, 'Bad Request: the body could not be read'],
    // Small on the wire, over the limit once decoded: the parser's own refusal.
    [{ url: `${base}/good/call-status`, method: 'POST', headers: { ...form, 'content-encoding': 'gzip' }, body: gzipSync(`CallSid=${'x'.repeat(20_000)}`) }, 413, 'Payload Too Large'],
    [{ url: `${base}/good/call-status`, method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=xyz' }, body: 'garbage' }, 400, 'Bad Request: malformed multipart body'],
    [{ url: `${base}/good/call-status`, method: 'POST', headers: form, body: 'Status=completed' }, 400, 'Bad Request: CallSid is missing'],
  ];

  it('answers each refused body with what is wrong with it', async () => {
    await withRoute(async (base) => {
      for (const [{ url, ...init }, status, text] of refusals(base)) {
        const res = await fetch(url, init);
        expect({ url: url.slice(base.length), headers: init.headers, answer: [res.status, await res.text()] }).toEqual({ url: url.slice(base.length), headers: init.headers, answer: [status, text] });
      }
    });
  });

  it('logs each refusal at info with a line of its own, never as a warning or error: strangers and their mistakes cannot fill the log', async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'debug', destination: new Writable({ write: (chunk, _enc, cb) => void (lines.push(String(chunk)), cb()) }) });
    await withRoute(
      async (base) => {
        for (const [{ url, ...init }] of refusals(base)) await (await fetch(url, init)).arrayBuffer();
      },
      { logger },
    );
    const logged = lines.map((l) => JSON.parse(l) as { level: string; msg: string; requestId: string });
    expect(logged.filter((l) => l.level !== 'info' && l.level !== 'debug').map((l) => `${l.level}: ${l.msg}`)).toEqual([]);
    // The operator still sees each one, beside its access-log line (the wrong method has that line only).
    const refused = logged.filter((l) => l.msg !== 'http request');
    expect(refused.every((l) => l.level === 'info')).toBe(true);
    expect(refused).toHaveLength(refusals('').length - 1);
  });
});
