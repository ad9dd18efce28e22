/**
 * Client mistakes are quiet and exact: never an error-level log line, counted in
 * gateway_client_errors_total{kind}, answered with the same code over HTTP and graphql-ws, and in
 * production without "Did you mean …" hints on either transport. Real gateway, its real pino output.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { ackedSocket, rawSocket, type RawSocket } from './ws-raw.js';

const READER = 'reader-secret-0123456789';
const bearer = { authorization: `Bearer ${READER}` };
/** Each is the client's fault; together they cover syntax, validation, variables, operations, limits and input. */
const MISTAKES: Array<{ kind: string; query: string; variables?: Record<string, unknown>; operationName?: string }> = [
  { kind: 'syntax', query: '{ call(sid: "x") { sid ' },
  { kind: 'validation', query: '{ exophone { sid } }' },
  { kind: 'validation', query: '{ calls(filter: { status: [COMPLETE] }) { nodes { sid } } }' },
  { kind: 'variables', query: 'query($s: CallStatus!) { calls(filter: { status: [$s] }) { nodes { sid } } }', variables: { s: 'COMPLETE' } },
  { kind: 'variables', query: 'query($s: ID!) { call(sid: $s) { sid } }', variables: {} },
  { kind: 'variables', query: 'query($n: Int) { calls(first: $n) { nodes { sid } } }', variables: { n: 'ten' } },
  { kind: 'validation', query: 'query A { rateLimit { remaining } } query B { rateLimit { remaining } }' },
  { kind: 'input', query: '{ call(sid: "!!") { sid } }' },
  { kind: 'input', query: '{ calls(first: 1000) { nodes { sid } } }' },
  { kind: 'limit', query: `{ callsBySid(sids: [${Array.from({ length: 1001 }, (_, i) => `"CA${i}"`).join(',')}]) { sid } }` },
  { kind: 'auth', query: 'mutation { sendSms(input: { from: "08047112345", to: "09812345670", body: "hi" }) { sms { sid } } }' },
];
const post = (url: string, body: unknown, headers: Record<string, string> = bearer) =>
  fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) }).then(async (res) => ({ status: res.status, body: (await res.json()) as any }));
const clientErrors = async (gw: TestGateway) => {
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  return Object.fromEntries([...text.matchAll(/^gateway_client_errors_total\{kind="(\w+)"\} (\d+)/gm)].map((m) => [m[1]!, Number(m[2])]));
};
const sockets: RawSocket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.ws.terminate();
});
const wsAnswers = async (gw: TestGateway) => {
  const s = await ackedSocket(gw.wsUrl, bearer.authorization);
  sockets.push(s);
  const answers = [];
  for (const [i, m] of MISTAKES.entries()) {
    s.send({ type: 'subscribe', id: `m${i}`, payload: { query: m.query, ...(m.variables ? { variables: m.variables } : {}) } });
    answers.push(await s.next((f) => f.id === `m${i}` && f.type !== 'complete'));
  }
  return answers;
};

