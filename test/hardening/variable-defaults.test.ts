/**
 * A value an operation declares as its variable's default is checked before execution exactly like the
 * same value sent as the variable: the cost limit and every list cap refuse it with the same status and
 * error, on HTTP and on graphql-ws, before any resolver (or Exotel) sees it. A default of the wrong type
 * is the client's mistake on both transports. Real gateway, real HTTP and graphql-ws.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { ackedSocket, type RawSocket } from './ws-raw.js';

const WRITER = 'writer-secret-0123456789';
const bearer = { authorization: `Bearer ${WRITER}` };

/** A JSON value as a GraphQL literal (object keys unquoted). */
function literal(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(literal).join(', ')}]`;
  if (value && typeof value === 'object') return `{ ${Object.entries(value).map(([k, v]) => `${k}: ${literal(v)}`).join(', ')} }`;
  return JSON.stringify(value);
}

interface Case {
  name: string;
  operation: 'query' | 'mutation' | 'subscription';
  /** The variable's declared type. */
  type: string;
  value: unknown;
  /** The selection, reading `$v`. */
  selection: string;
  /** What both must be refused with. */
  expected: Record<string, unknown>;
}

const distinct = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

const CASES: Case[] = [
  {
    name: 'MAX_COST through a connection’s `first`',
    operation: 'query',
    type: 'Int',
    value: 100_000,
    selection: 'calls(first: $v) { nodes { sid } }',
    expected: { code: 'BAD_USER_INPUT', reason: 'MAX_COST' },
  },
  {
    name: 'the cap of a list argument (callsBySid sids)',
    operation: 'query',
    type: '[ID!]!',
    value: distinct(1001, 'C'),
    selection: 'callsBySid(sids: $v) { sid }',
    expected: { code: 'BAD_USER_INPUT', field: 'sids', reason: 'MAX_LIST_SIZE' },
  },
  {
    name: 'the cap of a list in an input object (CallFilter from)',
    operation: 'query',
    type: 'CallFilter',
    value: { from: distinct(6, '0981234567') },
    selection: 'calls(filter: $v) { nodes { sid } }',
    expected: { code: 'BAD_USER_INPUT', field: 'filter.from', reason: 'MAX_LIST_SIZE' },
  },
  {
    name: 'the cap of a list variable inside an object literal (CallFilter to)',
    operation: 'query',
    type: '[String!]',
    value: distinct(6, '0981234567'),
    selection: 'calls(filter: { to: $v }) { nodes { sid } }',
    expected: { code: 'BAD_USER_INPUT', field: 'filter.to', reason: 'MAX_LIST_SIZE' },
  },
  {
    name: 'the cap of a list of input objects (sendBulkSms messages)',
    operation: 'mutation',
    type: 'SendBulkSmsInput!',
    value: { from: '08039591111', messages: Array.from({ length: 10_001 }, () => ({ to: '9812345670', body: 'x' })) },
    selection: 'sendBulkSms(input: $v) { messages { sid } }',
    expected: { code: 'BAD_USER_INPUT', field: 'input.messages', reason: 'MAX_LIST_SIZE' },
  },
  {
    name: 'the cap of a subscription filter (callEvents callSids)',
    operation: 'subscription',
    type: 'CallEventFilter',
    value: { callSids: distinct(101, 'C') },
    selection: 'callEvents(filter: $v) { id }',
    expected: { code: 'BAD_USER_INPUT', field: 'filter.callSids', reason: 'MAX_LIST_SIZE' },
  },
];

/** The frame answering operation `id`; an operation that started instead of being refused sends none. */
async function answer(s: RawSocket, id: string): Promise<any> {
  let timer: NodeJS.Timeout | undefined;
  const silent = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer to "${id}": the operation was not refused`)), 10_000)));
  try {
    return await Promise.race([s.next((m) => m.id === id), silent]);
  } finally {
    clearTimeout(timer);
  }
}

/** The operation with `value` sent as `$v`, and the same with `value` as `$v`'s declared default. */
const sent = (c: Case) => ({ query: `${c.operation} Op($v: ${c.type}) { ${c.selection} }`, variables: { v: c.value } });
const defaulted = (c: Case) => ({ query: `${c.operation} Op($v: ${c.type} = ${literal(c.value)}) { ${c.selection} }` });

