/**
 * Canary secrets: a gateway in live mode against a simulator that knows a canary Exotel key
 * and token, with a canary client key and webhook secret. Every error class is triggered — client auth,
 * limits, malformed bodies, each Exotel failure, timeouts, bad webhooks, graphql-ws refusals — and none
 * of the canaries (nor the Basic auth header built from them) may appear in any response, any log line
 * or /metrics. The test logger has no secret scrubbing: redaction and care alone must hold.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSimulator, type Simulator } from '../../src/simulator/index.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { callbackUrlsOf, callCallback, post } from '../live/webhook-helpers.js';
import { ackedSocket, rawSocket } from './ws-raw.js';

const CANARY = {
  apiKey: 'canaryKEY7f3e9a1c5b2d4e6f',
  apiToken: 'canaryTOKEN8a2b4c6d8e0f1a3b5c',
  wrongToken: 'canaryWRONG1c3e5a7b9d2f4a6c8e',
  clientKey: 'canaryCLIENT9d8c7b6a5f4e3d2c',
  readKey: 'canaryREADER2b4d6f8a1c3e5a7b',
  webhookSecret: 'canaryWEBHOOK3e5c7a9b1d2f4a6c',
};
const basic = (key: string, token: string) => Buffer.from(`${key}:${token}`).toString('base64');
const FORBIDDEN_TEXT = [...Object.values(CANARY), basic(CANARY.apiKey, CANARY.apiToken), basic(CANARY.apiKey, CANARY.wrongToken)];

let sim: Simulator;
let gw: TestGateway;
let wrong: TestGateway;
const responses: string[] = [];

/** Records every response text for the final canary search. */
async function call(url: string, init: RequestInit = {}): Promise<{ status: number; text: string }> {
  const res = await fetch(url, init);
  const headers: string[] = [];
  res.headers.forEach((value, name) => headers.push(`${name}: ${value}`));
  const text = `${res.status} ${headers.join('\n')} ${await res.text()}`;
  responses.push(text);
  return { status: res.status, text };
}
const gql = (g: TestGateway, query: string, variables: Record<string, unknown> = {}, key = CANARY.clientKey) =>
  call(`${g.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query, variables }),
  });

beforeAll(async () => {
  sim = await createSimulator({ port: 0, host: '127.0.0.1', apiKey: CANARY.apiKey, apiToken: CANARY.apiToken, timeScale: 0.01, log: () => undefined });
  const env = (token: string) => ({
    EXOTEL_ACCOUNT_SID: sim.accountSid,
    EXOTEL_API_KEY: CANARY.apiKey,
    EXOTEL_API_TOKEN: token,
    EXOTEL_BASE_URL: sim.url,
    EXOTEL_TIMEOUT_MS: '300',
    EXOTEL_RATE_QUEUE_MS: '0',
    WEBHOOK_SECRET: CANARY.webhookSecret,
    GATEWAY_API_KEYS: `ops:${CANARY.clientKey}:read+write,viewer:${CANARY.readKey}:read`,
    LIVE_POLL_INTERVAL_MS: '60000',
    MAX_DEPTH: '4',
    LOG_LEVEL: 'debug',
  });
  gw = await startGateway(env(CANARY.apiToken));
  wrong = await startGateway(env(CANARY.wrongToken));
});
afterAll(async () => {
  await Promise.all([gw?.stop(), wrong?.stop()]);
  await sim?.stop();
});

describe('canary secrets never leave the gateway', () => {
  it("scrubs the Exotel key and token, the webhook tokens and WEBHOOK_SECRET from Exotel's error text, however Exotel echoes them", async () => {
    const urls = callbackUrlsOf(gw);
    const tokens = [urls.callStatus, urls.smsStatus, urls.incomingCall].map((u) => u.split('/').at(-2)!);
    const forged = `${gw.url}/webhooks/exotel/someoneElsesToken_x9/sms-status`;
    const echoes = [
      `Invalid StatusCallback ${urls.smsStatus}`,
      `StatusCallback=${encodeURIComponent(urls.callStatus)}&Url=${encodeURIComponent(urls.incomingCall)}`,
      `bad token ${tokens[1]} or ${CANARY.webhookSecret}; also ${forged}`,
      `Authentication failed for ${CANARY.apiKey}:${CANARY.apiToken} (Basic ${basic(CANARY.apiKey, CANARY.apiToken)})`,
    ];
    const seen: string[] = [];
    for (const [i, message] of echoes.entries()) {
      sim.faults.inject({ kind: 'exotel-error', status: 400, code: 40210, message, format: i === 2 ? 'xml' : 'json', endpoint: 'sms.send' });
      const res = await gql(gw, 'mutation($i: SendSmsInput!) { sendSms(input: $i) { sms { sid } } }', { i: { from: '08039591111', to: '9812345670', body: 'hello' } });
      const error = (JSON.parse(res.text.slice(res.text.indexOf('{'))) as { errors: Array<{ message: string; extensions: Record<string, unknown> }> }).errors[0]!;
      // Exotel's words still come through, with its code: only the secrets are gone.
      expect(error.extensions).toMatchObject({ code: 'BAD_USER_INPUT', upstreamStatus: 400, exotelCode: 40210 });
      expect(error.message).toContain('[redacted]');
      seen.push(error.message);
    }
    expect(seen[0]).toContain(`${gw.url}/webhooks/exotel/[redacted]/sms-status`);
    const everything = `${seen.join('\n')}\n${responses.join('\n')}\n${gw.logText()}`;
    for (const secret of [...tokens, CANARY.webhookSecret, 'someoneElsesToken_x9', CANARY.apiKey, CANARY.apiToken, basic(CANARY.apiKey, CANARY.apiToken)]) expect({ secret, leaked: everything.includes(secret) }).toEqual({ secret, leaked: false });
  });

  it('every error class keeps its code and the canaries out of responses, logs and /metrics', async () => {
    const SMS = 'mutation($i: SendSmsInput!) { sendSms(input: $i) { sms { sid } } }';
    const sms = { i: { from: '08039591111', to: '9812345670', body: 'hello' } };
    const codes: string[] = [];
    const codeOf = (text: string) => /"code":"([A-Z_]+)"/.exec(text)?.[1] ?? 'none';

    // Client side: auth, scope, validation, limits, malformed and oversized bodies.
    codes.push(codeOf((await gql(gw, '{ exophones { sid } }', {}, `${CANARY.clientKey}x`)).text));
    codes.push(codeOf((await call(`${gw.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: CANARY.clientKey }, body: '{"query":"{ exophones { sid } }"}' })).text));
    codes.push(codeOf((await gql(gw, SMS, sms, CANARY.readKey)).text));
    codes.push(codeOf((await gql(gw, '{ exophone { sid } }')).text));
    codes.push(codeOf((await gql(gw, '{ calls(first: 1) { edges { node { events { call { sid } } } } } }')).text));
    codes.push(codeOf((await call(`${gw.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${CANARY.clientKey}` }, body: '{"query": ' })).text));
    codes.push(codeOf((await gql(gw, '{ call(sid: "x") { sid } }', { pad: 'y'.repeat(300_000) })).text));

    // Exotel side: each failure class from the simulator.
    const faults: Array<() => void> = [
      () => sim.faults.inject({ kind: 'insufficient-balance', status: 402, count: 1, endpoint: 'sms.send' }),
      () => sim.faults.inject({ kind: 'insufficient-balance', status: 403, count: 1, endpoint: 'sms.send' }),
      () => sim.faults.inject({ kind: 'error', status: 503, count: 1, endpoint: 'sms.send' }),
      () => sim.faults.inject({ kind: 'drop-connection', count: 1, endpoint: 'sms.send' }),
      () => sim.faults.inject({ kind: 'slow', delayMs: 1000, count: 1, endpoint: 'sms.send' }),
    ];
    for (const fault of faults) {
      sim.faults.clear();
      fault();
      codes.push(codeOf((await gql(gw, SMS, sms)).text));
    }
    sim.faults.clear();
    sim.faults.inject({ kind: 'error', status: 500, count: 'all', endpoint: 'exophones.list' });
    codes.push(codeOf((await gql(gw, '{ exophones { sid } }')).text));
    sim.faults.inject({ kind: 'slow', delayMs: 1000, count: 'all', endpoint: 'calls.get' });
    codes.push(codeOf((await gql(gw, '{ call(sid: "c0ffee0000000000000000000000abcd") { sid } }')).text));
    sim.faults.clear();
    codes.push(codeOf((await gql(gw, '{ numberMetadata(number: "+14155552671") { phoneNumber } }')).text));
    codes.push(codeOf((await gql(gw, '{ sms(sid: "doesnotexist0000000000000000abcd") { sid } }')).text));
    // The wrong token: Exotel answers 401.
    codes.push(codeOf((await gql(wrong, '{ exophones { sid } }')).text));
    // Last of the Exotel side: a 429 with Retry-After holds the whole account off for that long.
    sim.faults.inject({ kind: 'rate-limit', retryAfterSeconds: 42, count: 1, endpoint: 'sms.send' });
    codes.push(codeOf((await gql(gw, SMS, sms)).text));
    sim.faults.clear();

    // Webhooks: wrong token, malformed, oversized, and a good one.
    const urls = callbackUrlsOf(gw);
    responses.push(JSON.stringify(await post(urls.callStatus.replace(/\/[^/]+\/call-status$/, `/${CANARY.webhookSecret}/call-status`), callCallback('c1', 'completed'))));
    responses.push(JSON.stringify(await post(urls.callStatus, { Status: 'nonsense' })));
    responses.push(JSON.stringify(await post(urls.callStatus, { CallSid: 'big', Status: 'completed', CustomField: 'x'.repeat(70 * 1024) })));
    responses.push(JSON.stringify(await post(urls.callStatus, callCallback('canarycall1', 'completed'))));

    // graphql-ws: wrong key, read key mutating.
    const refused = rawSocket(gw.wsUrl);
    await refused.opened;
    refused.send({ type: 'connection_init', payload: { authorization: `Bearer ${CANARY.clientKey}!` } });
    expect((await refused.closed).code).toBe(4403);
    const reader = await ackedSocket(gw.wsUrl, `Bearer ${CANARY.readKey}`);
    reader.send({ type: 'subscribe', id: '1', payload: { query: SMS, variables: sms } });
    responses.push(JSON.stringify(await reader.next((m) => m.id === '1')));
    reader.ws.close();

    expect(codes).toEqual([
      'UNAUTHENTICATED',
      'UNAUTHENTICATED',
      'FORBIDDEN',
      'BAD_USER_INPUT',
      'BAD_USER_INPUT',
      'BAD_USER_INPUT',
      'BAD_USER_INPUT',
      'INSUFFICIENT_BALANCE',
      'INSUFFICIENT_BALANCE',
      'OUTCOME_UNKNOWN',
      'OUTCOME_UNKNOWN',
      'OUTCOME_UNKNOWN',
      'UPSTREAM_UNAVAILABLE',
      'UPSTREAM_UNAVAILABLE',
      'BAD_USER_INPUT',
      expect.stringMatching(/^(NOT_FOUND|none)$/),
      'UPSTREAM_ERROR',
      'RATE_LIMITED',
    ]);

    const metrics = await call(`${gw.url}/metrics`);
    expect(metrics.status).toBe(200);
    const wrongMetrics = await call(`${wrong.url}/metrics`);
    // The failures above were counted: operations by outcome, upstream requests by status.
    expect(metrics.text).toMatch(/gateway_graphql_operations_total\{operation="anonymous",type="mutation",outcome="RATE_LIMITED"\} [1-9]/);
    expect(metrics.text).toMatch(/gateway_upstream_requests_total\{endpoint="sms.send",method="POST",status="429"\} [1-9]/);
    expect(wrongMetrics.text).toMatch(/gateway_upstream_requests_total\{endpoint="exophones.list",method="GET",status="401"\} [1-9]/);

    const everything = { responses: responses.join('\n'), logs: gw.logText() + wrong.logText(), metrics: metrics.text + wrongMetrics.text };
    // The logs did capture the failures (so the search below is not over nothing).
    expect(gw.logText()).toMatch(/webhook with a wrong or missing token rejected/);
    expect(everything.logs.length).toBeGreaterThan(2000);
    for (const [where, text] of Object.entries(everything)) {
      for (const canary of FORBIDDEN_TEXT) expect({ where, leaked: text.includes(canary) ? canary : null }).toEqual({ where, leaked: null });
      expect({ where, basicHeader: /Basic [A-Za-z0-9+/=]{16,}/.test(text) }).toEqual({ where, basicHeader: false });
    }
  });
});
