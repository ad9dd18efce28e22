/**
 * The cost limit counts lists: an operation (or a batch) whose answer would hold more values than
 * MAX_COST is refused before any resolver runs, and every list argument is held to its `@maxItems` cap.
 * Real gateway, real HTTP and graphql-ws, the simulator counting upstream requests.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { getNamedType, getNullableType, getOperationAST, isInputObjectType, isListType, isObjectType, parse } from 'graphql';
import { capOf, coerceVariables, listSizeOfField, operationCost } from '../../src/graphql/cost.js';
import { createSchema } from '../../src/graphql/schema.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { ackedSocket } from './ws-raw.js';

const READER = 'reader-secret-0123456789';
const bearer = { authorization: `Bearer ${READER}` };
const CALL_FIELDS = 'sid parentCallSid from to phoneNumberSid status direction startTime endTime durationSeconds price recordingUrl answeredBy customField dateCreated dateUpdated';
/** Every alias asks for the same 1,000 calls with their legs and events (and each event's call). */
const amplification = (aliases: number) =>
  `query Amp($sids: [ID!]!) { ${Array.from({ length: aliases }, (_, i) => `a${i}: callsBySid(sids: $sids) { ${CALL_FIELDS} legs { id status onCallDurationSeconds } events { id status at source call { ${CALL_FIELDS} } } }`).join(' ')} }`;

describe('operationCost', () => {
  const schema = createSchema();
  const cost = (query: string, variables?: Record<string, unknown>) => {
    const document = parse(query);
    const operation = getOperationAST(document)!;
    return operationCost(schema, document, operation, coerceVariables(schema, operation, variables).coerced!);
  };

  it('multiplies a list selection by the length of its slicing argument, literal or variable', () => {
    expect(cost('{ callsBySid(sids: ["a", "b", "c"]) { sid status } }')).toBe(1 + 3 * 2);
    expect(cost('query($s: [ID!]!) { callsBySid(sids: $s) { sid status } }', { s: ['a', 'b', 'c', 'd'] })).toBe(1 + 4 * 2);
  });

  it('counts a variable’s declared default like the value sent', () => {
    expect(cost('query($s: [ID!]! = ["a", "b", "c", "d"]) { callsBySid(sids: $s) { sid status } }')).toBe(1 + 4 * 2);
    expect(cost('query($s: [ID!]! = ["a", "b", "c", "d"]) { callsBySid(sids: $s) { sid status } }', { s: ['a'] })).toBe(1 + 1 * 2);
    expect(cost('query($f: CallFilter = { from: ["1"] }, $n: Int = 10) { calls(first: $n, filter: $f) { nodes { sid } } }')).toBe(1 + 1 + 10);
  });

  it('sizes a connection’s edges and nodes by `first`, else the assumed page of 50', () => {
    expect(cost('{ calls(first: 10) { edges { cursor node { sid } } nodes { sid } pageInfo { hasNextPage } } }')).toBe(1 + (1 + 10 * 3) + (1 + 10) + 2);
    expect(cost('{ calls { nodes { sid } } }')).toBe(1 + 1 + 50);
  });

  it('counts nested lists by their assumed size, and a fragment wherever it is spread', () => {
    // events: 5 per call, legs: 2 per call.
    expect(cost('{ call(sid: "a") { events { id } legs { id } } }')).toBe(1 + (1 + 5) + (1 + 2));
    expect(cost('fragment F on Call { sid status } { callsBySid(sids: ["a", "b"]) { ...F } c: call(sid: "x") { ...F } }')).toBe(1 + 2 * 2 + 1 + 2);
  });

  it('refuses a list over its cap, counting repeated values once', () => {
    const sids = Array.from({ length: 1001 }, (_, i) => `s${i}`);
    expect(() => cost('query($s: [ID!]!) { callsBySid(sids: $s) { sid } }', { s: sids })).toThrow(/sids: at most 1000 distinct values \(got 1001\)/);
    expect(cost('query($s: [ID!]!) { callsBySid(sids: $s) { sid } }', { s: [...sids.slice(0, 1000), ...sids.slice(0, 500)] })).toBe(1 + 1500);
    expect(() => cost('{ calls(filter: { from: ["1", "2", "3", "4", "5", "6"] }) { nodes { sid } } }')).toThrow(/filter\.from: at most 5/);
  });

  it('every list field has a @listSize and every list argument or input field a @maxItems in the SDL', () => {
    const unsized: string[] = [];
    const uncapped: string[] = [];
    const checkArg = (where: string, arg: { type: Parameters<typeof getNullableType>[0] } & Parameters<typeof capOf>[1]) => {
      if (isListType(getNullableType(arg.type)) && capOf(schema, arg) === null) uncapped.push(where);
    };
    for (const type of Object.values(schema.getTypeMap())) {
      if (type.name.startsWith('__')) continue;
      if (isObjectType(type)) {
        for (const field of Object.values(type.getFields())) {
          const sizedByParent = ['CallConnection', 'SendBulkSmsPayload'].includes(type.name);
          if (isListType(getNullableType(field.type)) && !sizedByParent && listSizeOfField(schema, field) === null) unsized.push(`${type.name}.${field.name}`);
          for (const arg of field.args) checkArg(`${type.name}.${field.name}(${arg.name})`, arg);
        }
      }
      if (isInputObjectType(type)) for (const field of Object.values(type.getFields())) checkArg(`${type.name}.${field.name}`, field);
    }
    expect(unsized).toEqual([]);
    expect(uncapped).toEqual([]);
    expect(getNamedType(schema.getQueryType()!.getFields().callsBySid!.type).name).toBe('Call');
  });
});