describe('a variable’s default is checked before execution like the same value sent', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    // Room for a bulk SMS of 10,001 messages written into the document: the caps must hold without the
    // token and size limits.
    gw = await startGateway({
      GATEWAY_API_KEYS: `writer:${WRITER}:read+write`,
      LIVE_POLL_INTERVAL_MS: '60000',
      MAX_TOKENS: '200000',
      MAX_BODY_BYTES: String(1024 * 1024),
      WS_MAX_PAYLOAD_BYTES: String(1024 * 1024),
    });
  });

  /** Upstream requests and cache reads so far: a refusal before execution changes neither. */
  const work = () => ({ upstream: gw.simulator!.countRequests(), cacheReads: gw.storage.cache.stats.hits + gw.storage.cache.stats.misses });

  const post = async (body: unknown) => {
    const res = await fetch(`${gw.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...bearer }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as { data?: unknown; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> } };
  };

  describe.each(CASES)('$name', (c) => {
    it('over HTTP: 400 with the same error as the value sent, nothing run', async () => {
      const before = work();
      const byVariable = await post(sent(c));
      const byDefault = await post(defaulted(c));
      expect(byVariable.status).toBe(400);
      expect(byVariable.body.data).toBeUndefined();
      expect(byVariable.body.errors?.map((e) => e.extensions)).toEqual([c.expected]);
      expect(byDefault).toEqual(byVariable);
      expect(work()).toEqual(before);
    });

    it('over graphql-ws: the same error frame as the value sent, nothing run', async () => {
      const before = work();
      const s = await ackedSocket(gw.wsUrl, bearer.authorization);
      try {
        s.send({ type: 'subscribe', id: 'sent', payload: sent(c) });
        const byVariable = await answer(s, 'sent');
        s.send({ type: 'subscribe', id: 'default', payload: defaulted(c) });
        const byDefault = await answer(s, 'default');
        expect(byVariable.type).toBe('error');
        expect(byVariable.payload.map((e: { extensions?: unknown }) => e.extensions)).toEqual([c.expected]);
        expect(byDefault).toEqual({ ...byVariable, id: 'default' });
      } finally {
        s.ws.terminate();
      }
      expect(work()).toEqual(before);
    });
  });

  it('a GET reads the defaults of its document too', async () => {
    const params = new URLSearchParams(defaulted(CASES[1]!));
    const res = await fetch(`${gw.url}/graphql?${params}`, { headers: { ...bearer, 'apollo-require-preflight': '1' } });
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).errors.map((e: any) => e.extensions)).toEqual([CASES[1]!.expected]);
  });

  it('a batch weighs each operation with its own defaults', async () => {
    // Each within MAX_COST alone, together over it.
    const one = { query: 'query Op($v: Int = 40000) { calls(first: $v) { nodes { sid } } }' };
    const res = await post([one, one, one]);
    expect(res.status).toBe(400);
    expect(res.body.errors?.map((e) => e.extensions)).toEqual([{ code: 'BAD_USER_INPUT', reason: 'MAX_COST' }]);
  });

  it('a default the client replaces with a value of its own is not held against it', async () => {
    const query = `query Op($v: [ID!]! = ${literal(distinct(1001, 'C'))}) { callsBySid(sids: $v) { sid } }`;
    const res = await post({ query, variables: { v: ['C1', 'C2'] } });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ data: { callsBySid: [null, null] } });
  });

  describe('a default of the wrong type is the client’s mistake', () => {
    const wrong = [
      'query Op($v: Int = "many") { calls(first: $v) { nodes { sid } } }',
      'query Op($v: [ID!]! = [{ a: 1 }]) { callsBySid(sids: $v) { sid } }',
      'query Op($v: CallFilter = { from: 5, nope: true }) { calls(filter: $v) { nodes { sid } } }',
      'query Op($v: NoSuchType = 1) { calls(first: $v) { nodes { sid } } }',
    ];
    const invalid = { code: 'BAD_USER_INPUT', reason: 'GRAPHQL_VALIDATION_FAILED' };

    it.each(wrong)('over HTTP and graphql-ws: %s', async (query) => {
      const before = work();
      const linesBefore = gw.logs.length;
      const res = await post({ query });
      expect(res.status).toBe(400);
      expect(res.body.errors?.length).toBeGreaterThan(0);
      expect(res.body.errors?.map((e) => e.extensions)).toEqual(res.body.errors?.map(() => invalid));
      const s = await ackedSocket(gw.wsUrl, bearer.authorization);
      try {
        s.send({ type: 'subscribe', id: 'wrong', payload: { query } });
        const refused = await answer(s, 'wrong');
        expect(refused.type).toBe('error');
        expect(refused.payload.length).toBeGreaterThan(0);
        expect(refused.payload.map((e: { extensions?: unknown }) => e.extensions)).toEqual(refused.payload.map(() => invalid));
      } finally {
        s.ws.terminate();
      }
      expect(work()).toEqual(before);
      // A client mistake: no warning or error line (an internal error would log one).
      expect(gw.logs.slice(linesBefore).filter((l) => Number(l.level) >= 40 || ['warn', 'error', 'fatal'].includes(String(l.level)))).toEqual([]);
    });
  });
});
