/**
 * Every query of the contract against the real gateway on port 0, over real HTTP, with the built-in
 * simulator as Exotel. Upstream requests are counted at the simulator.
 */
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseNumber, type Simulator } from '../../src/simulator/index.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';

let gw: TestGateway;
let sim: Simulator;

beforeAll(async () => {
  gw = await startGateway();
  sim = gw.simulator!;
});

beforeEach(() => sim.resetRequests());

/** Seeded finished calls, newest first (the simulator's deterministic history). */
const seeded = () => sim.calls.list().filter((c) => c.Status !== 'in-progress' && c.Status !== 'ringing' && c.Status !== 'queued');
const upstream = (endpoint?: string) => sim.countRequests(endpoint ? { endpoint } : {});
/** IST wall clock "YYYY-MM-DD HH:mm:ss" → ISO with offset (what the gateway returns). */
const iso = (exotel: string) => `${exotel.replace(' ', 'T')}+05:30`;

const CALL_FIELDS = 'sid parentCallSid from to phoneNumberSid status direction startTime endTime durationSeconds conversationDurationSeconds price recordingUrl answeredBy customField dateCreated dateUpdated legs { id status onCallDurationSeconds }';

describe('gateway and rateLimit', () => {
  it('reports the simulator mode and the package version without asking Exotel', async () => {
    const { status, body } = await gw.gql('{ gateway { mode version } }');
    expect(status).toBe(200);
    expect(body.errors).toBeUndefined();
    expect(body.data.gateway.mode).toBe('SIMULATOR');
    expect(body.data.gateway.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(upstream()).toBe(0);
  });

  it('reports the rate budget, which shrinks as Exotel is asked', async () => {
    const before = (await gw.gql('{ rateLimit { limitPerMinute remaining resetsAt queued } }')).body.data.rateLimit;
    expect(before.limitPerMinute).toBe(200);
    expect(before.queued).toBe(0);
    expect(Number.isNaN(Date.parse(before.resetsAt))).toBe(false);
    // One convention for every DateTime: IST, like the call and SMS times converted from Exotel.
    expect(before.resetsAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+05:30$/);
    await gw.gql('{ numberMetadata(number: "+919812345670") { phoneNumber } }');
    const after = (await gw.gql('{ rateLimit { remaining } }')).body.data.rateLimit;
    expect(after.remaining).toBe(before.remaining - 1);
  });
});

describe('call', () => {
  it('answers a seeded finished call with every field converted from Exotel', async () => {
    const wire = seeded()[0]!;
    const { body } = await gw.gql(`query($sid: ID!) { call(sid: $sid) { ${CALL_FIELDS} events { id } } }`, { sid: wire.Sid });
    expect(body.errors).toBeUndefined();
    const call = body.data.call;
    expect(call.sid).toBe(wire.Sid);
    expect(call.status).toBe(wire.Status.toUpperCase().replace('-', '_'));
    expect(call.from).toBe(wire.From);
    expect(call.to).toBe(wire.To);
    expect(call.dateCreated).toBe(iso(wire.DateCreated));
    expect(call.durationSeconds).toBe(wire.Duration === null || wire.Duration === '' ? null : Number(wire.Duration));
    expect(call.legs?.length ?? 0).toBe(wire.Details?.Legs?.length ?? 0);
    expect(call.events).toEqual([]);
  });

  it('is null for a Sid Exotel does not know, and asks Exotel once per lookup', async () => {
    const { body } = await gw.gql('{ call(sid: "0000000000000000000000000000dead") { sid } }');
    expect(body.errors).toBeUndefined();
    expect(body.data.call).toBeNull();
    // A lone Sid is looked up singly: one request tells "unknown" from "live" (a bulk answer would lack both).
    expect(upstream('calls.list')).toBe(0);
    expect(upstream('calls.get')).toBe(1);
  });

  it('rejects a Sid that cannot be an Exotel Sid with BAD_USER_INPUT and no upstream request', async () => {
    const { body } = await gw.gql('{ call(sid: "a,b") { sid } }');
    expect(body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'sid' });
    expect(upstream()).toBe(0);
  });

  it('answers a repeated lookup of a finished call from the cache', async () => {
    const sid = seeded()[1]!.Sid;
    await gw.gql('query($sid: ID!) { call(sid: $sid) { sid } }', { sid });
    sim.resetRequests();
    const { body } = await gw.gql('query($sid: ID!) { call(sid: $sid) { sid status } }', { sid });
    expect(body.data.call.sid).toBe(sid);
    expect(upstream()).toBe(0);
  });

  it('resolves Call.events from the event log and CallEvent.call through the loader', async () => {
    const wire = seeded()[2]!;
    await gw.storage.events.append({
      kind: 'call', accountSid: sim.accountSid, callSid: wire.Sid, status: 'COMPLETED', at: iso(wire.DateUpdated), source: 'POLL', forward: true,
    });
    const { body } = await gw.gql('query($sid: ID!) { call(sid: $sid) { sid events { id callSid status at source call { sid status } } } }', { sid: wire.Sid });
    expect(body.errors).toBeUndefined();
    expect(body.data.call.events).toHaveLength(1);
    expect(body.data.call.events[0]).toMatchObject({ callSid: wire.Sid, status: 'COMPLETED', source: 'POLL', at: iso(wire.DateUpdated), call: { sid: wire.Sid } });
    // The nested call is the same Sid as the parent: one load, one upstream lookup at most.
    expect(upstream('calls.list')).toBeLessThanOrEqual(1);
  });
});

