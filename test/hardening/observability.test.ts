/**
 * /metrics and structured logs: each family moves when its event happens, labels stay
 * bounded and carry no Sid or phone number, request ids run through HTTP, webhooks and graphql-ws, and
 * the logger redacts Authorization headers, tokens and keys wherever they sit in a logged object.
 */
import { Writable } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { operationLabel } from '../../src/metrics.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { callbackUrlsOf, callCallback, post } from '../live/webhook-helpers.js';
import { ackedSocket } from './ws-raw.js';

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway({ LIVE_POLL_INTERVAL_MS: '60000' });
});

const scrape = async () => {
  const res = await fetch(`${gw.url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
  return res.text();
};
/** The value of one sample, 0 when absent. */
const sample = (text: string, name: string, labels: Record<string, string> = {}) => {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (want.every((w) => line.includes(w))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
};

describe('/metrics', () => {
  it('counts operations, upstream requests, cache, webhooks, events, sockets and the budget', async () => {
    const before = await scrape();
    const CALLER = '09812345670';
    const sid = `obs${process.pid}x${Date.now().toString(36)}`;

    expect((await gw.gql('query Phones { exophones { sid } }')).status).toBe(200);
    expect((await gw.gql('query Phones { exophones { sid } }')).status).toBe(200);
    expect((await gw.gql('query Broken { call(sid: 1) }')).status).toBe(400);
    const urls = callbackUrlsOf(gw);
    expect((await post(urls.callStatus, callCallback(sid, 'completed', { From: CALLER }))).status).toBe(200);
    expect((await post(urls.callStatus, callCallback(sid, 'completed', { From: CALLER }))).status).toBe(200);
    expect((await post(urls.callStatus, { Status: 'nonsense' })).status).toBe(400);
    const socket = await ackedSocket(gw.wsUrl);
    socket.send({ type: 'subscribe', id: 's', payload: { query: 'subscription Incoming { incomingCalls { sid } }' } });

    // The subscription is registered before the scrape (graphql-ws answers nothing until an event).
    await new Promise((r) => setTimeout(r, 50));
    const after = await scrape();
    const delta = (name: string, labels: Record<string, string> = {}) => sample(after, name, labels) - sample(before, name, labels);

    expect(delta('gateway_graphql_operations_total', { operation: 'Phones', type: 'query', outcome: 'ok' })).toBe(2);
    expect(delta('gateway_graphql_operations_total', { operation: 'Broken', outcome: 'BAD_USER_INPUT' })).toBe(1);
    expect(delta('gateway_graphql_operations_total', { operation: 'Incoming', type: 'subscription', outcome: 'ok' })).toBe(1);
    expect(delta('gateway_graphql_operation_duration_seconds_count', { operation: 'Phones', type: 'query' })).toBe(2);
    expect(delta('gateway_upstream_requests_total', { endpoint: 'exophones.list', method: 'GET', status: '200' })).toBeGreaterThanOrEqual(1);
    expect(delta('gateway_cache_requests_total', { result: 'hit' }) + delta('gateway_cache_requests_total', { result: 'miss' })).toBeGreaterThan(0);
    expect(delta('gateway_webhooks_total', { kind: 'call-status', outcome: 'accepted' })).toBe(1);
    expect(delta('gateway_webhooks_total', { kind: 'call-status', outcome: 'duplicate' })).toBe(1);
    expect(delta('gateway_webhooks_total', { kind: 'call-status', outcome: 'rejected' })).toBe(1);
    expect(delta('gateway_events_published_total', { kind: 'call', source: 'WEBHOOK' })).toBe(1);
    expect(sample(after, 'gateway_ws_sockets')).toBe(1);
    expect(sample(after, 'gateway_ws_subscriptions')).toBe(1);
    expect(sample(after, 'gateway_rate_budget_remaining')).toBeGreaterThan(0);
    expect(sample(after, 'gateway_rate_budget_remaining')).toBeLessThanOrEqual(200);
    expect(after).toMatch(/^gateway_rate_budget_queued 0$/m);
    expect(after).toMatch(/^# HELP gateway_reconciler_recoveries_total /m);
    expect(after).toMatch(/^process_cpu_user_seconds_total /m);

    // No Sid, phone number or account in any label or value.
    for (const forbidden of [sid, CALLER, gw.exotel.accountSid, gw.config.webhookSecret]) expect(after).not.toContain(forbidden);
    socket.ws.close();
  });

  it('shows requests queued for Exotel budget while they wait', async () => {
    const tight = await startGateway({ EXOTEL_RATE_LIMIT_PER_MIN: '1', EXOTEL_RATE_WINDOW_MS: '1500', EXOTEL_RATE_QUEUE_MS: '5000' });
    const lookups = ['9812300011', '9812300012', '9812300013'].map((n) => tight.gql(`{ numberMetadata(number: "${n}") { phoneNumber } }`));
    let queued = 0;
    for (let i = 0; i < 50 && queued === 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
      queued = sample(await (await fetch(`${tight.url}/metrics`)).text(), 'gateway_rate_budget_queued');
    }
    expect(queued).toBeGreaterThanOrEqual(1);
    for (const r of await Promise.all(lookups)) expect(r.body.errors).toBeUndefined();
    expect(sample(await (await fetch(`${tight.url}/metrics`)).text(), 'gateway_rate_budget_queued')).toBe(0);
  });

  it('operation names become labels only when they are safe and bounded', () => {
    expect(operationLabel('ListCalls')).toBe('ListCalls');
    expect(operationLabel(undefined)).toBe('anonymous');
    expect(operationLabel('call_919812345670')).toBe('invalid');
    expect(operationLabel('Sid_b6cfaf5e2d2b1e1fa1b2c3d4e5f6a7b8')).toBe('invalid');
    expect(operationLabel('x'.repeat(65))).toBe('invalid');
    expect(operationLabel('with space')).toBe('invalid');
  });
});

describe('request ids', () => {
  it('one id per webhook request, in the response header and the log lines of that request', async () => {
    const urls = callbackUrlsOf(gw);
    const res = await fetch(urls.callStatus, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-request-id': 'hook-7' }, body: 'Status=nonsense' });
    await res.text();
    expect(res.headers.get('x-request-id')).toBe('hook-7');
    const lines = gw.logs.filter((l) => l.requestId === 'hook-7');
    expect(lines.map((l) => l.msg)).toEqual(expect.arrayContaining(['malformed webhook rejected', 'http request']));
    // The access log names the route, never the token in the path.
    expect(lines.find((l) => l.msg === 'http request')).toMatchObject({ route: '/webhooks/exotel/:token/call-status', status: 400 });
    expect(JSON.stringify(gw.logs)).not.toContain(urls.callStatus.split('/').at(-2)!);
  });

  it('graphql-ws: the socket takes a sane X-Request-Id of the upgrade as its id', async () => {
    const { rawSocket } = await import('./ws-raw.js');
    const s = rawSocket(gw.wsUrl, { headers: { 'x-request-id': 'sock-9' } });
    await s.opened;
    s.send({ type: 'connection_init', payload: {} });
    await s.next((m) => m.type === 'connection_ack');
    expect(gw.logs.find((l) => l.requestId === 'sock-9')).toMatchObject({ msg: 'graphql-ws connection acknowledged', component: 'graphql-ws' });
    s.ws.close();
  });
});

describe('log redaction', () => {
  it('censors Authorization headers, tokens, keys and connection params wherever they are logged', () => {
    let out = '';
    const logger = createLogger({ destination: new Writable({ write: (c, _e, cb) => ((out += String(c)), cb()) }) });
    logger.info(
      {
        req: { headers: { authorization: 'Bearer leak-1-0123456789', cookie: 'leak-2' } },
        headers: { authorization: 'Basic leak-3' },
        apiToken: 'leak-4',
        exotel: { apiKey: 'leak-5', apiToken: 'leak-6' },
        connectionParams: { authorization: 'Bearer leak-7' },
        secret: 'leak-8',
        webhookSecret: 'leak-9',
        token: 'leak-10',
      },
      'something happened',
    );
    logger.child({ component: 'x' }).warn({ authorization: 'Bearer leak-11' }, 'child too');
    expect(out).toContain('something happened');
    expect(out).toContain('[redacted]');
    expect(out).not.toMatch(/leak-\d+/);
  });

  it('scrubs known secret values from message strings', () => {
    let out = '';
    const logger = createLogger({ secrets: ['s3cret-value-xyz'], destination: new Writable({ write: (c, _e, cb) => ((out += String(c)), cb()) }) });
    logger.error(`upstream said s3cret-value-xyz and ${encodeURIComponent('s3cret-value-xyz')}`);
    expect(out).toContain('upstream said');
    expect(out).not.toContain('s3cret-value-xyz');
  });
});