describe('the amplification attack', () => {
  let gw: TestGateway;
  let sids: string[];
  beforeAll(async () => {
    // Bodies big enough for five attacks in one batch: the cost limit must hold without the body limit.
    gw = await startGateway({ GATEWAY_API_KEYS: `reader:${READER}:read`, LIVE_POLL_INTERVAL_MS: '60000', MAX_BODY_BYTES: String(1024 * 1024) });
    const sim = gw.simulator!;
    const existing = sim.calls.list().map((c) => c.Sid);
    const added = Array.from({ length: 1000 - existing.length }, () => sim.calls.create({ from: '09812345670', to: '09812345671', status: 'completed' }).Sid);
    sids = [...existing, ...added];
    // Warm: all 1,000 calls are cached, so an admitted attack would cost no upstream request at all.
    const warm = await gw.gql('query($sids: [ID!]!) { callsBySid(sids: $sids) { sid } }', { sids }, bearer);
    expect(warm.body.errors).toBeUndefined();
    expect(warm.body.data.callsBySid.filter(Boolean)).toHaveLength(1000);
  });

  const post = (body: unknown) =>
    fetch(`${gw.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...bearer }, body: JSON.stringify(body) }).then(async (res) => ({ status: res.status, body: (await res.json()) as any }));

  it('60 aliases × callsBySid of 1,000 cached Sids with nested lists → MAX_COST before any resolver runs', async () => {
    const upstream = gw.simulator!.countRequests();
    const cacheReads = gw.storage.cache.stats.hits + gw.storage.cache.stats.misses;
    const heapBefore = process.memoryUsage().heapUsed;
    const res = await post({ query: amplification(60), variables: { sids } });
    expect(res.status).toBe(400);
    expect(res.body.data).toBeUndefined();
    expect(res.body.errors).toHaveLength(1);
    expect(res.body.errors[0].extensions).toEqual({ code: 'BAD_USER_INPUT', reason: 'MAX_COST' });
    expect(res.body.errors[0].message).toMatch(/more than MAX_COST allows \(100000\)/);
    // Nothing ran: no Exotel request, not a single cache read by a resolver.
    expect(gw.simulator!.countRequests()).toBe(upstream);
    expect(gw.storage.cache.stats.hits + gw.storage.cache.stats.misses).toBe(cacheReads);
    // The answer would have been tens of megabytes; refusing it builds nothing.
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(32 * 1024 * 1024);
  });

  it('five of them in one batch are refused as a whole', async () => {
    const upstream = gw.simulator!.countRequests();
    const cacheReads = gw.storage.cache.stats.hits + gw.storage.cache.stats.misses;
    const res = await post(Array.from({ length: 5 }, () => ({ query: amplification(60), variables: { sids } })));
    expect(res.status).toBe(400);
    expect(res.body.errors[0].extensions).toEqual({ code: 'BAD_USER_INPUT', reason: 'MAX_COST' });
    expect(res.body.errors[0].message).toMatch(/batch of 5 operations/);
    expect(gw.simulator!.countRequests()).toBe(upstream);
    expect(gw.storage.cache.stats.hits + gw.storage.cache.stats.misses).toBe(cacheReads);
  });

  it('a batch counts as a whole: operations each within MAX_COST, together over it, run none', async () => {
    const one = { query: `query($sids: [ID!]!) { callsBySid(sids: $sids) { ${CALL_FIELDS} } }`, variables: { sids } };
    const alone = await post(one);
    expect(alone.status).toBe(200);
    expect(alone.body.data.callsBySid).toHaveLength(1000);
    const cacheReads = gw.storage.cache.stats.hits + gw.storage.cache.stats.misses;
    const res = await post(Array.from({ length: 7 }, () => one));
    expect(res.status).toBe(400);
    expect(res.body.errors[0].extensions).toEqual({ code: 'BAD_USER_INPUT', reason: 'MAX_COST' });
    expect(gw.storage.cache.stats.hits + gw.storage.cache.stats.misses).toBe(cacheReads);
  });

  it('a list over its cap → BAD_USER_INPUT naming the field and the cap; repeated Sids count once', async () => {
    const upstream = gw.simulator!.countRequests();
    const over = await post({ query: 'query($s: [ID!]!) { callsBySid(sids: $s) { sid } }', variables: { s: [...sids, 'CA0000000000000000000000000000ff'] } });
    expect(over.status).toBe(400);
    expect(over.body.errors[0]).toEqual({ message: 'sids: at most 1000 distinct values (got 1001)', extensions: { code: 'BAD_USER_INPUT', field: 'sids', reason: 'MAX_LIST_SIZE' } });
    expect(gw.simulator!.countRequests()).toBe(upstream);
    const repeated = await post({ query: 'query($s: [ID!]!) { callsBySid(sids: $s) { sid } }', variables: { s: [...sids, ...sids.slice(0, 200)] } });
    expect(repeated.status).toBe(200);
    expect(repeated.body.errors).toBeUndefined();
    expect(repeated.body.data.callsBySid).toHaveLength(1200);
  });

  it('GET reads its variables too', async () => {
    const cacheReads = gw.storage.cache.stats.hits + gw.storage.cache.stats.misses;
    const short = Array.from({ length: 1001 }, (_, i) => `C${i}`);
    const params = new URLSearchParams({ query: 'query($s: [ID!]!) { callsBySid(sids: $s) { sid } }', variables: JSON.stringify({ s: short }) });
    const res = await fetch(`${gw.url}/graphql?${params}`, { headers: { ...bearer, 'apollo-require-preflight': '1' } });
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).errors[0].extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'sids', reason: 'MAX_LIST_SIZE' });
    expect(gw.storage.cache.stats.hits + gw.storage.cache.stats.misses).toBe(cacheReads);
  });

  it('over graphql-ws the same operation is refused the same way, with no upstream request', async () => {
    const upstream = gw.simulator!.countRequests();
    const s = await ackedSocket(gw.wsUrl, bearer.authorization);
    try {
      s.send({ type: 'subscribe', id: 'amp', payload: { query: amplification(60), variables: { sids } } });
      const refused = await s.next((m) => m.id === 'amp');
      expect(refused.type).toBe('error');
      expect(refused.payload.map((e: any) => e.extensions)).toEqual([{ code: 'BAD_USER_INPUT', reason: 'MAX_COST' }]);
      expect(gw.simulator!.countRequests()).toBe(upstream);
    } finally {
      s.ws.terminate();
    }
  });
});
