/**
 * OpenTelemetry tracing of a real gateway process: spans are received on a local OTLP/HTTP endpoint (a
 * node:http server taking POST /v1/traces, JSON), and checked for their names, parent/child links, the
 * trace ids clients sent in `traceparent`, and the absence of every secret the gateway holds.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { trace } from '@opentelemetry/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { callbackToken, createCallbackUrls } from '../../src/live/callback-urls.js';
import { createSimulator, type Simulator } from '../../src/simulator/index.js';
import { startTracing, tracingOffReason } from '../../src/tracing/sdk.js';
import { tracingEnabled } from '../../src/tracing/spans.js';
import { startGateway } from '../helpers/gateway.js';
import { spawnGateway, stopAllProcesses, waitUntil, type GatewayProcess } from '../helpers/processes.js';
import { callCallback } from '../live/webhook-helpers.js';

const WEBHOOK_SECRET = 'tracing-webhook-secret-0123456789';
const CLIENT_KEY = 'tracing-client-key-0123456789';
const EXOTEL_KEY = 'tracing-exotel-key-0123456789';
const EXOTEL_TOKEN = 'tracing-exotel-token-0123456789';

/** OTLP span kinds (opentelemetry-proto trace.proto). */
const KIND = { INTERNAL: 1, SERVER: 2, CLIENT: 3 } as const;

interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  attributes: Record<string, unknown>;
  events: Array<{ name: string; attributes: Record<string, unknown> }>;
  status: { code?: number };
  resource: Record<string, unknown>;
}

type OtlpAttribute = { key: string; value: Record<string, unknown> };
const attributesOf = (list: OtlpAttribute[] | undefined) =>
  Object.fromEntries((list ?? []).map(({ key, value }) => [key, Object.values(value)[0]]));

/** A local OTLP/HTTP traces endpoint: every body as received, and the spans in them. */
function startCollector(): Promise<{ server: Server; url: string; bodies: string[]; spans: ReceivedSpan[] }> {
  const bodies: string[] = [];
  const spans: ReceivedSpan[] = [];
  const server = createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      bodies.push(text);
      const body = JSON.parse(text) as {
        resourceSpans: Array<{ resource?: { attributes?: OtlpAttribute[] }; scopeSpans: Array<{ spans: Array<Record<string, any>> }> }>;
      };
      for (const rs of body.resourceSpans) {
        const resource = attributesOf(rs.resource?.attributes);
        for (const ss of rs.scopeSpans) {
          for (const s of ss.spans) {
            spans.push({
              traceId: s.traceId,
              spanId: s.spanId,
              parentSpanId: s.parentSpanId ?? '',
              name: s.name,
              kind: s.kind,
              attributes: attributesOf(s.attributes),
              events: (s.events ?? []).map((e: { name: string; attributes?: OtlpAttribute[] }) => ({ name: e.name, attributes: attributesOf(e.attributes) })),
              status: s.status ?? {},
              resource,
            });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bodies, spans })));
}

/** A W3C traceparent of a fresh trace, as a traced client would send it. */
function clientTrace() {
  const traceId = randomBytes(16).toString('hex');
  const parentId = randomBytes(8).toString('hex');
  return { traceId, parentId, traceparent: `00-${traceId}-${parentId}-01` };
}

const CONNECT = `mutation Dial($input: ConnectCallInput!) { connectCall(input: $input) { call { sid status } } }`;
const NUMBER = `query Number($n: String!) { numberMetadata(number: $n) { phoneNumber } }`;
const WATCH = `subscription Watch($sid: ID!) { callStatusChanged(sid: $sid) { status source } }`;

