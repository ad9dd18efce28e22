/**
 * The fair share of the Exotel budget between client keys (docs/rate-budget.md): a key flooding cold
 * lookups spends its share and at most what leaves the reserve untouched, then gets RATE_LIMITED with a
 * wait that is true for it; another key's cold lookups are all served meanwhile. Real gateway, real HTTP
 * and graphql-ws, the simulator counting every upstream request.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import type { Simulator } from '../../src/simulator/index.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { record, wsClient } from '../live/ws-helpers.js';

const FLOOD = `flood-${randomBytes(12).toString('hex')}`;
const CALM = `calm-${randomBytes(12).toString('hex')}`;
const as = (secret: string) => ({ authorization: `Bearer ${secret}` });
const LIMIT = 40;
// A long window, so nothing leaves it during a test: every count below is of one window.
const ENV = {
  GATEWAY_API_KEYS: `flood:${FLOOD}:read,calm:${CALM}:read`,
  EXOTEL_RATE_LIMIT_PER_MIN: String(LIMIT),
  EXOTEL_RATE_WINDOW_MS: '600000',
  EXOTEL_RATE_QUEUE_MS: '1000',
  EXOTEL_RESERVE_SHARE: '0.25',
};
const RESERVE = Math.ceil(LIMIT * 0.25);

const randomSid = () => randomBytes(16).toString('hex');
const finished = (sim: Simulator, n: number) =>
  sim.calls.list().filter((c) => ['completed', 'busy', 'no-answer', 'failed', 'canceled'].includes(c.Status)).slice(0, n).map((c) => c.Sid);
const BY_SID = 'query($sids: [ID!]!) { callsBySid(sids: $sids) { sid } }';
const CALL = 'query($sid: ID!) { call(sid: $sid) { sid status } }';
const RATE = '{ rateLimit { limitPerMinute remaining myShare myUsed } }';

type Slot = { message: string; path?: Array<string | number>; extensions?: Record<string, unknown> };

describe('fair share of the Exotel budget between keys', () => {
  let gw: TestGateway;
  afterAll(() => gw?.stop());

  it("serves every cold lookup of one key while another floods, and RATE_LIMITs only the flooding key", async () => {
    gw = await startGateway(ENV);
    const sim = gw.simulator!;
    sim.resetRequests();
    // 300 random Sids: unknown to Exotel, each costs a single lookup after the bulk requests.
    const flooding = gw.gql(BY_SID, { sids: Array.from({ length: 300 }, randomSid) }, as(FLOOD));
    // While the flood is spending, the other key asks for calls one query each (its own batches).
    const calmSids = finished(sim, 8);
    expect(calmSids).toHaveLength(8);
    const calm = await Promise.all(calmSids.map((sid) => gw.gql(CALL, { sid }, as(CALM))));
    const flood = await flooding;

    calm.forEach((r, i) => {
      expect(r.body.errors).toBeUndefined();
      expect(r.body.data.call.sid).toBe(calmSids[i]);
    });
    // The flooding key: data (null: no such call) for what its share and the unreserved rest paid for,
    // RATE_LIMITED with a wait for the rest, in their own slots.
    const errors = (flood.body.errors ?? []) as Slot[];
    expect(errors.length).toBeGreaterThan(0);
    for (const e of errors) {
      expect(e.extensions?.code).toBe('RATE_LIMITED');
      // True for this key: its requests leave the (10-minute) window no sooner than that.
      expect(e.extensions?.retryAfterSeconds).toBeGreaterThan(60);
      expect(e.extensions?.retryAfterSeconds).toBeLessThanOrEqual(600);
    }
    // Never more than the budget upstream, and the flooding key never took the reserved part.
    expect(sim.countRequests()).toBeLessThanOrEqual(LIMIT);
    expect(sim.countRequests()).toBeGreaterThanOrEqual(LIMIT - RESERVE);

    // Each key sees its own share and use.
    const floodRate = await gw.gql(RATE, {}, as(FLOOD));
    const calmRate = await gw.gql(RATE, {}, as(CALM));
    expect(floodRate.body.data.rateLimit.myShare).toBe(LIMIT / 2);
    expect(floodRate.body.data.rateLimit.myUsed).toBeGreaterThan(LIMIT / 2);
    expect(floodRate.body.data.rateLimit.myUsed).toBeLessThanOrEqual(LIMIT - RESERVE);
    expect(calmRate.body.data.rateLimit.myUsed).toBeGreaterThan(0);
    expect(calmRate.body.data.rateLimit.myUsed).toBeLessThanOrEqual(calmSids.length);
    expect(floodRate.body.data.rateLimit.myUsed + calmRate.body.data.rateLimit.myUsed).toBe(sim.countRequests());

    // The flooding key is still refused, the other one still served.
    const again = await gw.gql(CALL, { sid: randomSid() }, as(FLOOD));
    expect(again.body.errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
    const [more] = finished(sim, 9).slice(8);
    const served = await gw.gql(CALL, { sid: more }, as(CALM));
    expect(served.body.data.call.sid).toBe(more);
  });

  it('a key asking for 1,000 numbers spends no more than the share and unreserved rest of the window', async () => {
    const own = await startGateway(ENV);
    const sim = own.simulator!;
    sim.resetRequests();
    const numbers = Array.from({ length: 1000 }, (_, i) => `+9198${String(10_000_000 + i)}`);
    const flood = await own.gql('query($n: [String!]!) { numbersMetadata(numbers: $n) { phoneNumber } }', { n: numbers }, as(FLOOD));
    const limited = ((flood.body.errors ?? []) as Slot[]).filter((e) => e.extensions?.code === 'RATE_LIMITED');
    expect(sim.countRequests({ endpoint: 'numbers.get' })).toBeLessThanOrEqual(LIMIT - RESERVE);
    expect(limited.length).toBeGreaterThanOrEqual(1000 - (LIMIT - RESERVE));
    // The reserve is still there for the other key.
    const calm = await own.gql('query($n: String!) { numberMetadata(number: $n) { phoneNumber } }', { n: '+919876500001' }, as(CALM));
    expect(calm.body.errors).toBeUndefined();
    await own.stop();
  });

  it('30 callStatusChanged subscriptions on one unknown Sid cost one request, then none', async () => {
    const own = await startGateway(ENV);
    const sim = own.simulator!;
    sim.resetRequests();
    const client = wsClient(own.wsUrl, as(CALM));
    const unknown = randomSid();
    const query = 'subscription($sid: ID!) { callStatusChanged(sid: $sid) { status } }';
    const subs = Array.from({ length: 30 }, () => record(client, query, { sid: unknown }, 'callStatusChanged'));
    const outcomes = await Promise.allSettled(subs.map((s) => s.done));
    for (const o of outcomes) {
      expect(o.status).toBe('rejected');
      expect(JSON.stringify((o as PromiseRejectedResult).reason)).toContain('NOT_FOUND');
    }
    expect(sim.countRequests()).toBe(1);
    // Remembered: asking again (query or subscription) costs nothing.
    const again = record(client, query, { sid: unknown }, 'callStatusChanged');
    await expect(again.done).rejects.toBeDefined();
    expect((await own.gql(CALL, { sid: unknown }, as(CALM))).body.data.call).toBeNull();
    expect(sim.countRequests()).toBe(1);
    await client.dispose();
    await own.stop();
  });
});
