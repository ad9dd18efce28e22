/**
 * Every error leaves with a contract code (the README's error table): each Exotel error class produced by the real
 * simulator (fault injection, wrong credentials, unknown account), the gateway's own budget, malformed
 * GraphQL and HTTP bodies, auth, and production masking. The server stays healthy after each.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createSimulator, type Simulator } from '../../src/simulator/index.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';

let gw: TestGateway;
let sim: Simulator;

beforeAll(async () => {
  gw = await startGateway();
  sim = gw.simulator!;
});
beforeEach(() => {
  sim.faults.clear();
  sim.resetRequests();
});

type GqlError = { message: string; extensions?: Record<string, unknown> };
const firstError = (body: { errors?: GqlError[] }) => body.errors?.[0];
const SMS = 'mutation($input: SendSmsInput!) { sendSms(input: $input) { sms { sid } } }';
const smsInput = { from: '08039591111', to: '9812345670', body: 'hello' };
const CONNECT = 'mutation($input: ConnectCallInput!) { connectCall(input: $input) { call { sid } } }';
const connectInput = { from: '9876543210', to: '9812345670', callerId: '08039591111' };

/** Nothing internal in an error: no stack, no upstream URL, no credentials. */
function expectClean(error: GqlError | undefined, secrets: string[] = []) {
  const text = JSON.stringify(error);
  expect(error?.extensions?.stacktrace).toBeUndefined();
  expect(text).not.toMatch(/\/v1\/Accounts|127\.0\.0\.1|localhost|Basic [A-Za-z0-9+/]{16,}/);
  for (const s of secrets) expect(text).not.toContain(s);
}

async function expectHealthy(g: TestGateway) {
  const res = await fetch(`${g.url}/healthz`);
  expect(res.status).toBe(200);
  const { body } = await g.gql('{ gateway { mode } }');
  expect(body.data.gateway.mode).toBeDefined();
}