describe('development', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ GATEWAY_API_KEYS: `reader:${READER}:read`, LOG_LEVEL: 'trace', LIVE_POLL_INTERVAL_MS: '60000' });
  });

  it('a batch of mistakes on both transports writes no warning or error line, and each is counted by kind', async () => {
    const before = await clientErrors(gw);
    const logged = gw.logs.length;
    // One by one on HTTP (a batch would be refused whole by its first limit), then as a batch, then on graphql-ws.
    for (const m of MISTAKES) {
      const res = await post(gw.url, m);
      expect(res.body.errors?.length, m.query).toBeGreaterThan(0);
      expect(res.body.errors.map((e: any) => e.extensions.code), m.query.slice(0, 80) + JSON.stringify(res.body)).not.toContain("INTERNAL_SERVER_ERROR");
    }
    const batch = await post(gw.url, MISTAKES.filter((m) => m.kind !== 'limit'));
    expect(batch.body).toHaveLength(MISTAKES.length - 1);
    await wsAnswers(gw);
    expect((await post(gw.url, { query: '{ rateLimit { remaining } }' }, { authorization: 'Bearer wrong-key-0123456789' })).status).toBe(401);
    const ws = rawSocket(gw.wsUrl);
    sockets.push(ws);
    await ws.opened;
    ws.send({ type: 'connection_init', payload: { authorization: 'Bearer wrong-key-0123456789' } });
    expect((await ws.closed).code).toBe(4403);

    const lines = gw.logs.slice(logged);
    expect(lines.length).toBeGreaterThan(0);
    // pino levels, by label or by number.
    expect(lines.filter((l) => ['warn', 'error', 'fatal'].includes(String(l.level)) || Number(l.level) >= 40).map((l) => JSON.stringify(l).slice(0, 400))).toEqual([]);
    expect(lines.some((l) => l.level === 'info' || l.level === 30)).toBe(true);

    const after = await clientErrors(gw);
    const counted = (kind: string) => (after[kind] ?? 0) - (before[kind] ?? 0);
    const expected = (kind: string) => MISTAKES.filter((m) => m.kind === kind).length;
    // HTTP one by one + graphql-ws, plus the HTTP batch for all but the limit.
    for (const kind of ['syntax', 'validation', 'variables', 'input']) expect(counted(kind), kind).toBe(3 * expected(kind));
    expect(counted('limit')).toBe(2);
    // The read key's mutation three times, the wrong key on each transport.
    expect(counted('auth')).toBe(3 + 2);
  });

  it('graphql-ws answers each mistake with the code HTTP gives (never INTERNAL_SERVER_ERROR)', async () => {
    const http = [];
    for (const m of MISTAKES) http.push((await post(gw.url, m)).body.errors.map((e: any) => e.extensions.code));
    const ws = (await wsAnswers(gw)).map((a) => (a.type === 'error' ? a.payload : a.payload.errors).map((e: any) => e.extensions.code));
    expect(ws).toEqual(http);
    expect(ws.flat()).not.toContain('INTERNAL_SERVER_ERROR');
  });

  it('outside production a variable mistake keeps its hint', async () => {
    const res = await post(gw.url, MISTAKES[3]);
    expect(res.body.errors[0].message).toMatch(/Did you mean the enum value "COMPLETED"\?/);
  });

  it('a subscription over plain HTTP → 400 BAD_USER_INPUT pointing at graphql-ws', async () => {
    const res = await post(gw.url, { query: 'subscription { incomingCalls { sid } }' });
    expect(res.status).toBe(400);
    expect(res.body.errors).toEqual([{ message: expect.stringMatching(/graphql-ws/), extensions: { code: 'BAD_USER_INPUT', reason: 'OPERATION_RESOLUTION_FAILURE' } }]);
  });
});

