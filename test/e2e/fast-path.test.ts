/**
 * The HTTP fast path (src/graphql/fast-path.ts) answers plain single queries without express and Apollo.
 * Whatever it answers must be what Apollo would have answered: two real gateways on one Exotel (the first
 * one's simulator), one with the fast path and one without, get the same requests over real HTTP and must
 * give the same status, content type and body. What the fast path does not take, it hands to Apollo whole.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { createEntityCache } from '../../src/cache/entities.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';

let fast: TestGateway;
let apollo: TestGateway;
let done: string[];

beforeAll(async () => {
  fast = await startGateway();
  apollo = await startGateway({}, {}, { exotel: fast.exotel, httpFastPath: false });
  done = fast.simulator!.calls.list().filter((c) => c.Status === 'completed').slice(0, 3).map((c) => c.Sid);
});

interface Answer {
  status: number;
  contentType: string | null;
  cacheControl: string | null;
  requestId: string | null;
  body: unknown;
}

async function post(gw: TestGateway, body: string, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(`${gw.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const text = await res.text();
  return {
    status: res.status,
    contentType: res.headers.get('content-type'),
    cacheControl: res.headers.get('cache-control'),
    requestId: res.headers.get('x-request-id'),
    body: JSON.parse(text),
  };
}

/** Sends the same request to both gateways; returns the fast gateway's answer once both agree. */
async function same(body: string, headers: Record<string, string> = {}): Promise<Answer> {
  const a = await post(fast, body, headers);
  const b = await post(apollo, body, headers);
  expect({ ...a, requestId: Boolean(a.requestId) }).toEqual({ ...b, requestId: Boolean(b.requestId) });
  return a;
}

const op = (query: string, variables?: Record<string, unknown>, operationName?: string) => JSON.stringify({ query, variables, operationName });

describe('the HTTP fast path answers exactly as Apollo does', () => {
  it('takes plain queries: data, nulls for unknown Sids, several operations with operationName', async () => {
    const before = fast.fastPath!.stats();
    const one = await same(op('query Call($sid: ID!) { call(sid: $sid) { sid status from to direction startTime } }', { sid: done[0] }));
    expect((one.body as { data: { call: { sid: string } } }).data.call.sid).toBe(done[0]);
    expect(one.status).toBe(200);
    expect(one.cacheControl).toBe('no-store');
    await same(op('{ call(sid: "00000000000000000000000000000009") { sid } }'));
    await same(op('query($s: [ID!]!) { callsBySid(sids: $s) { sid status } }', { s: [...done, done[0]] }));
    await same(op('query A { exophones { sid phoneNumber } } query B { rateLimit { limitPerMinute } }', undefined, 'A'));
    await same(op('{ numberMetadata(number: "+919812345678") { phoneNumber circle operator } }'));
    expect(fast.fastPath!.stats().answered - before.answered).toBe(5);
    expect(fast.fastPath!.stats().handedOver).toBe(before.handedOver);
  });

  it('answers resolver errors with the same codes, messages and paths', async () => {
    const before = fast.fastPath!.stats();
    const bad = await same(op('{ numberMetadata(number: "12") { phoneNumber } }'));
    expect((bad.body as { errors: Array<{ extensions: { code: string } }> }).errors[0]!.extensions.code).toBe('BAD_USER_INPUT');
    await same(op('{ a: call(sid: "not a sid!") { sid } b: call(sid: "' + done[1] + '") { sid } }'));
    expect(fast.fastPath!.stats().answered - before.answered).toBe(2);
  });

  it('hands everything else to Apollo: syntax, validation, variables, limits, mutations, introspection, batches', async () => {
    const before = fast.fastPath!.stats();
    await same(op('{ call(sid: '));
    await same(op('{ call(sid: "x") { nope } }'));
    await same(op('query($sid: ID!) { call(sid: $sid) { sid } }', {}));
    await same(op(`{ ${Array.from({ length: 70 }, (_, i) => `a${i}: gateway { version }`).join(' ')} }`));
    await same(op('mutation { sendSms(input: { from: "x", to: "1", body: "hi" }) { sid } }'));
    await same(op('{ __schema { queryType { name } } }'));
    await same(JSON.stringify([{ query: '{ rateLimit { limitPerMinute } }' }, { query: '{ rateLimit { remaining } }' }]));
    await same(op('{ gateway { version } }', undefined, 'Missing'));
    // Each was read here and then given to express with the parsed body, not read twice.
    expect(fast.fastPath!.stats().handedOver - before.handedOver).toBe(8);
    expect(fast.fastPath!.stats().answered).toBe(before.answered);
  });

  it('answers malformed and non-object JSON bodies as express.json does', async () => {
    await same('{"query": ');
    await same('"just a string"');
    await same('null');
  });

  it('leaves other content types, Accept headers and methods to express', async () => {
    const before = fast.fastPath!.stats();
    await same(op('{ rateLimit { limitPerMinute } }'), { accept: 'application/graphql-response+json' });
    const get = await fetch(`${fast.url}/graphql?query=${encodeURIComponent('{ rateLimit { limitPerMinute } }')}`, { headers: { 'apollo-require-preflight': '1' } });
    expect((await get.json()) as unknown).toMatchObject({ data: { rateLimit: { limitPerMinute: expect.any(Number) } } });
    const text = await fetch(`${fast.url}/graphql`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: op('{ rateLimit { limitPerMinute } }') });
    expect(text.status).toBe(415);
    await text.text();
    expect(fast.fastPath!.stats()).toEqual(before);
  });
});