describe('callsBySid', () => {
  it('answers in the order asked, with duplicates in place and null for unknown Sids', async () => {
    const [a, b] = seeded().slice(10, 12).map((c) => c.Sid);
    const unknown = 'ffffffffffffffffffffffffffffffff';
    const { body } = await gw.gql('query($sids: [ID!]!) { callsBySid(sids: $sids) { sid } }', { sids: [b, unknown, a, b] });
    expect(body.errors).toBeUndefined();
    expect(body.data.callsBySid).toEqual([{ sid: b }, null, { sid: a }, { sid: b }]);
    expect(upstream('calls.list')).toBe(1);
  });

  it('fails only the slot of a malformed Sid', async () => {
    const sid = seeded()[12]!.Sid;
    const { body } = await gw.gql('query($sids: [ID!]!) { callsBySid(sids: $sids) { sid } }', { sids: ['bad sid', sid] });
    expect(body.data.callsBySid).toEqual([null, { sid }]);
    expect(body.errors).toHaveLength(1);
    expect(body.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'sids[0]' });
  });
});

describe('calls', () => {
  const PAGE = `query($filter: CallFilter, $first: Int, $after: String) {
    calls(filter: $filter, first: $first, after: $after) {
      totalCount edges { cursor node { sid dateCreated status direction } } nodes { sid }
      pageInfo { hasNextPage endCursor hasPreviousPage startCursor }
    } }`;

  it('lists newest first with 50 calls when `first` is omitted', async () => {
    const { body } = await gw.gql(PAGE);
    expect(body.errors).toBeUndefined();
    const page = body.data.calls;
    expect(page.edges).toHaveLength(50);
    expect(page.nodes.map((n: { sid: string }) => n.sid)).toEqual(page.edges.map((e: { node: { sid: string } }) => e.node.sid));
    expect(page.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: false });
    expect(page.pageInfo.endCursor).toBe(page.edges.at(-1).cursor);
    expect(page.totalCount).toBeGreaterThanOrEqual(300);
  });

  it('walks a 250-call history exactly once: no duplicates, no gaps', async () => {
    const history = seeded().slice(0, 250);
    const from = history.at(-1)!.DateCreated;
    const to = history[0]!.DateCreated;
    const expected = seeded().filter((c) => c.DateCreated >= from && c.DateCreated <= to).map((c) => c.Sid);
    expect(expected.length).toBeGreaterThanOrEqual(250);
    const filter = { dateCreatedFrom: iso(from), dateCreatedTo: iso(to) };
    const seen: string[] = [];
    let after: string | null = null;
    let pages = 0;
    for (;;) {
      const { body }: { body: { data?: any; errors?: unknown[] } } = await gw.gql(PAGE, { filter, first: 40, after });
      expect(body.errors).toBeUndefined();
      seen.push(...body.data.calls.edges.map((e: { node: { sid: string } }) => e.node.sid));
      pages += 1;
      if (!body.data.calls.pageInfo.hasNextPage) break;
      after = body.data.calls.pageInfo.endCursor;
      expect(pages).toBeLessThan(20);
    }
    expect(new Set(seen).size).toBe(seen.length);
    expect(new Set(seen)).toEqual(new Set(expected));
    expect(upstream('calls.list')).toBe(pages);
  });

  it('resumes after any edge cursor, mid-page, without repeating or skipping', async () => {
    const first = (await gw.gql(PAGE, { first: 10 })).body.data.calls;
    const cursor = first.edges[3].cursor;
    const rest = (await gw.gql(PAGE, { first: 10, after: cursor })).body.data.calls;
    expect(rest.pageInfo.hasPreviousPage).toBe(true);
    const sids = rest.edges.map((e: { node: { sid: string } }) => e.node.sid);
    expect(sids.slice(0, 6)).toEqual(first.edges.slice(4).map((e: { node: { sid: string } }) => e.node.sid));
    const direct = seeded().map((c) => c.Sid);
    expect(sids).toEqual(direct.slice(4, 4 + sids.length));
  });

  it('filters by status, direction and number', async () => {
    const { body } = await gw.gql(PAGE, { filter: { status: ['BUSY'], direction: 'INBOUND' }, first: 100 });
    expect(body.errors).toBeUndefined();
    const edges = body.data.calls.edges;
    expect(edges.length).toBeGreaterThan(0);
    for (const e of edges) expect(e.node).toMatchObject({ status: 'BUSY', direction: 'INBOUND' });
    const expected = seeded().filter((c) => c.Status === 'busy' && c.Direction === 'inbound').length;
    expect(body.data.calls.totalCount).toBe(expected);

    const someone = seeded()[5]!;
    const e164 = parseNumber(someone.From)!.e164;
    const byNumber = await gw.gql(`query($filter: CallFilter) { calls(filter: $filter, first: 100) { nodes { sid from } } }`, { filter: { from: [e164] } });
    expect(byNumber.body.errors).toBeUndefined();
    const sids = byNumber.body.data.calls.nodes.map((n: { sid: string }) => n.sid);
    expect(sids).toContain(someone.Sid);
    for (const n of byNumber.body.data.calls.nodes) expect(parseNumber(n.from)!.e164).toBe(e164);
  });

  it('puts listed calls in the cache, so looking them up next costs nothing', async () => {
    const { body } = await gw.gql(PAGE, { first: 30 });
    const sids = body.data.calls.nodes.map((n: { sid: string }) => n.sid);
    sim.resetRequests();
    const again = await gw.gql('query($sids: [ID!]!) { callsBySid(sids: $sids) { sid } }', { sids });
    expect(again.body.data.callsBySid.map((c: { sid: string }) => c.sid)).toEqual(sids);
    expect(upstream()).toBe(0);
  });

  it('caches listed calls with their legs, so a later lookup of legs is not left empty by the listing', async () => {
    const { body } = await gw.gql('query { calls(first: 20) { nodes { sid } } }');
    expect(body.errors).toBeUndefined();
    const sids: string[] = body.data.calls.nodes.map((n: { sid: string }) => n.sid);
    const withLegs = sids.filter((sid) => (sim.calls.get(sid)?.Details?.Legs?.length ?? 0) > 0);
    expect(withLegs.length).toBeGreaterThan(0);
    sim.resetRequests();
    const again = await gw.gql('query($sids: [ID!]!) { callsBySid(sids: $sids) { sid legs { id status } } }', { sids: withLegs });
    expect(again.body.errors).toBeUndefined();
    again.body.data.callsBySid.forEach((c: { sid: string; legs: unknown[] | null }, i: number) => {
      expect(c.sid).toBe(withLegs[i]);
      expect(c.legs).toHaveLength(sim.calls.get(withLegs[i]!)!.Details!.Legs!.length);
    });
    expect(upstream()).toBe(0);
  });

  it.each([
    [0, 'first'],
    [101, 'first'],
    [-5, 'first'],
  ])('rejects first: %i with BAD_USER_INPUT and no upstream request', async (first, field) => {
    const { body } = await gw.gql(PAGE, { first });
    expect(body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field });
    expect(upstream()).toBe(0);
  });

  it('rejects a cursor used with another filter, and a forged cursor', async () => {
    const page = (await gw.gql(PAGE, { first: 5, filter: { status: ['COMPLETED'] } })).body.data.calls;
    sim.resetRequests();
    const other = await gw.gql(PAGE, { first: 5, filter: { status: ['BUSY'] }, after: page.pageInfo.endCursor });
    expect(other.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'after' });
    expect(other.body.errors?.[0]?.message).toMatch(/different filter/);
    const forged = await gw.gql(PAGE, { first: 5, after: 'not-a-cursor' });
    expect(forged.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'after' });
    expect(upstream()).toBe(0);
  });

  it('rejects a date range that ends before it starts, and a DateTime without an offset', async () => {
    const backwards = await gw.gql(PAGE, { filter: { dateCreatedFrom: '2026-11-20T10:00:00+05:30', dateCreatedTo: '2026-11-19T10:00:00+05:30' } });
    expect(backwards.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'filter.dateCreatedFrom' });
    const noOffset = await gw.gql(PAGE, { filter: { dateCreatedFrom: '2026-11-20 10:00:00' } });
    expect(noOffset.status).toBe(400);
    expect(noOffset.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(noOffset.body.errors?.[0]?.message).toMatch(/DateTime/);
    const literal = await gw.gql('{ calls(filter: { dateCreatedFrom: "yesterday" }) { nodes { sid } } }');
    expect(literal.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(upstream()).toBe(0);
  });

  it('refuses ranges Exotel would refuse (over 31 days, or older than 6 months) without asking Exotel', async () => {
    const iso = (daysAgo: number) => new Date(Date.now() - daysAgo * 86_400_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const long = await gw.gql(PAGE, { filter: { dateCreatedFrom: iso(40), dateCreatedTo: iso(1) } });
    expect(long.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'filter.dateCreatedTo' });
    expect(long.body.errors?.[0]?.message).toMatch(/31 days/);
    const old = await gw.gql(PAGE, { filter: { dateCreatedFrom: iso(200), dateCreatedTo: iso(190) } });
    expect(old.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'filter.dateCreatedFrom' });
    expect(upstream()).toBe(0);
    // A month within the last six is asked of Exotel as it stands.
    const fine = await gw.gql(PAGE, { filter: { dateCreatedFrom: iso(30), dateCreatedTo: iso(0) } });
    expect(fine.body.errors).toBeUndefined();
    expect(upstream()).toBeGreaterThan(0);
  });
});