describe('production masks suggestions on both transports', () => {
  let prod: TestGateway;
  beforeAll(async () => {
    prod = await startGateway({ NODE_ENV: 'production', GATEWAY_API_KEYS: `reader:${READER}:read`, LIVE_POLL_INTERVAL_MS: '60000' });
  });

  it('HTTP: a variable of a wrong enum value says what is wrong, not what would be right', async () => {
    const res = await post(prod.url, MISTAKES[3]);
    expect(res.status).toBe(400);
    expect(res.body.errors).toEqual([
      { message: 'Variable "$s" got invalid value "COMPLETE"; Value "COMPLETE" does not exist in "CallStatus" enum.', locations: [{ line: 1, column: 7 }], extensions: { code: 'BAD_USER_INPUT', reason: 'BAD_USER_INPUT' } },
    ]);
  });

  it('graphql-ws: the same answer, and no mistake anywhere names a suggestion', async () => {
    const answers = await wsAnswers(prod);
    expect(answers[3]).toEqual({ id: 'm3', type: 'error', payload: [{ message: 'Variable "$s" got invalid value "COMPLETE"; Value "COMPLETE" does not exist in "CallStatus" enum.', locations: [{ line: 1, column: 7 }], extensions: { code: 'BAD_USER_INPUT', reason: 'BAD_USER_INPUT' } }] });
    expect(JSON.stringify(answers)).not.toMatch(/Did you mean/);
    for (const m of MISTAKES) expect(JSON.stringify((await post(prod.url, m)).body)).not.toMatch(/Did you mean/);
  });

  // The hint is graphql-js's, and only ever the end of a message; the same words inside the client's own
  // text (a literal, a variable's value, an operation name) are the client's, and the message quoting
  // them is left whole, not cut off at them.
  it('a mistake quoting the client\'s own "Did you mean" text keeps its whole message, on both transports', async () => {
    const said = 'ten Did you mean 10?';
    const cases = [
      { body: { query: `{ calls(first: "${said}") { nodes { sid } } }` }, message: `Int cannot represent non-integer value: "${said}"` },
      {
        body: { query: 'query($n: Int) { calls(first: $n) { nodes { sid } } }', variables: { n: said } },
        message: `Variable "$n" got invalid value "${said}"; Int cannot represent non-integer value: "${said}"`,
      },
      { body: { query: 'query A { rateLimit { remaining } }', operationName: said }, message: `Unknown operation named "${said}".` },
    ];
    for (const { body, message } of cases) {
      const res = await post(prod.url, body);
      expect(res.status).toBe(400);
      expect(res.body.errors.map((e: any) => e.message)).toEqual([message]);
      expect(res.body.errors[0].extensions.code).toBe('BAD_USER_INPUT');
    }
    const s = await ackedSocket(prod.wsUrl, bearer.authorization);
    sockets.push(s);
    for (const [i, { body, message }] of cases.entries()) {
      s.send({ type: 'subscribe', id: `said${i}`, payload: body });
      const answer = await s.next((f) => f.id === `said${i}`);
      expect(answer.type).toBe('error');
      expect(answer.payload.map((e: any) => e.message)).toEqual([message]);
    }
  });

  // Messages quote the client's own text; masking must take time linear in it, or one request holds the
  // event loop (every other client's answers) for seconds to minutes.
  // No timing here: the texts are long enough that masking in time quadratic in their length (as the
  // patterns did) takes minutes per request, far past this test's own timeout; in linear time they take
  // milliseconds. Each is the longest its transport's limit lets through (MAX_BODY_BYTES, WS_MAX_PAYLOAD_BYTES).
  it('a mistake quoting a long text of the client\'s is answered, on both transports', async () => {
    const spaces = ' '.repeat(200_000);
    const http = [
      { query: `{ calls(first: "${spaces}") { nodes { sid } } }` },
      { query: `{ calls(first: "${'Did you mean'.repeat(20_000)}") { nodes { sid } } }` },
      { query: 'query($n: Int) { calls(first: $n) { nodes { sid } } }', variables: { n: spaces } },
      { query: 'query A { rateLimit { remaining } }', operationName: spaces },
    ];
    for (const body of http) {
      const result = await post(prod.url, body);
      expect(result.status).toBe(400);
      expect(result.body.errors[0].extensions.code).toBe('BAD_USER_INPUT');
    }
    const s = await ackedSocket(prod.wsUrl, bearer.authorization);
    sockets.push(s);
    const wsSpaces = ' '.repeat(60_000);
    const ws = [
      { query: 'query A { rateLimit { remaining } }', operationName: wsSpaces },
      { query: 'query($n: Int) { calls(first: $n) { nodes { sid } } }', variables: { n: wsSpaces } },
    ];
    for (const [i, payload] of ws.entries()) {
      s.send({ type: 'subscribe', id: `long${i}`, payload });
      const result = await s.next((f) => f.id === `long${i}`);
      expect(result.type).toBe('error');
      expect(result.payload[0].extensions.code).toBe('BAD_USER_INPUT');
    }
  }, 20_000);
});