describe('warm answers (response cache)', () => {
  const CALL = 'query Warm($sid: ID!) { call(sid: $sid) { sid status from durationSeconds legs { id status } } }';

  it('answers a repeated query over cached calls without executing it, byte for byte the same', async () => {
    const sid = done[2]!;
    await post(fast, op(CALL, { sid })); // from Exotel: not kept
    const first = await post(fast, op(CALL, { sid })); // from the cache: kept
    const before = fast.fastPath!.stats();
    fast.simulator!.resetRequests();
    const again = await post(fast, op(CALL, { sid }));
    expect(fast.fastPath!.stats().warm - before.warm).toBe(1);
    expect(again.body).toEqual(first.body);
    expect(again.cacheControl).toBe('no-store');
    expect(fast.simulator!.countRequests()).toBe(0);
    // The same operation with other variables is another answer.
    const other = await post(fast, op(CALL, { sid: done[1] }));
    expect((other.body as { data: { call: { sid: string } } }).data.call.sid).toBe(done[1]);
  });

  it('executes again once a call it was built from changes in the cache', async () => {
    const sid = done[0]!;
    for (let i = 0; i < 3; i++) await post(fast, op(CALL, { sid }));
    const entities = createEntityCache(fast.storage.cache, fast.exotel.accountSid);
    const [call] = await entities.getCalls([sid]);
    // As a status callback or a refresh from Exotel would: a new object for the same call.
    await entities.putCall({ ...call!, status: 'FAILED', durationSeconds: 7 });
    const before = fast.fastPath!.stats();
    const changed = await post(fast, op(CALL, { sid }));
    expect(fast.fastPath!.stats().warm).toBe(before.warm);
    expect(changed.body).toMatchObject({ data: { call: { sid, status: 'FAILED', durationSeconds: 7 } } });
    // And that answer is kept in turn.
    await post(fast, op(CALL, { sid }));
    expect(fast.fastPath!.stats().warm).toBe(before.warm + 1);
  });

  it('never keeps answers that read anything but cached objects, missed the cache, or had errors', async () => {
    const before = fast.fastPath!.stats();
    const twice = async (body: string) => {
      await post(fast, body);
      await post(fast, body);
    };
    await twice(op('query($sid: ID!) { call(sid: $sid) { sid events { status } } }', { sid: done[1] })); // the event log
    await twice(op('{ rateLimit { remaining } }'));
    await twice(op('{ call(sid: "00000000000000000000000000000042") { sid } }')); // unknown: asks Exotel each time
    await twice(op('{ numberMetadata(number: "12") { phoneNumber } }')); // an error
    expect(fast.fastPath!.stats().warm).toBe(before.warm);
  });

});