describe('calls with one date only', () => {
  it('searches the 31 days from dateCreatedFrom alone, and the 31 days up to dateCreatedTo alone', async () => {
    const day = 86_400_000;
    const at = (daysAgo: number) => Date.now() - daysAgo * day;
    const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
    // Numbers no seeded call uses, so the lists hold only these three.
    const to = '+919000000071';
    const old = sim.calls.create({ from: '09876543210', to, status: 'completed', createdAt: at(40) });
    const mid = sim.calls.create({ from: '09876543210', to, status: 'busy', createdAt: at(10) });
    const recent = sim.calls.create({ from: '09876543210', to, status: 'no-answer', createdAt: at(2) });
    const sids = async (filter: Record<string, unknown>) => {
      const { body } = await gw.gql('query($filter: CallFilter) { calls(first: 50, filter: $filter) { nodes { sid } } }', { filter: { ...filter, to: [to] } });
      expect(body.errors).toBeUndefined();
      return (body.data.calls.nodes as Array<{ sid: string }>).map((n) => n.sid).sort();
    };
    // From 45 days ago: the 31 days after it, which end before the two later calls.
    expect(await sids({ dateCreatedFrom: iso(at(45)) })).toEqual([old.Sid]);
    // From 12 days ago: up to now.
    expect(await sids({ dateCreatedFrom: iso(at(12)) })).toEqual([mid.Sid, recent.Sid].sort());
    // Up to 5 days ago: the 31 days before it.
    expect(await sids({ dateCreatedTo: iso(at(5)) })).toEqual([mid.Sid]);
    // Neither: the last 31 days.
    expect(await sids({})).toEqual([mid.Sid, recent.Sid].sort());
  });
});