describe('OpenTelemetry tracing', () => {
  let sim: Simulator;
  let collector: Awaited<ReturnType<typeof startCollector>>;
  let gw: GatewayProcess;

  const gatewayEnv = (extra: Record<string, string> = {}) => ({
    EXOTEL_ACCOUNT_SID: sim.accountSid,
    EXOTEL_API_KEY: EXOTEL_KEY,
    EXOTEL_API_TOKEN: EXOTEL_TOKEN,
    EXOTEL_BASE_URL: sim.url,
    WEBHOOK_SECRET,
    GATEWAY_API_KEYS: `ops:${CLIENT_KEY}:read+write`,
    LIVE_POLL_INTERVAL_MS: '60000',
    LOG_LEVEL: 'info',
    OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
    OTEL_SERVICE_NAME: 'tracing-test-gateway',
    OTEL_TRACES_SAMPLER: 'parentbased_always_on',
    OTEL_BSP_SCHEDULE_DELAY: '50',
    ...extra,
  });

  beforeAll(async () => {
    sim = await createSimulator({ port: 0, host: '127.0.0.1', apiKey: EXOTEL_KEY, apiToken: EXOTEL_TOKEN, log: () => undefined });
    collector = await startCollector();
    gw = await spawnGateway('tracing', gatewayEnv());
  });
  afterAll(async () => {
    await stopAllProcesses();
    await sim?.stop();
    await new Promise((resolve) => collector?.server.close(resolve));
  });

  /** connectCall over HTTP; answers the new call's Sid. */
  const dial = async (to: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${gw.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${CLIENT_KEY}`, ...headers },
      body: JSON.stringify({ query: CONNECT, variables: { input: { from: '09876543210', to, callerId: '08039591111' } } }),
    });
    const body = await res.json();
    expect(body.errors).toBeUndefined();
    return body.data.connectCall.call.sid as string;
  };
  /** Exotel's status callback for `sid`, at the gateway's real webhook URL (token included). */
  const postCallback = async (sid: string, status: string, headers: Record<string, string> = {}) => {
    const urls = createCallbackUrls({ publicUrl: gw.url, webhookSecret: WEBHOOK_SECRET, accountSid: sim.accountSid });
    const form = new URLSearchParams(Object.entries(callCallback(sid, status)).map(([k, v]) => [k, String(v)]));
    const res = await fetch(urls.callStatus, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: form.toString() });
    expect(res.status).toBe(200);
    await res.text();
  };

  const spanWhere = (what: string, predicate: (s: ReceivedSpan) => boolean) =>
    waitUntil(() => collector.spans.some(predicate), what).then(() => collector.spans.find(predicate)!);

  it('logs where spans go', async () => {
    await waitUntil(() => gw.logs().some((l) => l.msg === 'tracing on: spans exported over OTLP/HTTP'), 'the tracing log line');
    expect(gw.logs().find((l) => l.msg === 'tracing on: spans exported over OTLP/HTTP')?.endpoint).toBe(`${collector.url}/v1/traces`);
  });

  it('continues the client traceparent over HTTP: operation span → Exotel request span → budget wait span', async () => {
    const client = clientTrace();
    expect(await dial('+919812345670', { traceparent: client.traceparent })).toMatch(/\w+/);

    const operation = await spanWhere('the mutation span', (s) => s.traceId === client.traceId && s.name === 'mutation Dial');
    expect(operation.parentSpanId).toBe(client.parentId);
    expect(operation.kind).toBe(KIND.SERVER);
    expect(operation.resource['service.name']).toBe('tracing-test-gateway');
    expect(operation.attributes).toMatchObject({
      'graphql.operation.type': 'mutation',
      'graphql.operation.name': 'Dial',
      'gateway.outcome': 'ok',
      'gateway.api_key.name': 'ops',
      'http.request.method': 'POST',
      'http.response.status_code': 200,
    });

    const exotel = await spanWhere('the Exotel request span', (s) => s.traceId === client.traceId && s.name === 'exotel calls.connect');
    expect(exotel.parentSpanId).toBe(operation.spanId);
    expect(exotel.kind).toBe(KIND.CLIENT);
    expect(exotel.attributes).toMatchObject({ 'exotel.endpoint': 'calls.connect', 'exotel.priority': 'foreground', 'http.request.method': 'POST', 'http.response.status_code': 200, 'server.address': '127.0.0.1' });
    expect(exotel.events.map((e) => e.name)).toContain('exotel attempt');

    const wait = await spanWhere('the budget wait span', (s) => s.traceId === client.traceId && s.name === 'exotel budget wait');
    expect(wait.parentSpanId).toBe(exotel.spanId);
    expect(wait.attributes).toMatchObject({ 'exotel.budget.priority': 'foreground', 'exotel.attempt': 1 });
  });

  it('traces a cold call lookup: its shared batch waits for budget, then asks Exotel, both under the query', async () => {
    const client = clientTrace();
    const unknownSid = randomBytes(16).toString('hex');
    const res = await fetch(`${gw.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${CLIENT_KEY}`, traceparent: client.traceparent },
      body: JSON.stringify({ query: 'query OneCall($sid: ID!) { call(sid: $sid) { sid status } }', variables: { sid: unknownSid } }),
    });
    const body = await res.json();
    expect(body).toEqual({ data: { call: null } });

    const operation = await spanWhere('the query span', (s) => s.traceId === client.traceId && s.name === 'query OneCall');
    expect(operation.parentSpanId).toBe(client.parentId);
    const wait = await spanWhere('the batch budget wait', (s) => s.traceId === client.traceId && s.name === 'exotel budget wait');
    expect(wait.parentSpanId).toBe(operation.spanId);
    const exotel = await spanWhere('the lookup', (s) => s.traceId === client.traceId && s.name.startsWith('exotel calls.'));
    expect(exotel.parentSpanId).toBe(operation.spanId);
    expect(exotel.attributes['http.response.status_code']).toBe(404);
  });

  it('gives a batched HTTP request one span with a child per operation', async () => {
    const client = clientTrace();
    const res = await fetch(`${gw.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${CLIENT_KEY}`, traceparent: client.traceparent },
      body: JSON.stringify([{ query: 'query Mode { gateway { mode } }' }, { query: NUMBER, variables: { n: '09812345601' } }]),
    });
    const body = await res.json();
    expect(body.map((r: { data?: unknown }) => Boolean(r.data))).toEqual([true, true]);

    const request = await spanWhere('the batch span', (s) => s.traceId === client.traceId && s.name === 'POST /graphql');
    expect(request.parentSpanId).toBe(client.parentId);
    expect(request.attributes).toMatchObject({ 'graphql.batch.size': 2, 'http.response.status_code': 200, 'gateway.request_id': res.headers.get('x-request-id') });
    const mode = await spanWhere('the first operation span', (s) => s.traceId === client.traceId && s.name === 'query Mode');
    const number = await spanWhere('the second operation span', (s) => s.traceId === client.traceId && s.name === 'query Number');
    expect([mode.parentSpanId, number.parentSpanId]).toEqual([request.spanId, request.spanId]);
    expect(number.kind).toBe(KIND.INTERNAL);
    // Resolvers of a batch run under the request's span (Apollo runs the operations in one context).
    const exotel = await spanWhere('the number lookup', (s) => s.traceId === client.traceId && s.name === 'exotel numbers.get');
    expect(exotel.parentSpanId).toBe(request.spanId);
  });

  it("continues a graphql-ws operation's own traceparent (extensions) over the socket's, down to its Exotel request", async () => {
    const socketTrace = clientTrace();
    const operationTrace = clientTrace();
    const ws = createClient({
      url: gw.wsUrl,
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      connectionParams: { authorization: `Bearer ${CLIENT_KEY}`, traceparent: socketTrace.traceparent },
    });
    const result = await new Promise<any>((resolve, reject) => {
      ws.subscribe({ query: NUMBER, variables: { n: '09812345602' }, extensions: { traceparent: operationTrace.traceparent } }, { next: resolve, error: reject, complete: () => undefined });
    });
    expect(result.data.numberMetadata.phoneNumber).toMatch(/\d+/);
    // An operation refused before it runs still has its span, failed with the code the client got.
    const refusedTrace = clientTrace();
    const refusal = await new Promise<any>((resolve) => {
      ws.subscribe({ query: 'query Broken { noSuchField }', extensions: { traceparent: refusedTrace.traceparent } }, { next: () => undefined, error: resolve, complete: () => undefined });
    });
    const code = refusal[0].extensions.code;
    expect(code).toMatch(/^[A-Z_]+$/);
    await ws.dispose();
    const refused = await spanWhere('the refused operation span', (s) => s.traceId === refusedTrace.traceId);
    expect(refused.attributes).toMatchObject({ 'gateway.outcome': code, 'error.type': code });
    expect(refused.status.code).toBe(2);

    const operation = await spanWhere('the ws query span', (s) => s.traceId === operationTrace.traceId && s.name === 'query Number');
    expect(operation.parentSpanId).toBe(operationTrace.parentId);
    expect(operation.attributes).toMatchObject({ 'graphql.transport': 'graphql-ws', 'graphql.operation.type': 'query', 'gateway.outcome': 'ok', 'gateway.api_key.name': 'ops' });
    const exotel = await spanWhere('its Exotel request', (s) => s.traceId === operationTrace.traceId && s.name === 'exotel numbers.get');
    expect(exotel.parentSpanId).toBe(operation.spanId);
  });

  it("continues the traceparent of a graphql-ws socket's upgrade request when nothing nearer names a parent", async () => {
    const upgradeTrace = clientTrace();
    // A proxy in front of the gateway that traces puts its traceparent on the upgrade request.
    class TracedWebSocket extends WebSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols, { headers: { traceparent: upgradeTrace.traceparent } });
      }
    }
    const ws = createClient({ url: gw.wsUrl, webSocketImpl: TracedWebSocket, retryAttempts: 0, connectionParams: { authorization: `Bearer ${CLIENT_KEY}` } });
    const result = await new Promise<any>((resolve, reject) => {
      ws.subscribe({ query: NUMBER, variables: { n: '09812345603' } }, { next: resolve, error: reject, complete: () => undefined });
    });
    expect(result.data.numberMetadata.phoneNumber).toMatch(/\d+/);
    await ws.dispose();
    const operation = await spanWhere('the ws query span', (s) => s.traceId === upgradeTrace.traceId && s.name === 'query Number');
    expect(operation.parentSpanId).toBe(upgradeTrace.parentId);
  });

  it('traces graphql-ws operations from connectionParams, and a webhook ingest with its event fan-out', async () => {
    const sid = await dial('+919812345671');

    const socketTrace = clientTrace();
    const ws = createClient({
      url: gw.wsUrl,
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      connectionParams: { authorization: `Bearer ${CLIENT_KEY}`, traceparent: socketTrace.traceparent },
    });
    const seen: string[] = [];
    const completed = () => undefined;
    const unsubscribe = ws.subscribe<{ callStatusChanged: { status: string; source: string } }>(
      { query: WATCH, variables: { sid }, operationName: 'Watch' },
      { next: (m) => m.data && seen.push(`${m.data.callStatusChanged.source}:${m.data.callStatusChanged.status}`), error: completed, complete: completed },
    );
    await waitUntil(() => seen.some((s) => s.startsWith('SNAPSHOT:')), 'the snapshot');

    // Exotel's callback, through a proxy that started a trace of its own.
    const webhookTrace = clientTrace();
    await postCallback(sid, 'in-progress', { traceparent: webhookTrace.traceparent });
    await waitUntil(() => seen.includes('WEBHOOK:IN_PROGRESS'), 'the webhook event on the subscription');

    const ingest = await spanWhere('the ingest span', (s) => s.traceId === webhookTrace.traceId && s.name === 'webhook call-status');
    expect(ingest.parentSpanId).toBe(webhookTrace.parentId);
    expect(ingest.attributes).toMatchObject({ 'webhook.kind': 'call-status', 'exotel.sid': sid, 'webhook.outcome': 'published' });
    const fanOut = await spanWhere('the fan-out span', (s) => s.traceId === webhookTrace.traceId && s.name === 'event fan-out');
    expect(fanOut.parentSpanId).toBe(ingest.spanId);
    expect(fanOut.attributes['gateway.event.id']).toBe(ingest.attributes['gateway.event.id']);
    expect(fanOut.attributes).toMatchObject({ 'gateway.event.kind': 'call', 'gateway.event.source': 'WEBHOOK', 'gateway.event.subscribers': 1 });

    // The subscription's span ends when the subscription does.
    unsubscribe();
    const watch = await spanWhere('the subscription span', (s) => s.traceId === socketTrace.traceId && s.name === 'subscription Watch');
    expect(watch.parentSpanId).toBe(socketTrace.parentId);
    expect(watch.attributes).toMatchObject({ 'graphql.transport': 'graphql-ws', 'graphql.operation.type': 'subscription', 'gateway.outcome': 'ok' });
    await ws.dispose();
  });

  it('puts no secret in any exported byte: client key, Exotel credentials, webhook tokens', async () => {
    // Every path that holds a secret: a mutation (its StatusCallback URL carries the webhook token), a
    // webhook at its token URL, a request refused for a wrong key.
    const sid = await dial('+919812345672');
    await postCallback(sid, 'in-progress');
    const refused = await fetch(`${gw.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${CLIENT_KEY}-wrong` },
      body: JSON.stringify({ query: '{ gateway { mode } }' }),
    });
    expect(refused.status).toBe(401);
    await refused.text();
    await spanWhere('the webhook span', (s) => s.name === 'webhook call-status' && s.attributes['exotel.sid'] === sid);
    await spanWhere('the refused request span', (s) => s.attributes['http.response.status_code'] === 401);

    const exported = collector.bodies.join('\n');
    expect(exported.length).toBeGreaterThan(0);
    const secrets = [
      CLIENT_KEY,
      EXOTEL_KEY,
      EXOTEL_TOKEN,
      Buffer.from(`${EXOTEL_KEY}:${EXOTEL_TOKEN}`).toString('base64'),
      WEBHOOK_SECRET,
      ...(['call-status', 'sms-status', 'incoming-call'] as const).map((kind) => callbackToken(WEBHOOK_SECRET, sim.accountSid, kind)),
    ];
    for (const secret of secrets) expect(exported, `a secret (${secret.slice(0, 8)}…) in the exported spans`).not.toContain(secret);
    expect(exported.toLowerCase()).not.toContain('bearer');
    expect(exported.toLowerCase()).not.toContain('authorization');
  });

  it('exports the spans of the last requests when the process is stopped (the provider is flushed at shutdown)', async () => {
    // A schedule delay far longer than the test: only the shutdown flush can send these spans.
    const lazy = await spawnGateway('tracing-flush', gatewayEnv({ OTEL_BSP_SCHEDULE_DELAY: '600000' }));
    const client = clientTrace();
    const res = await fetch(`${lazy.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${CLIENT_KEY}`, traceparent: client.traceparent },
      body: JSON.stringify({ query: 'mutation LastOne($input: SendSmsInput!) { sendSms(input: $input) { sms { sid } } }', variables: { input: { from: '08039591111', to: '9812345670', body: 'Your order has shipped' } } }),
    });
    expect((await res.json()).data.sendSms.sms.sid).toMatch(/\w+/);
    expect(collector.spans.some((s) => s.traceId === client.traceId)).toBe(false);
    const exit = await lazy.stop('SIGTERM', 10_000);
    expect(exit.code).toBe(0);
    expect(collector.spans.some((s) => s.traceId === client.traceId && s.name === 'mutation LastOne')).toBe(true);
  });
});

describe('tracing off', () => {
  it('loads no OpenTelemetry SDK and records nothing while a gateway serves traced clients', async () => {
    const gw = await startGateway();
    try {
      const client = clientTrace();
      const { body } = await gw.gql('query OneCall($sid: ID!) { call(sid: $sid) { sid } }', { sid: randomBytes(16).toString('hex') }, { traceparent: client.traceparent });
      expect(body).toEqual({ data: { call: null } });
      expect(tracingEnabled()).toBe(false);
      // The SDK packages are CommonJS: once imported, by anything, they sit in the module cache.
      const loaded = Object.keys(createRequire(import.meta.url).cache).filter((path) => /@opentelemetry[\\/](sdk-|exporter-|resources|core)/.test(path));
      expect(loaded).toEqual([]);
      expect(trace.getActiveSpan()).toBeUndefined();
    } finally {
      await gw.stop();
    }
  });


  it('stays off without an OTLP endpoint, or when the SDK or the exporter is turned off', async () => {
    expect(tracingOffReason({})).toBe('no OTLP endpoint set');
    expect(tracingOffReason({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_SDK_DISABLED: 'true' })).toBe('OTEL_SDK_DISABLED=true');
    expect(tracingOffReason({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318/v1/traces', OTEL_TRACES_EXPORTER: 'none' })).toBe('OTEL_TRACES_EXPORTER=none');
    expect(tracingOffReason({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318/v1/traces' })).toBeUndefined();
    expect(await startTracing({})).toBeUndefined();
    expect(tracingEnabled()).toBe(false);
  });
});