describe('Exotel error classes map to contract codes', () => {
  it('400 → BAD_USER_INPUT with Exotel’s message', async () => {
    const { body } = await gw.gql('{ numberMetadata(number: "+14155552671") { phoneNumber } }');
    expect(firstError(body)?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', upstreamStatus: 400 });
    expect(firstError(body)?.message).toMatch(/Indian numbers only/);
    expectClean(firstError(body));
  });

  it('402 and 403 (balance) → INSUFFICIENT_BALANCE', async () => {
    sim.faults.inject({ kind: 'insufficient-balance', status: 402, count: 1, endpoint: 'sms.send' });
    const r402 = await gw.gql(SMS, { input: smsInput });
    expect(firstError(r402.body)?.extensions?.code).toBe('INSUFFICIENT_BALANCE');
    sim.faults.inject({ kind: 'insufficient-balance', status: 403, count: 1, endpoint: 'calls.connect' });
    const r403 = await gw.gql(CONNECT, { input: connectInput });
    expect(firstError(r403.body)?.extensions?.code).toBe('INSUFFICIENT_BALANCE');
    expectClean(firstError(r403.body));
  });

  it('429 → RATE_LIMITED with retryAfterSeconds from Retry-After, and the account holds off that long', async () => {
    // Its own gateway: after this, every request of the account waits out the 42 s.
    const own = await startGateway();
    own.simulator!.faults.inject({ kind: 'rate-limit', retryAfterSeconds: 42, count: 1, endpoint: 'numbers.get' });
    const { body } = await own.gql('{ numberMetadata(number: "9812300001") { phoneNumber } }');
    expect(firstError(body)?.extensions).toMatchObject({ code: 'RATE_LIMITED', retryAfterSeconds: 42 });
    expectClean(firstError(body));
    own.simulator!.resetRequests();
    const next = await own.gql('{ exophones { sid } }');
    expect(firstError(next.body)?.extensions?.code).toBe('RATE_LIMITED');
    expect(firstError(next.body)?.extensions?.retryAfterSeconds).toBeGreaterThanOrEqual(40);
    expect(own.simulator!.countRequests()).toBe(0);
  });

  it('5xx on a lookup → UPSTREAM_UNAVAILABLE after the client’s retries', async () => {
    sim.faults.inject({ kind: 'error', status: 503, count: 'all', endpoint: 'exophones.list' });
    const { body } = await gw.gql('{ exophones { sid } }');
    expect(firstError(body)?.extensions?.code).toBe('UPSTREAM_UNAVAILABLE');
    expect(sim.countRequests({ endpoint: 'exophones.list' })).toBeGreaterThanOrEqual(1);
    expectClean(firstError(body));
  });

  it('5xx on a mutation → OUTCOME_UNKNOWN, sent once and never retried', async () => {
    sim.faults.failNext(1, 502, 'sms.send');
    const { body } = await gw.gql(SMS, { input: smsInput });
    expect(firstError(body)?.extensions?.code).toBe('OUTCOME_UNKNOWN');
    expect(sim.countRequests({ endpoint: 'sms.send' })).toBe(1);
    expectClean(firstError(body));
  });

  it('a connection reset on a mutation → OUTCOME_UNKNOWN', async () => {
    sim.faults.inject({ kind: 'drop-connection', count: 1, endpoint: 'calls.connect' });
    const { body } = await gw.gql(CONNECT, { input: connectInput });
    expect(firstError(body)?.extensions?.code).toBe('OUTCOME_UNKNOWN');
    expect(sim.countRequests({ endpoint: 'calls.connect' })).toBe(1);
  });

  it('one failed Sid lookup fails only its slot, and is not cached', async () => {
    // Held at ringing: a live call is never in Exotel's bulk listing, so only its own lookup can answer it.
    sim.faults.holdCalls('ringing', { to: '+919800000021' });
    const live = sim.calls.create({ from: '+919800000011', to: '+919800000021', callerId: '08039591111' });
    const done = sim.calls.list().find((c) => c.Status === 'completed')!;
    sim.faults.inject({ kind: 'error', status: 500, count: 'all', endpoint: 'calls.get' });
    const { body } = await gw.gql('query($s: [ID!]!) { callsBySid(sids: $s) { sid } }', { s: [live.Sid, done.Sid] });
    expect(body.data.callsBySid).toEqual([null, { sid: done.Sid }]);
    expect(firstError(body)?.extensions?.code).toBe('UPSTREAM_UNAVAILABLE');
    sim.faults.clear();
    const again = await gw.gql('query($s: ID!) { call(sid: $s) { sid } }', { s: live.Sid });
    expect(again.body.data.call.sid).toBe(live.Sid);
  });
});

describe("Exotel's numeric RestException.Code", () => {
  it('comes out as extensions.exotelCode next to upstreamStatus and Exotel’s message', async () => {
    sim.faults.inject({ kind: 'exotel-error', status: 403, code: 340030, endpoint: 'sms.send' });
    const { body } = await gw.gql(SMS, { input: smsInput });
    expect(firstError(body)?.extensions).toMatchObject({ code: 'UPSTREAM_ERROR', upstreamStatus: 403, exotelCode: 340030 });
    expect(firstError(body)?.message).toContain('Your account is not yet KYC compliant');
  });

  it('a 503 with code 35008 on connect stays OUTCOME_UNKNOWN, with the code', async () => {
    sim.faults.inject({ kind: 'exotel-error', status: 503, code: 35008, endpoint: 'calls.connect' });
    const { body } = await gw.gql(CONNECT, { input: connectInput });
    expect(firstError(body)?.extensions).toMatchObject({ code: 'OUTCOME_UNKNOWN', upstreamStatus: 503, exotelCode: 35008 });
  });

  it('is read from an XML error body too', async () => {
    sim.faults.inject({ kind: 'exotel-error', status: 400, code: 40210, format: 'xml', endpoint: 'sms.send' });
    const { body } = await gw.gql(SMS, { input: smsInput });
    expect(firstError(body)?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', upstreamStatus: 400, exotelCode: 40210 });
    expect(firstError(body)?.message).toContain("No 'From' specified");
  });
});

describe('timeouts', () => {
  let slow: TestGateway;
  beforeAll(async () => {
    slow = await startGateway({ EXOTEL_TIMEOUT_MS: '150' });
  });

  it('a lookup that times out → UPSTREAM_UNAVAILABLE', async () => {
    slow.simulator!.faults.inject({ kind: 'slow', delayMs: 600, count: 'all', endpoint: 'numbers.get' });
    const { body } = await slow.gql('{ numberMetadata(number: "9812300002") { phoneNumber } }');
    slow.simulator!.faults.clear();
    expect(firstError(body)?.extensions?.code).toBe('UPSTREAM_UNAVAILABLE');
    expectClean(firstError(body));
  });

  it('a mutation that times out → OUTCOME_UNKNOWN, and the idempotency key remembers it', async () => {
    slow.simulator!.faults.slowNext(1, 600, 'calls.connect');
    const input = { ...connectInput, idempotencyKey: 'timeout-1' };
    const { body } = await slow.gql(CONNECT, { input });
    expect(firstError(body)?.extensions?.code).toBe('OUTCOME_UNKNOWN');
    const retry = await slow.gql(CONNECT, { input });
    expect(firstError(retry.body)?.extensions?.code).toBe('OUTCOME_UNKNOWN');
    expect(slow.simulator!.countRequests({ endpoint: 'calls.connect' })).toBe(1);
  });
});

describe('credentials and account problems at Exotel', () => {
  let standalone: Simulator;
  beforeAll(async () => {
    standalone = await createSimulator({ port: 0, timeScale: 0.01, log: () => {} });
  });
  afterAll(() => standalone.stop());

  const liveEnv = (overrides: Record<string, string>) => ({
    EXOTEL_ACCOUNT_SID: standalone.accountSid,
    EXOTEL_API_KEY: standalone.apiKey,
    EXOTEL_API_TOKEN: standalone.apiToken,
    EXOTEL_BASE_URL: standalone.url,
    WEBHOOK_SECRET: 'w'.repeat(32),
    GATEWAY_ALLOW_OPEN: '1',
    ...overrides,
  });

  it('401 (wrong token) → UPSTREAM_ERROR, without the token in the answer', async () => {
    const token = 'canary-token-9f8e7d6c5b4a';
    const wrong = await startGateway(liveEnv({ EXOTEL_API_TOKEN: token }));
    const { body } = await wrong.gql('{ exophones { sid } }');
    expect(firstError(body)?.extensions).toMatchObject({ code: 'UPSTREAM_ERROR', upstreamStatus: 401 });
    expectClean(firstError(body), [token]);
    expect(wrong.logText()).not.toContain(token);
  });

  it('404 (unknown account) → NOT_FOUND', async () => {
    const lost = await startGateway(liveEnv({ EXOTEL_ACCOUNT_SID: 'no-such-account' }));
    const { body } = await lost.gql('{ exophones { sid } }');
    expect(firstError(body)?.extensions).toMatchObject({ code: 'NOT_FOUND', upstreamStatus: 404 });
    expectClean(firstError(body));
  });

  it('reports LIVE mode when Exotel credentials are set', async () => {
    const live = await startGateway(liveEnv({}));
    const { body } = await live.gql('{ gateway { mode } }');
    expect(body.data.gateway.mode).toBe('LIVE');
  });
});

describe('the gateway’s own rate budget', () => {
  it('answers RATE_LIMITED with retryAfterSeconds once the budget is spent, without asking Exotel', async () => {
    const tight = await startGateway({ EXOTEL_RATE_LIMIT_PER_MIN: '2', EXOTEL_RATE_QUEUE_MS: '0' });
    await tight.gql('{ a: numberMetadata(number: "9812300003") { phoneNumber } b: numberMetadata(number: "9812300004") { phoneNumber } }');
    tight.simulator!.resetRequests();
    const { body } = await tight.gql('{ numberMetadata(number: "9812300005") { phoneNumber } }');
    expect(firstError(body)?.extensions?.code).toBe('RATE_LIMITED');
    expect(firstError(body)?.extensions?.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(tight.simulator!.countRequests()).toBe(0);
    // A failure that never reached Exotel leaves the idempotency key free.
    const input = { ...smsInput, idempotencyKey: 'budget-1' };
    const m = await tight.gql(SMS, { input });
    expect(firstError(m.body)?.extensions?.code).toBe('RATE_LIMITED');
    const rate = await tight.gql('{ rateLimit { remaining limitPerMinute } }');
    expect(rate.body.data.rateLimit).toMatchObject({ remaining: 0, limitPerMinute: 2 });
  });
});

describe('malformed requests get a clear error and the server stays healthy', () => {
  const post = (body: string, contentType = 'application/json') =>
    fetch(`${gw.url}/graphql`, { method: 'POST', headers: { 'content-type': contentType }, body });

  it('a GraphQL syntax error → 400 BAD_USER_INPUT', async () => {
    const { status, body } = await gw.gql('{ call(sid: "x" { sid }');
    expect(status).toBe(400);
    expect(firstError(body)?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(firstError(body)?.message).toMatch(/Syntax Error/);
    await expectHealthy(gw);
  });

  it('an unknown field → 400 BAD_USER_INPUT naming it', async () => {
    const { status, body } = await gw.gql('{ call(sid: "x") { sid nope } }');
    expect(status).toBe(400);
    expect(firstError(body)?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(firstError(body)?.message).toMatch(/nope/);
  });

  it('variables of the wrong type → 400 BAD_USER_INPUT', async () => {
    const { status, body } = await gw.gql('query($n: Int) { calls(first: $n) { nodes { sid } } }', { n: 'ten' });
    expect(status).toBe(400);
    expect(firstError(body)?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(sim.countRequests()).toBe(0);
  });

  it('a body that is not JSON → 400 with a GraphQL-shaped error', async () => {
    const res = await post('{"query": "{ gateway { mode } }"');
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ errors: [{ message: expect.stringMatching(/not valid JSON/), extensions: { code: 'BAD_USER_INPUT' } }] });
    await expectHealthy(gw);
  });

  it('a body that is not UTF-8 (a Latin-1 é in an SMS) → 400 naming UTF-8, and nothing is sent, rather than an SMS with "�" in it', async () => {
    const json = '{"query":"mutation { sendSms(input: { from: \\"08039591111\\", to: \\"9812345670\\", body: \\"Caf\u00e9 open\\" }) { sms { sid } } }"}';
    sim.resetRequests();
    const res = await fetch(`${gw.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: Buffer.from(json, 'latin1') });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ errors: [{ message: expect.stringMatching(/UTF-8/), extensions: { code: 'BAD_USER_INPUT' } }] });
    expect(sim.countRequests()).toBe(0);
    // The same text in UTF-8 is taken, é and all.
    const ok = await fetch(`${gw.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: Buffer.from(json, 'utf8') });
    expect((await ok.json()).data.sendSms.sms.sid).toEqual(expect.any(String));
  });

  it('a body that is not JSON at all (text/plain) → 415 with a GraphQL-shaped error', async () => {
    const res = await post('query { gateway { mode } }', 'text/plain');
    expect(res.status).toBe(415);
    const body = await res.json();
    expect(firstError(body)?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(firstError(body)?.message).toMatch(/application\/json/);
  });

  it('an oversized body → 413 with a GraphQL-shaped error', async () => {
    const res = await post(JSON.stringify({ query: `{ gateway { mode } } # ${'x'.repeat(300 * 1024)}` }));
    expect(res.status).toBe(413);
    expect(firstError(await res.json())?.extensions?.code).toBe('BAD_USER_INPUT');
    await expectHealthy(gw);
  });

  it('a JSON body that is not a GraphQL request → 400', async () => {
    const res = await post('[1, 2, 3]');
    expect(res.status).toBe(400);
    const text = await res.text();
    expect(text.length).toBeGreaterThan(0);
    await expectHealthy(gw);
  });
});

describe('GET /graphql', () => {
  it('runs a query with a preflight header and refuses a mutation', async () => {
    const q = encodeURIComponent('{ gateway { mode } }');
    const ok = await fetch(`${gw.url}/graphql?query=${q}`, { headers: { 'apollo-require-preflight': 'true' } });
    expect(ok.status).toBe(200);
    expect((await ok.json()).data.gateway.mode).toBe('SIMULATOR');
    const m = encodeURIComponent(`mutation { sendSms(input: { from: "08039591111", to: "9812345670", body: "x" }) { sms { sid } } }`);
    const refused = await fetch(`${gw.url}/graphql?query=${m}`, { headers: { 'apollo-require-preflight': 'true' } });
    expect(refused.status).toBe(405);
    await refused.text();
    expect(sim.countRequests()).toBe(0);
  });

  it('blocks a simple cross-site GET (CSRF prevention)', async () => {
    const res = await fetch(`${gw.url}/graphql?query=${encodeURIComponent('{ gateway { mode } }')}`);
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/CSRF/i);
  });
});

describe('client keys', () => {
  const reader = 'reader-secret-0123456789';
  const writer = 'writer-secret-0123456789';
  let authed: TestGateway;
  beforeAll(async () => {
    authed = await startGateway({ GATEWAY_API_KEYS: `ops:${reader}:read,app:${writer}:read+write` });
  });

  it('answers UNAUTHENTICATED (401) without a valid key', async () => {
    const none = await authed.gql('{ gateway { mode } }');
    expect(none.status).toBe(401);
    expect(firstError(none.body)?.extensions?.code).toBe('UNAUTHENTICATED');
    const wrong = await authed.gql('{ gateway { mode } }', {}, { authorization: 'Bearer not-a-key-000000000' });
    expect(wrong.status).toBe(401);
    expect(firstError(wrong.body)?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('names the Bearer scheme in WWW-Authenticate on a 401, and only there', async () => {
    const post = (headers: Record<string, string>) => fetch(`${authed.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '{"query":"{ gateway { mode } }"}' });
    const refused = await post({});
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toBe('Bearer realm="exotel-graphql-gateway"');
    expect((await refused.json()).errors[0].extensions).not.toHaveProperty('http');
    const allowed = await post({ authorization: `Bearer ${reader}` });
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get('www-authenticate')).toBeNull();
    await allowed.text();
  });

  it('lets a read key query but not mutate (FORBIDDEN, no upstream request)', async () => {
    const q = await authed.gql('{ gateway { mode } }', {}, { authorization: `Bearer ${reader}` });
    expect(q.body.data.gateway.mode).toBe('SIMULATOR');
    authed.simulator!.resetRequests();
    const m = await authed.gql(SMS, { input: smsInput }, { authorization: `Bearer ${reader}` });
    expect(firstError(m.body)?.extensions?.code).toBe('FORBIDDEN');
    expect(authed.simulator!.countRequests()).toBe(0);
    const w = await authed.gql(SMS, { input: smsInput }, { authorization: `Bearer ${writer}` });
    expect(w.body.errors).toBeUndefined();
  });
});

describe('production', () => {
  let prod: TestGateway;
  beforeAll(async () => {
    prod = await startGateway({ NODE_ENV: 'production' });
  });

  it('turns introspection off and still answers with contract codes', async () => {
    const { status, body } = await prod.gql('{ __schema { types { name } } }');
    expect(status).toBe(400);
    expect(firstError(body)?.extensions?.code).toBe('BAD_USER_INPUT');
    expectClean(firstError(body));
  });

  it('keeps GatewayError messages and codes but no internals', async () => {
    prod.simulator!.faults.failNext(1, 500, 'sms.send');
    const { body } = await prod.gql(SMS, { input: smsInput });
    expect(firstError(body)?.extensions?.code).toBe('OUTCOME_UNKNOWN');
    expect(Object.keys(firstError(body)?.extensions ?? {}).sort()).toEqual(['code', 'upstreamStatus']);
    expectClean(firstError(body));
  });

  it("keeps Exotel's numeric code: exotelCode is not secret and says what to fix", async () => {
    prod.simulator!.faults.inject({ kind: 'exotel-error', status: 403, code: 340030, endpoint: 'sms.send' });
    const { body } = await prod.gql(SMS, { input: smsInput });
    expect(firstError(body)?.extensions).toEqual({ code: 'UPSTREAM_ERROR', upstreamStatus: 403, exotelCode: 340030 });
    expect(firstError(body)?.message).toContain('Your account is not yet KYC compliant');
    expectClean(firstError(body));
  });

  it('masks an unexpected internal error as INTERNAL_SERVER_ERROR and logs it server-side', async () => {
    // An Exotel client that fails with a plain Error (a bug, not an Exotel answer): impossible to cause
    // through the real client on purpose, so this one fake stands in for it.
    const leaky = `connect ECONNREFUSED https://key:tok@api.exotel.com/v1/Accounts/acme/Numbers`;
    const base = prod.exotel;
    const broken = await startGateway({ NODE_ENV: 'production' }, {}, {
      exotel: { ...base, accountSid: base.accountSid, rateLimit: () => base.rateLimit(), getNumberMetadata: async () => { throw new Error(leaky); } },
    });
    const { body } = await broken.gql('{ numberMetadata(number: "9812300009") { phoneNumber } }');
    expect(firstError(body)).toMatchObject({ message: 'Internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR' } });
    expect(JSON.stringify(body)).not.toContain('exotel.com');
    const logged = broken.logText().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.level === 'error');
    expect(logged.map((l) => l.msg)).toContain('internal error in a GraphQL operation');
  });
});

describe('development', () => {
  it('shows an unexpected internal error’s own message (masked only in production), coded INTERNAL_SERVER_ERROR', async () => {
    const plain = await startGateway();
    const base = plain.exotel;
    // The same stand-in as in production above: a plain Error from inside, not an Exotel answer.
    const broken = await startGateway({}, {}, {
      exotel: { ...base, accountSid: base.accountSid, rateLimit: () => base.rateLimit(), getNumberMetadata: async () => { throw new Error('metadata parser tripped over row 7'); } },
    });
    const { body } = await broken.gql('{ numberMetadata(number: "9812300009") { phoneNumber } }');
    expect(firstError(body)).toMatchObject({ message: 'metadata parser tripped over row 7', extensions: { code: 'INTERNAL_SERVER_ERROR' } });
  });
});