describe('sms and smsBySid', () => {
  it('answers seeded messages in order, null for unknown, and caches finished ones', async () => {
    const [a, b] = sim.sms.list().slice(0, 2);
    const { body } = await gw.gql(
      'query($sids: [ID!]!, $one: ID!) { smsBySid(sids: $sids) { sid from to body status detailedStatus detailedStatusCode price dateCreated dateUpdated dateSent } sms(sid: $one) { sid } }',
      { sids: [b!.Sid, 'ffffffffffffffffffffffffffffffff', a!.Sid], one: a!.Sid },
    );
    expect(body.errors).toBeUndefined();
    expect(body.data.smsBySid.map((s: { sid: string } | null) => s?.sid ?? null)).toEqual([b!.Sid, null, a!.Sid]);
    expect(body.data.smsBySid[0]).toMatchObject({ to: b!.To, body: b!.Body, dateCreated: iso(b!.DateCreated) });
    expect(body.data.sms.sid).toBe(a!.Sid);
    // No bulk SMS details exist: one request per distinct Sid (a is asked twice, loaded once).
    expect(upstream('sms.get')).toBe(3);
    sim.resetRequests();
    await gw.gql('query($sids: [ID!]!) { smsBySid(sids: $sids) { sid } }', { sids: [a!.Sid, b!.Sid] });
    expect(upstream()).toBe(0);
  });
});

