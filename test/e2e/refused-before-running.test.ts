/**
 * A request /graphql refuses is refused before any of it runs. Apollo checks some things only after
 * executing: the pieces of a batch run side by side, so one malformed piece (a `query` that is not a
 * string…) turns the whole answer into one error while a mutation beside it has already sent its SMS; and
 * an `Accept` header it cannot serve is answered 406 once the operation has run. Either way a mutation took
 * effect at Exotel and its client was told only that the request was refused — and would send it again.
 */
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Simulator } from '../../src/simulator/index.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';

let gw: TestGateway;
let sim: Simulator;
beforeAll(async () => {
  gw = await startGateway({ LIVE_POLL_INTERVAL_MS: '60000' });
  sim = gw.simulator!;
});
beforeEach(() => sim.resetRequests());

const SEND_SMS = { query: 'mutation { sendSms(input: { from: "08039591111", to: "9812345670", body: "refused?" }) { sms { sid } } }' };

async function post(body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(`${gw.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: res.status, body: JSON.parse(await res.text()) };
}

describe('a batch with a piece Apollo would refuse', () => {
  it.each([
    ['a query that is not a string', { query: 3 }],
    ['an empty object', {}],
    ['not an object', 'query'],
    ['variables as a JSON string', { query: '{ rateLimit { remaining } }', variables: '{}' }],
    ['variables as a list', { query: '{ rateLimit { remaining } }', variables: [] }],
    ['extensions that are not an object', { query: '{ rateLimit { remaining } }', extensions: 5 }],
    ['an operationName that is not a string', { query: '{ rateLimit { remaining } }', operationName: 7 }],
  ])('with %s is refused whole with 400, naming the piece, and its mutation never reaches Exotel', async (_name, bad) => {
    const { status, body } = await post([SEND_SMS, bad]);
    expect(status).toBe(400);
    expect(body.errors).toHaveLength(1);
    expect(body.errors[0].extensions.code).toBe('BAD_USER_INPUT');
    expect(body.errors[0].message).toMatch(/^The batch's operation at index 1: .*Nothing in the batch was run\.$/);
    expect(sim.countRequests({ endpoint: 'sms.send' })).toBe(0);
  });

  it('with a piece whose query is null (a persisted-query hash, as some clients send it) is left to Apollo, which answers that piece alone', async () => {
    const persisted = { query: null, extensions: { persistedQuery: { version: 1, sha256Hash: 'a'.repeat(64) } } };
    const { status, body } = await post([SEND_SMS, persisted]);
    expect(status).toBe(200);
    expect(body[0].data.sendSms.sms.sid).toEqual(expect.any(String));
    expect(body[1].errors[0].extensions.reason).toBe('PERSISTED_QUERY_NOT_SUPPORTED');
    expect(sim.countRequests({ endpoint: 'sms.send' })).toBe(1);
  });

  it('that is well formed still runs every piece, each with its own answer', async () => {
    const { status, body } = await post([SEND_SMS, { query: '{ rateLimit { limitPerMinute } }', variables: null, operationName: null }]);
    expect(status).toBe(200);
    expect(body[0].data.sendSms.sms.sid).toEqual(expect.any(String));
    expect(body[1].data.rateLimit.limitPerMinute).toEqual(expect.any(Number));
    expect(sim.countRequests({ endpoint: 'sms.send' })).toBe(1);
  });
});

describe('an Accept header the gateway cannot answer', () => {
  it.each(['text/html', 'application/xml', 'application/json;q=0, text/plain'])('%s: 406 before anything runs, so a mutation never reaches Exotel', async (accept) => {
    const { status, body } = await post(SEND_SMS, { accept });
    expect(status).toBe(406);
    expect(body.errors[0].extensions.code).toBe('BAD_USER_INPUT');
    expect(sim.countRequests({ endpoint: 'sms.send' })).toBe(0);
    // A batch too.
    expect((await post([SEND_SMS], { accept })).status).toBe(406);
    expect(sim.countRequests({ endpoint: 'sms.send' })).toBe(0);
  });

  // Empty: Apollo reads it as no Accept at all. callbackSpec: what a router sends for subscription callbacks, which Apollo answers.
  it.each(['application/json', 'application/graphql-response+json', '*/*', 'application/*', 'text/html, application/json;q=0.1', '', 'application/json;callbackSpec=1.0'])('"%s" is answered as usual', async (accept) => {
    const { status, body } = await post({ query: '{ rateLimit { limitPerMinute } }' }, { accept });
    expect(status).toBe(200);
    expect(body.data.rateLimit.limitPerMinute).toEqual(expect.any(Number));
  });

  it('on a GET too, before the query spends anything at Exotel', async () => {
    const sid = sim.calls.list()[0]!.Sid;
    const query = `{ call(sid: "${sid}") { status } }`;
    const res = await fetch(`${gw.url}/graphql?query=${encodeURIComponent(query)}`, { headers: { accept: 'text/csv', 'apollo-require-preflight': '1' } });
    expect(res.status).toBe(406);
    expect(sim.countRequests()).toBe(0);
  });
});

describe('a batch in which some operations ran and others were refused', () => {
  it('is answered 200, each operation with its own data or errors: a 400 would tell the client nothing ran, and its mutation would be sent again', async () => {
    const { status, body } = await post([SEND_SMS, { query: '{ nope }' }, { query: '{ rateLimit {' }]);
    expect(status).toBe(200);
    expect(body[0].data.sendSms.sms.sid).toEqual(expect.any(String));
    expect(body[1].errors[0].extensions.reason).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(body[2].errors[0].extensions.reason).toBe('GRAPHQL_PARSE_FAILED');
    expect(sim.countRequests({ endpoint: 'sms.send' })).toBe(1);
  });

  it('keeps 400 when none of its operations ran', async () => {
    const { status, body } = await post([{ query: '{ nope }' }, { query: '{ rateLimit {' }]);
    expect(status).toBe(400);
    expect(body).toHaveLength(2);
  });
});

describe('the media type of a refusal made before Apollo', () => {
  /** Status and Content-Type of a POST of `body` (bytes as given) with `accept`. */
  const answerTo = async (body: BodyInit, accept: string | undefined, contentType = 'application/json') => {
    const res = await fetch(`${gw.url}/graphql`, { method: 'POST', headers: { 'content-type': contentType, ...(accept === undefined ? {} : { accept }) }, body });
    await res.arrayBuffer();
    return [res.status, res.headers.get('content-type')];
  };
  const refusals: Array<[string, BodyInit, number, string?]> = [
    ['a malformed batch piece', JSON.stringify([SEND_SMS, { query: 3 }]), 400],
    ['a body that is not UTF-8', Uint8Array.from(Buffer.from('{"query":"{ caf\u00e9 }"}', 'latin1')), 400],
    ['a body that is not JSON', '{ rateLimit { remaining } }', 415, 'text/plain'],
    ['a batch over the size limit', JSON.stringify(Array.from({ length: 100 }, () => ({ query: '{ rateLimit { remaining } }' }))), 400],
  ];

  it.each(refusals)('(%s) is the one the Accept header asks for, as in Apollo\'s own refusals: application/graphql-response+json when only that is accepted', async (_what, body, status, contentType = 'application/json') => {
    const graphqlResponse = 'application/graphql-response+json; charset=utf-8';
    expect(await answerTo(body, 'application/graphql-response+json', contentType)).toEqual([status, graphqlResponse]);
    expect(await answerTo(body, 'application/graphql-response+json, application/json;q=0.9', contentType)).toEqual([status, graphqlResponse]);
    // Apollo's own refusal of a query that does not parse, for comparison.
    expect(await answerTo(JSON.stringify({ query: '{ rateLimit {' }), 'application/graphql-response+json')).toEqual([400, graphqlResponse]);
    for (const accept of [undefined, 'application/json', '*/*']) expect(await answerTo(body, accept, contentType)).toEqual([status, 'application/json; charset=utf-8']);
  });
});