describe('with client keys', () => {
  const READER = 'reader-secret-0123456789abcdef';
  let keyed: TestGateway;
  let keyedApollo: TestGateway;
  beforeAll(async () => {
    keyed = await startGateway({ GATEWAY_API_KEYS: `reader:${READER}:read` });
    keyedApollo = await startGateway({ GATEWAY_API_KEYS: `reader:${READER}:read` }, {}, { exotel: keyed.exotel, httpFastPath: false });
  });

  it('answers a query with a valid key, and leaves a missing or wrong key to Apollo (401)', async () => {
    const query = op('{ rateLimit { limitPerMinute } }');
    const pair = async (headers: Record<string, string>) => {
      const a = await post(keyed, query, headers);
      const b = await post(keyedApollo, query, headers);
      expect({ ...a, requestId: null }).toEqual({ ...b, requestId: null });
      return a;
    };
    const before = keyed.fastPath!.stats();
    expect((await pair({ authorization: `Bearer ${READER}` })).status).toBe(200);
    expect(keyed.fastPath!.stats().answered - before.answered).toBe(1);
    expect((await pair({})).status).toBe(401);
    expect((await pair({ authorization: 'Bearer wrong-key-0123456789' })).status).toBe(401);
    expect(keyed.fastPath!.stats().handedOver - before.handedOver).toBe(2);
    // Neither answer carries the key.
    expect(keyed.logText()).not.toContain(READER);
  });

  it('serves a warm answer only after the key is checked', async () => {
    const sid = keyed.simulator!.calls.list().find((c) => c.Status === 'completed')!.Sid;
    const query = op('query($sid: ID!) { call(sid: $sid) { sid status } }', { sid });
    const auth = { authorization: `Bearer ${READER}` };
    for (let i = 0; i < 3; i++) expect((await post(keyed, query, auth)).status).toBe(200);
    const before = keyed.fastPath!.stats();
    expect(before.warm).toBeGreaterThan(0);
    const none = await post(keyed, query);
    const wrong = await post(keyed, query, { authorization: 'Bearer wrong-key-0123456789' });
    expect([none.status, wrong.status]).toEqual([401, 401]);
    expect(JSON.stringify([none.body, wrong.body])).not.toContain(sid);
    expect(keyed.fastPath!.stats().warm).toBe(before.warm);
  });
});

describe('in production', () => {
  let prodFast: TestGateway;
  let prodApollo: TestGateway;
  beforeAll(async () => {
    prodFast = await startGateway({ NODE_ENV: 'production', GATEWAY_ALLOW_OPEN: '1' });
    prodApollo = await startGateway({ NODE_ENV: 'production', GATEWAY_ALLOW_OPEN: '1' }, {}, { exotel: prodFast.exotel, httpFastPath: false });
  });

  it('answers as Apollo does: masked errors, no introspection, no field suggestions', async () => {
    const pair = async (body: string) => {
      const a = await post(prodFast, body);
      const b = await post(prodApollo, body);
      expect({ ...a, requestId: null }).toEqual({ ...b, requestId: null });
      return a;
    };
    const before = prodFast.fastPath!.stats();
    await pair(op('{ numberMetadata(number: "12") { phoneNumber } }'));
    await pair(op('{ call(sid: "00000000000000000000000000000077") { sid status } }'));
    const introspection = await pair(op('{ __type(name: "Call") { name } }'));
    expect(introspection.body).toHaveProperty('errors');
    const suggestion = await pair(op('{ call(sid: "x") { stauts } }'));
    expect(JSON.stringify(suggestion.body)).not.toMatch(/Did you mean/);
    expect(prodFast.fastPath!.stats().answered - before.answered).toBe(2);
  });
});