describe('numberMetadata and numbersMetadata', () => {
  it('accepts Indian number forms, normalises them, and caches the answer', async () => {
    const { body } = await gw.gql('{ a: numberMetadata(number: "09812345677") { phoneNumber circle circleName type operator operatorName dnd } b: numberMetadata(number: "+91 98123 45677") { phoneNumber } }');
    expect(body.errors).toBeUndefined();
    expect(body.data.a).toMatchObject({ phoneNumber: '+919812345677', type: 'Mobile', dnd: true });
    expect(body.data.b.phoneNumber).toBe('+919812345677');
    expect(upstream('numbers.get')).toBe(1);
    sim.resetRequests();
    await gw.gql('{ numberMetadata(number: "919812345677") { phoneNumber } }');
    expect(upstream()).toBe(0);
  });

  it('answers many numbers in order and fails only the slot of a malformed one', async () => {
    const { body } = await gw.gql('query($n: [String!]!) { numbersMetadata(numbers: $n) { phoneNumber dnd } }', { n: ['9876500001', 'not a number', '08039591111'] });
    expect(body.data.numbersMetadata).toEqual([{ phoneNumber: '+919876500001', dnd: false }, null, { phoneNumber: '+918039591111', dnd: false }]);
    expect(body.errors).toHaveLength(1);
    expect(body.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'numbers[1]' });
    expect((body.errors![0] as { path?: unknown }).path).toEqual(['numbersMetadata', 1]);
  });

  it('rejects a malformed number with BAD_USER_INPUT naming the argument and no upstream request', async () => {
    const { body } = await gw.gql('{ numberMetadata(number: "12") { phoneNumber } }');
    expect(body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'number' });
    expect(upstream()).toBe(0);
  });
});

describe('exophones', () => {
  it('lists the account ExoPhones and answers again from the cache', async () => {
    sim.resetRequests();
    const { body } = await gw.gql('{ exophones { sid phoneNumber friendlyName capabilities region } }');
    expect(body.errors).toBeUndefined();
    // From the v1 listing production integrations use, not the v2_beta one.
    expect(sim.requests.map((r) => r.path)).toEqual([`/v1/Accounts/${sim.accountSid}/IncomingPhoneNumbers.json`]);
    expect(body.data.exophones.map((p: { sid: string }) => p.sid)).toEqual(sim.exoPhones.map((p) => p.sid));
    expect(body.data.exophones[0]).toMatchObject({ phoneNumber: sim.exoPhones[0]!.phone_number, friendlyName: sim.exoPhones[0]!.friendly_name });
    sim.resetRequests();
    await gw.gql('{ exophones { sid } }');
    expect(upstream()).toBe(0);
  });
});
