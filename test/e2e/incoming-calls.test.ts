/**
 * Incoming calls end to end: the simulator plays a call through a flow (Passthru at the start, Connect
 * applet, Passthru at the end with DialCallStatus) into the real gateway over real HTTP, and real
 * graphql-ws clients watch `incomingCalls`, `callEvents` and `callStatusChanged`. The whole file runs
 * with the process in New York time: Exotel's zone-less dates must still be read as IST.
 */
process.env.TZ = 'America/New_York';

import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Client } from 'graphql-ws';
import { Redis } from 'ioredis';
import { createMemoryStorage } from '../../src/storage/memory.js';
import type { Storage } from '../../src/storage/types.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { redisOrSkip, testPrefix, TEST_REDIS_URL } from '../helpers/redis.js';
import { startStallProxy } from '../helpers/stall-proxy.js';
import { callbackUrlsOf, callCallback, post } from '../live/webhook-helpers.js';
import { record, wsClient, type Recorded } from '../live/ws-helpers.js';

const INCOMING = `subscription { incomingCalls { sid from to direction status flow { flowId } } }`;
const CALL_EVENTS = `subscription($after: ID) { callEvents(after: $after) { id callSid status source } }`;
const STATUS_CHANGED = `subscription($sid: ID!) { callStatusChanged(sid: $sid) { status source } }`;
const CALL = `query($sid: ID!) { call(sid: $sid) {
  sid from to direction status dateCreated startTime endTime
  flow { flowId tenantId dialWhomNumber agentEmail agentStatus digits callType dialCallStatus dialCallDurationSeconds eventType recordingAvailableBy
    legs { id number causeCode cause onCallDurationSeconds } }
} }`;

interface IncomingItem { sid: string; from: string; to: string; direction: string; status: string; flow: { flowId: string | null } | null }
interface EventItem { id: string; callSid: string; status: string; source: string }

let gw: TestGateway;
let ws: Client;
let incomingUrl: string;
let seq = 0;
const probeSid = () => `probe${process.pid}x${Date.now().toString(36)}x${++seq}`;

beforeAll(async () => {
  gw = await startGateway({ SIMULATOR_TIME_SCALE: '0.02', LIVE_POLL_INTERVAL_MS: '60000' });
  ws = wsClient(gw.wsUrl);
  incomingUrl = callbackUrlsOf(gw).incomingCall;
});
afterAll(async () => {
  await ws.dispose();
});

/** A Passthru request straight at the gateway (GET query string, as Exotel sends by default). */
async function passthru(query: string, method: 'GET' | 'POST' = 'GET', url = incomingUrl): Promise<{ status: number; text: string }> {
  const res = await fetch(`${url}?${query}`, { method });
  return { status: res.status, text: await res.text() };
}

/** Starts an incoming call in the simulator over its admin route; answers the call's Sid. */
async function simulateIncoming(sim: { url: string }, body: Record<string, unknown>): Promise<string> {
  const res = await fetch(`${sim.url}/__sim/incoming-calls`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = (await res.json()) as { incomingCall: { sid: string } };
  expect(res.status).toBe(201);
  return json.incomingCall.sid;
}

/** Waits (over the simulator's admin route) until the call's flow has sent every request. */
async function flowDone(sim: { url: string }, sid: string): Promise<Array<{ step: string; method: string; outcome: number | string }>> {
  let requests: Array<{ step: string; method: string; outcome: number | string }> = [];
  await vi.waitFor(
    async () => {
      const json = (await (await fetch(`${sim.url}/__sim/incoming-calls/${sid}`)).json()) as { incomingCall: { done: boolean; requests: typeof requests } };
      requests = json.incomingCall.requests;
      expect(json.incomingCall.done).toBe(true);
    },
    { timeout: 15_000, interval: 20 },
  );
  return requests;
}

/** An incomingCalls subscription proven live: probe calls are announced until the subscriber sees one. */
async function liveIncoming(client: Client, url = incomingUrl): Promise<Recorded<IncomingItem>> {
  const sub = record<IncomingItem>(client, INCOMING, {}, 'incomingCalls');
  while (sub.items.length === 0) {
    expect((await passthru(`CallSid=${probeSid()}&CallFrom=09876543210&CallTo=08039591111&Direction=incoming`, 'GET', url)).status).toBe(200);
    await sub.until((all) => all.length > 0, 200).catch(() => undefined);
  }
  return sub;
}

/**
 * Two replicas on one storage, as in production: `a` with the simulator, `b` calling it. A request that
 * lands on `b` finds nothing of the call near at hand, only what the shared storage still holds.
 */
async function twoReplicas(env: Record<string, string>, storage?: Storage): Promise<{ a: TestGateway; b: TestGateway; stop: () => Promise<void> }> {
  const shared = { ...env, SIMULATOR_TIME_SCALE: '0.02', LIVE_POLL_INTERVAL_MS: '60000', WEBHOOK_SECRET: 'incoming-test-webhook-secret' };
  const deps = storage ? { storage } : {};
  const a = await startGateway(shared, {}, deps, { autoStop: false });
  const sim = a.simulator!;
  const b = await startGateway(
    { ...shared, EXOTEL_ACCOUNT_SID: sim.accountSid, EXOTEL_API_KEY: sim.apiKey, EXOTEL_API_TOKEN: sim.apiToken, EXOTEL_BASE_URL: sim.url, GATEWAY_ALLOW_OPEN: '1' },
    {},
    deps,
    { autoStop: false },
  );
  return {
    a,
    b,
    stop: async () => {
      await b.stop();
      await a.stop();
    },
  };
}

/**
 * A call the API placed into a flow (`Direction=outbound-api`) whose later request carries no `Direction`
 * and reaches a replica after the live call's short cache entry has expired: the missing field is unknown,
 * so the call stays the API's — read back with its direction and never announced as incoming. A request
 * without `Direction` of a call nothing knows more about is still announced, its direction unknown.
 */
async function apiCallWithoutDirectionLater({ a, b }: { a: TestGateway; b: TestGateway }): Promise<void> {
  const client = wsClient(b.wsUrl);
  try {
    const incoming = await liveIncoming(client, callbackUrlsOf(b).incomingCall);
    const sid = probeSid();
    const request = `CallSid=${sid}&CallFrom=09876543210&CallTo=08039591111&flow_id=228866&CallType=call-attempt`;
    expect(await passthru(`${request}&Direction=outbound-api`, 'GET', callbackUrlsOf(a).incomingCall)).toEqual({ status: 200, text: '' });
    await b.storage.cache.delete(`${b.exotel.accountSid}:call:${sid}`);
    expect(await passthru(`${request}&DialWhomNumber=%2B919800000011`, 'GET', callbackUrlsOf(b).incomingCall)).toEqual({ status: 200, text: '' });

    const barrier = probeSid();
    expect((await passthru(`CallSid=${barrier}&CallFrom=09876543210&CallTo=08039591111`, 'GET', callbackUrlsOf(b).incomingCall)).status).toBe(200);
    const seen = await incoming.until((all) => all.some((c) => c.sid === barrier));
    incoming.dispose();
    expect(seen.filter((c) => c.sid === sid)).toEqual([]);
    expect(seen.find((c) => c.sid === barrier)).toMatchObject({ direction: null, status: 'IN_PROGRESS' });

    const { body } = await b.gql(CALL, { sid });
    expect(body.errors).toBeUndefined();
    expect(body.data.call).toMatchObject({ sid, direction: 'OUTBOUND_API', status: 'IN_PROGRESS', flow: { flowId: '228866', dialWhomNumber: '+919800000011' } });
  } finally {
    await client.dispose();
  }
}

/**
 * Which calls are announced, over two replicas on one storage (subscribed on `b`): what Passthru says of
 * the direction (`incoming`, `inbound`: yes; `outbound-dial`: no); a call the API placed, whose request
 * leaves Direction out on a replica that has not cached it (no); a call announced by a request without
 * Direction that a status callback then says is outgoing (announced that once, then read back outgoing);
 * and the same request sent to both replicas at once (announced once).
 */
async function whichCallsAreAnnounced({ a, b }: { a: TestGateway; b: TestGateway }): Promise<void> {
  const client = wsClient(b.wsUrl);
  const at = { a: callbackUrlsOf(a).incomingCall, b: callbackUrlsOf(b).incomingCall };
  const ok = { status: 200, text: '' };
  try {
    const incoming = await liveIncoming(client, at.b);
    const caller = 'CallFrom=09876543210&CallTo=08039591111&flow_id=228866';
    const said = { incoming: probeSid(), inbound: probeSid(), outboundDial: probeSid() };
    expect(await passthru(`CallSid=${said.incoming}&${caller}&Direction=incoming`, 'GET', at.a)).toEqual(ok);
    expect(await passthru(`CallSid=${said.inbound}&${caller}&Direction=inbound`, 'GET', at.a)).toEqual(ok);
    expect(await passthru(`CallSid=${said.outboundDial}&${caller}&Direction=outbound-dial&CallType=call-attempt`, 'GET', at.a)).toEqual(ok);

    // Placed by the API (which stores its first status), its cached call gone before the flow's request.
    const placed = await a.gql(`mutation($input: ConnectCallToFlowInput!) { connectCallToFlow(input: $input) { call { sid direction } } }`, {
      input: { from: '+919876543217', callerId: '08039591111', flowId: '228866' },
    });
    expect(placed.body.errors).toBeUndefined();
    const api = placed.body.data.connectCallToFlow.call.sid as string;
    await b.storage.cache.delete(`${b.exotel.accountSid}:call:${api}`);
    expect(await passthru(`CallSid=${api}&CallFrom=08039591111&CallTo=09876543217&flow_id=228866&CallType=call-attempt`, 'GET', at.b)).toEqual(ok);

    // Nothing says which way it goes until its status callbacks say outbound-api.
    const later = probeSid();
    expect(await passthru(`CallSid=${later}&${caller}&CallType=call-attempt`, 'GET', at.a)).toEqual(ok);
    await incoming.until((all) => all.some((c) => c.sid === later));
    for (const status of ['in-progress', 'completed']) {
      expect(await post(callbackUrlsOf(b).callStatus, callCallback(later, status, { Direction: 'outbound-api' }))).toEqual({ status: 200, text: 'OK' });
    }
    expect(await passthru(`CallSid=${later}&${caller}&CallType=completed&DialCallStatus=completed`, 'GET', at.b)).toEqual(ok);

    // Exotel's request and a copy of it, each sent to both replicas at once.
    const raced = { unknown: probeSid(), incoming: probeSid() };
    const race = (sid: string, extra: string) => Array.from({ length: 4 }, (_, i) => passthru(`CallSid=${sid}&${caller}${extra}`, 'GET', i % 2 ? at.a : at.b));
    const answers = await Promise.all([...race(raced.unknown, ''), ...race(raced.incoming, '&Direction=incoming')]);
    expect(answers).toEqual(Array.from({ length: 8 }, () => ok));

    const barrier = probeSid();
    expect(await passthru(`CallSid=${barrier}&${caller}`, 'GET', at.a)).toEqual(ok);
    const seen = await incoming.until((all) => all.some((c) => c.sid === barrier));
    incoming.dispose();
    const announced = (sid: string) => seen.filter((c) => c.sid === sid).map((c) => c.direction);
    expect(announced(said.incoming)).toEqual(['INBOUND']);
    expect(announced(said.inbound)).toEqual(['INBOUND']);
    expect(announced(said.outboundDial)).toEqual([]);
    expect(announced(api)).toEqual([]);
    expect(announced(later)).toEqual([null]);
    expect(announced(raced.unknown)).toEqual([null]);
    expect(announced(raced.incoming)).toEqual(['INBOUND']);
    for (const [sid, direction] of [[api, 'OUTBOUND_API'], [later, 'OUTBOUND_API'], [said.inbound, 'INBOUND']] as const) {
      const { body } = await b.gql(CALL, { sid });
      expect(body.errors).toBeUndefined();
      expect({ sid, direction: body.data.call.direction }).toEqual({ sid, direction });
    }
  } finally {
    await client.dispose();
  }
}

/** The instant of an IST wall-clock "YYYY-MM-DD HH:mm:ss", computed without the process's zone. */
const istInstant = (wall: string) => Date.UTC(+wall.slice(0, 4), +wall.slice(5, 7) - 1, +wall.slice(8, 10), +wall.slice(11, 13), +wall.slice(14, 16), +wall.slice(17, 19)) - 330 * 60_000;

describe('incoming calls through a flow (process TZ=America/New_York)', () => {
  it('runs in New York time, so a date read in the local zone would be wrong', () => {
    expect(new Date(Date.UTC(2022, 1, 23, 12)).getTimezoneOffset()).toBe(300);
  });

  it.each([
    ['answered', 'COMPLETED', 'completed', 'busy', 6, 'NORMAL_CLEARING'],
    ['caller-hung-up', 'CANCELED', 'client-hangup', 'free', 0, 'ORIGINATOR_CANCEL'],
    ['unanswered', 'NO_ANSWER', 'incomplete', 'free', 0, 'NO_ANSWER'],
  ] as const)('%s: a screen pop on incomingCalls, IN_PROGRESS then %s on callEvents and callStatusChanged, each once', async (outcome, status, callType, agentStatus, talk, causeCode) => {
    const sim = gw.simulator!;
    const after = (await gw.storage.events.lastId()) ?? '0-0';
    const events = record<EventItem>(ws, CALL_EVENTS, { after }, 'callEvents');
    const incoming = await liveIncoming(ws);

    const sid = await simulateIncoming(sim, { outcome, agent: '+919800000011', agentEmail: 'asha@example.com', digits: '2' });
    // The screen pop: the announced call, then its status from there on.
    const [popped] = (await incoming.until((all) => all.some((c) => c.sid === sid))).filter((c) => c.sid === sid);
    expect(popped).toEqual({ sid, from: '09876543210', to: '08039591111', direction: 'INBOUND', status: 'IN_PROGRESS', flow: { flowId: '228866' } });
    const watch = record<{ status: string; source: string }>(ws, STATUS_CHANGED, { sid }, 'callStatusChanged');
    const watched = await watch.done;
    expect(watched.at(-1)).toEqual({ status, source: 'WEBHOOK' });
    expect(watched.map((e) => e.status).filter((s) => s !== 'IN_PROGRESS')).toEqual([status]);

    // Every request of the flow was answered 200, GET by default.
    expect(await flowDone(sim, sid)).toEqual([
      expect.objectContaining({ step: 'start', method: 'GET', outcome: 200 }),
      expect.objectContaining({ step: 'connect', method: 'GET', outcome: 200 }),
      expect.objectContaining({ step: 'end', method: 'GET', outcome: 200 }),
    ]);
    // A barrier call: once its announcement is seen, everything about `sid` has been delivered.
    const barrier = probeSid();
    await passthru(`CallSid=${barrier}&CallFrom=09876543210&CallTo=08039591111`);
    await events.until((all) => all.some((e) => e.callSid === barrier));
    await incoming.until((all) => all.some((c) => c.sid === barrier));
    events.dispose();
    incoming.dispose();
    expect(events.items.filter((e) => e.callSid === sid).map((e) => [e.status, e.source])).toEqual([
      ['IN_PROGRESS', 'WEBHOOK'],
      [status, 'WEBHOOK'],
    ]);
    expect(incoming.items.filter((c) => c.sid === sid)).toHaveLength(1);

    // The call as a query sees it: the flow's facts merged over three requests, dates in IST.
    const wire = sim.calls.get(sid)!;
    const { body } = await gw.gql(CALL, { sid });
    expect(body.errors).toBeUndefined();
    const call = body.data.call;
    expect(call).toMatchObject({ sid, from: '09876543210', to: '08039591111', direction: 'INBOUND', status });
    expect(call.dateCreated).toBe(`${wire.DateCreated.replace(' ', 'T')}+05:30`);
    expect(Date.parse(call.dateCreated)).toBe(istInstant(wire.DateCreated));
    expect(call.endTime).not.toBeNull();
    expect(call.flow).toEqual({
      flowId: '228866',
      tenantId: '67890',
      // Sent with an unencoded "+" in the connect request only: restored, and kept through the end request.
      dialWhomNumber: '+919800000011',
      agentEmail: 'asha@example.com',
      // The agent's state, not the call's: an answered call stays COMPLETED with a busy agent.
      agentStatus,
      digits: '2',
      callType,
      dialCallStatus: status,
      dialCallDurationSeconds: talk,
      eventType: 'Dial',
      // The epoch-zero placeholder is "not set".
      recordingAvailableBy: null,
      // The agent's leg as the end request gave it (its "+" also sent unencoded).
      legs: [{ id: 1, number: '+919800000011', causeCode, cause: expect.any(String), onCallDurationSeconds: talk }],
    });
  });

  it('POST works as well as GET, and a busy agent line is BUSY', async () => {
    const sim = gw.simulator!;
    const sid = await simulateIncoming(sim, { outcome: 'busy', method: 'POST' });
    const requests = await flowDone(sim, sid);
    expect(requests.map((r) => [r.step, r.method, r.outcome])).toEqual([
      ['start', 'POST', 200],
      ['connect', 'POST', 200],
      ['end', 'POST', 200],
    ]);
    const history = await gw.storage.events.callHistory(gw.exotel.accountSid, sid);
    expect(history.filter((e) => e.forward).map((e) => e.status)).toEqual(['IN_PROGRESS', 'BUSY']);
  });
});

describe('Passthru requests straight from Exotel', () => {
  const base = (sid: string) =>
    `CallSid=${sid}&CallFrom=09876543210&CallTo=08039591111&Direction=incoming&Created=Wed,%2023%20Feb%202022%2012:31:59` +
    `&StartTime=2022-02-23%2012:32:02&EndTime=1970-01-01%2005:30:00&flow_id=228866&tenant_id=67890&ForwardedFrom=null&ProcessStatus=null`;

  it('reads zone-less dates as IST, "null" as empty and keeps what a later request leaves out', async () => {
    const sid = `0f5a7c1e2b3d4a5968778695a4b3189g`;
    expect(await passthru(`${base(sid)}&CallType=call-attempt&CurrentTime=2022-02-23%2012:32:02`)).toEqual({ status: 200, text: '' });
    expect(await passthru(`${base(sid)}&CallType=call-attempt&DialWhomNumber=+919800000022&AgentEmail=ravi@example.com&Status=busy&digits=%223%22`)).toEqual({ status: 200, text: '' });
    // The end: no DialWhomNumber; the agent is busy, which is not the call's status.
    const end = `${base(sid)}&CallType=completed&DialCallStatus=completed&DialCallDuration=42&Status=busy&CurrentTime=2022-02-23%2012:35:10` +
      `&Legs[0][Number]=+919800000022&Legs[0][Type]=single&Legs[0][OnCallDuration]=42&Legs[0][CauseCode]=NORMAL_CLEARING&Legs[0][Cause]=16`;
    expect(await passthru(end, 'POST')).toEqual({ status: 200, text: '' });

    const history = await gw.storage.events.callHistory(gw.exotel.accountSid, sid);
    expect(history.map((e) => [e.status, e.forward, e.at])).toEqual([
      ['IN_PROGRESS', true, '2022-02-23T12:32:02+05:30'],
      ['IN_PROGRESS', false, '2022-02-23T12:32:02+05:30'],
      ['COMPLETED', true, '2022-02-23T12:35:10+05:30'],
    ]);
    const { body } = await gw.gql(CALL, { sid });
    expect(body.data.call).toMatchObject({
      status: 'COMPLETED',
      dateCreated: '2022-02-23T12:31:59+05:30',
      startTime: '2022-02-23T12:32:02+05:30',
      endTime: '2022-02-23T12:35:10+05:30',
      flow: {
        dialWhomNumber: '+919800000022', agentEmail: 'ravi@example.com', agentStatus: 'busy', digits: '3', callType: 'completed', dialCallStatus: 'COMPLETED', dialCallDurationSeconds: 42,
        legs: [{ id: 1, number: '+919800000022', causeCode: 'NORMAL_CLEARING', cause: '16', onCallDurationSeconds: 42 }],
      },
    });
  });

  it('accepts unknown extra parameters', async () => {
    const sid = '1a2b3c4d5e6f708192a3b4c5d6e7f1au';
    const res = await passthru(`${base(sid)}&SomethingNew=1&Legs[0][Whatever]=x&answer_by=machine&CallType=call-attempt`);
    expect(res).toEqual({ status: 200, text: '' });
    expect((await gw.storage.events.callHistory(gw.exotel.accountSid, sid)).map((e) => e.status)).toEqual(['IN_PROGRESS']);
  });

  it('reads a POSTed form with hundreds of parameters (every leg of a long Connect applet), up to the 64 KiB body limit', async () => {
    const form = (sid: string, padding = 0) => {
      const legs = Array.from({ length: 10 }, (_, i) => {
        const known = { Id: i + 1, Number: `+9198000000${10 + i}`, Type: 'single', OnCallDuration: i, CallerId: '08039591111', CauseCode: 'NORMAL_CLEARING', Cause: 16, Status: 'completed' };
        // Parameters a leg may carry that the gateway does not read.
        const more = Object.fromEntries(Array.from({ length: 24 }, (_, k) => [`Extra${k}`, `v${k}`]));
        return Object.entries({ ...known, ...more }).map(([k, v]) => `Legs[${i}][${k}]=${encodeURIComponent(String(v))}`);
      }).flat();
      // Empty parameters fill the body up to the limit: as many parameters as it can hold.
      return `${base(sid)}&CallType=completed&DialCallStatus=completed&${legs.join('&')}${'&'.repeat(padding)}`;
    };
    const post = async (body: string) => {
      const res = await fetch(incomingUrl, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
      return { status: res.status, text: await res.text() };
    };
    const sids = ['2a2b3c4d5e6f708192a3b4c5d6e7f1au', '3a2b3c4d5e6f708192a3b4c5d6e7f1au'];
    const small = form(sids[0]!);
    expect(small.split('&').length).toBeGreaterThan(300);
    const full = form(sids[1]!, 64 * 1024 - form(sids[1]!).length);
    expect(Buffer.byteLength(full)).toBe(64 * 1024);
    for (const [sid, body] of [[sids[0]!, small], [sids[1]!, full]] as const) {
      expect(await post(body)).toEqual({ status: 200, text: '' });
      const { body: read } = await gw.gql(CALL, { sid });
      expect(read.errors).toBeUndefined();
      expect(read.data.call.status).toBe('COMPLETED');
      expect(read.data.call.flow.legs).toHaveLength(10);
      expect(read.data.call.flow.legs[9]).toEqual({ id: 10, number: '+919800000019', causeCode: 'NORMAL_CLEARING', cause: '16', onCallDurationSeconds: 9 });
    }
    // One byte over the limit is still refused.
    expect((await post(`${full}&`)).status).toBe(413);
  });

  it('reads every leg of a Connect applet that dialled twelve agents, in index order whatever the order of the parameters', async () => {
    const sid = '4a2b3c4d5e6f708192a3b4c5d6e7f1au';
    // No Id: a leg's id is its index + 1. Legs 10 and 11 come first, as nothing promises the order.
    const legs = [10, 11, ...Array.from({ length: 10 }, (_, i) => i)]
      .map((i) => `&Legs[${i}][Number]=%2B91980000${1000 + i}&Legs[${i}][Type]=single&Legs[${i}][OnCallDuration]=${i}&Legs[${i}][CauseCode]=NO_ANSWER&Legs[${i}][Cause]=19`)
      .join('');
    expect(await passthru(`${base(sid)}&CallType=completed&DialCallStatus=no-answer${legs}`)).toEqual({ status: 200, text: '' });
    const { body } = await gw.gql(CALL, { sid });
    expect(body.errors).toBeUndefined();
    expect(body.data.call.flow.legs).toEqual(
      Array.from({ length: 12 }, (_, i) => ({ id: i + 1, number: `+91980000${1000 + i}`, causeCode: 'NO_ANSWER', cause: '19', onCallDurationSeconds: i })),
    );
  });

  it("leaves a number beyond GraphQL's Int empty (a leg's id its index + 1) rather than failing the query", async () => {
    const sid = '5a2b3c4d5e6f708192a3b4c5d6e7f1au';
    const huge = '99999999999';
    const query = `${base(sid)}&CallType=completed&DialCallStatus=completed&DialCallDuration=${huge}&Legs[0][Id]=${huge}&Legs[0][Number]=%2B919800000031&Legs[0][OnCallDuration]=${huge}&Legs[1][Id]=-${huge}&Legs[1][OnCallDuration]=7`;
    expect(await passthru(query)).toEqual({ status: 200, text: '' });
    const { body } = await gw.gql(CALL, { sid });
    expect(body.errors).toBeUndefined();
    expect(body.data.call.flow.dialCallDurationSeconds).toBeNull();
    expect(body.data.call.flow.legs).toEqual([
      { id: 1, number: '+919800000031', causeCode: null, cause: null, onCallDurationSeconds: null },
      { id: 2, number: null, causeCode: null, cause: null, onCallDurationSeconds: 7 },
    ]);
  });

  it('answers 400 to a malformed CallSid and stores nothing', async () => {
    const before = await gw.storage.events.lastId();
    for (const sid of ['-1', 'ab%20cd', 'a.b', '', 'null']) {
      const res = await passthru(`${base(sid)}&CallType=completed&DialCallStatus=completed`);
      expect(res.status).toBe(400);
      expect(res.text).toMatch(/^Bad Request: CallSid is (not a valid Sid|missing)$/);
    }
    expect(await gw.storage.events.lastId()).toBe(before);
  });
});

describe('which calls are announced', () => {
  it('over two replicas on memory storage', async () => {
    const replicas = await twoReplicas({}, createMemoryStorage());
    try {
      await whichCallsAreAnnounced(replicas);
    } finally {
      await replicas.stop();
    }
  });
});

describe('a call the API placed into a flow', () => {
  it('keeps its direction when a later request leaves Direction out, its cached call gone, and is never announced', async () => {
    const replicas = await twoReplicas({}, createMemoryStorage());
    try {
      await apiCallWithoutDirectionLater(replicas);
    } finally {
      await replicas.stop();
    }
  });

  // Exotel's Passthru documents two directions, `incoming` and `outbound-dial`: an outgoing call that runs
  // through a flow (one the API placed there, or one a flow dialled) says `outbound-dial`.
  it('is never announced when its flow says Direction=outbound-dial, nor is a call a flow dialled out, and keeps OUTBOUND_API', async () => {
    const incoming = await liveIncoming(ws);
    const placed = await gw.gql(`mutation($input: ConnectCallToFlowInput!) { connectCallToFlow(input: $input) { call { sid direction } } }`, {
      input: { from: '+919876543215', callerId: '08039591111', flowId: '223377' },
    });
    expect(placed.body.errors).toBeUndefined();
    const sid = placed.body.data.connectCallToFlow.call.sid as string;
    expect(await passthru(`CallSid=${sid}&CallFrom=08039591111&CallTo=09876543215&Direction=outbound-dial&flow_id=223377&CallType=call-attempt`)).toEqual({ status: 200, text: '' });
    const dialled = probeSid();
    expect(await passthru(`CallSid=${dialled}&CallFrom=08039591111&CallTo=09876543216&Direction=outbound-dial&flow_id=223378&CallType=call-attempt`)).toEqual({ status: 200, text: '' });

    const barrier = probeSid();
    expect((await passthru(`CallSid=${barrier}&CallFrom=09876543210&CallTo=08039591111&Direction=incoming`)).status).toBe(200);
    const seen = await incoming.until((all) => all.some((c) => c.sid === barrier));
    incoming.dispose();
    expect(seen.filter((c) => c.sid === sid || c.sid === dialled)).toEqual([]);
    const api = await gw.gql(CALL, { sid });
    expect(api.body.data.call).toMatchObject({ sid, direction: 'OUTBOUND_API', flow: { flowId: '223377' } });
    expect((await gw.storage.events.callHistory(gw.exotel.accountSid, dialled)).map((e) => [e.kind, e.status])).toEqual([['call', 'IN_PROGRESS']]);
  });

  it('a call a flow dialled out stays outgoing when a later request, on a replica that holds nothing of it, leaves Direction out', async () => {
    const { a, b, stop } = await twoReplicas({}, createMemoryStorage());
    const client = wsClient(b.wsUrl);
    try {
      const incoming = await liveIncoming(client, callbackUrlsOf(b).incomingCall);
      const dialled = probeSid();
      const request = `CallSid=${dialled}&CallFrom=08039591111&CallTo=09876543216&flow_id=223378`;
      expect(await passthru(`${request}&Direction=outbound-dial&CallType=call-attempt`, 'GET', callbackUrlsOf(a).incomingCall)).toEqual({ status: 200, text: '' });
      // The live call's short cache entry gone: only the event log still says which way the call went.
      await b.storage.cache.delete(`${b.exotel.accountSid}:call:${dialled}`);
      expect(await passthru(`${request}&CallType=completed&DialCallStatus=completed`, 'GET', callbackUrlsOf(b).incomingCall)).toEqual({ status: 200, text: '' });

      const barrier = probeSid();
      expect((await passthru(`CallSid=${barrier}&CallFrom=09876543210&CallTo=08039591111`, 'GET', callbackUrlsOf(b).incomingCall)).status).toBe(200);
      const seen = await incoming.until((all) => all.some((c) => c.sid === barrier));
      incoming.dispose();
      expect(seen.filter((c) => c.sid === dialled)).toEqual([]);
      const { body } = await b.gql(CALL, { sid: dialled });
      expect(body.errors).toBeUndefined();
      expect(body.data.call).toMatchObject({ sid: dialled, direction: 'OUTBOUND_DIAL', status: 'COMPLETED' });
    } finally {
      await client.dispose();
      await stop();
    }
  });
});

describe('an incoming call whose end request never came', () => {
  it('is finished by the reconciler from call details (source POLL), its flow kept', async () => {
    // Calls run 2000× faster here, so the reconciler's due time for an unknown call comes within seconds.
    const g = await startGateway({ SIMULATOR_TIME_SCALE: '0.0005', LIVE_POLL_INTERVAL_MS: '50', RECONCILE_GRACE_SECONDS: '0' });
    const client = wsClient(g.wsUrl);
    try {
      const after = (await g.storage.events.lastId()) ?? '0-0';
      const events = record<EventItem>(client, CALL_EVENTS, { after }, 'callEvents');
      const sid = await simulateIncoming(g.simulator!, { outcome: 'unanswered', endRequest: false, agent: '+919800000033' });
      const requests = await flowDone(g.simulator!, sid);
      expect(requests.map((r) => [r.step, r.outcome])).toEqual([
        ['start', 200],
        ['connect', 200],
        ['end', 'skipped'],
      ]);
      const seen = await events.until((all) => all.some((e) => e.callSid === sid && e.status === 'NO_ANSWER'), 20_000);
      events.dispose();
      expect(seen.filter((e) => e.callSid === sid).map((e) => [e.status, e.source])).toEqual([
        ['IN_PROGRESS', 'WEBHOOK'],
        ['NO_ANSWER', 'POLL'],
      ]);
      const { body } = await g.gql(CALL, { sid });
      expect(body.data.call).toMatchObject({ status: 'NO_ANSWER', flow: { dialWhomNumber: '+919800000033', dialCallStatus: null } });
    } finally {
      await client.dispose();
      await g.stop();
    }
  });
});

/**
 * Replica A takes the flow's requests; replica B shares its storage but has never cached the call, so it
 * fetches it from Exotel (A's simulator), whose call details know nothing of flows: only the log does.
 */
describe('a call known only from call details', () => {
  const storage = createMemoryStorage();
  let replicas: Awaited<ReturnType<typeof twoReplicas>>;
  beforeAll(async () => {
    replicas = await twoReplicas({}, storage);
  });
  afterAll(() => replicas.stop());

  it('still shows its flow, from the event log', async () => {
    const { a, b } = replicas;
    const sim = a.simulator!;
    const sid = await simulateIncoming(sim, { outcome: 'answered', agent: '+919800000055' });
    await flowDone(sim, sid);
    await storage.cache.delete(`${sim.accountSid}:call:${sid}`);
    const before = sim.countRequests({ endpoint: 'calls.get' });
    const { body } = await b.gql(CALL, { sid });
    expect(body.errors).toBeUndefined();
    expect(body.data.call).toMatchObject({ status: 'COMPLETED', flow: { dialWhomNumber: '+919800000055', dialCallStatus: 'COMPLETED', legs: [{ number: '+919800000055' }] } });
    expect(sim.countRequests({ endpoint: 'calls.get' })).toBeGreaterThan(before);
  });

  it('a call the API placed into a flow (connectCallToFlow, Direction=outbound-api) shows its flow too', async () => {
    const { a, b } = replicas;
    const sim = a.simulator!;
    const placed = await a.gql(`mutation($input: ConnectCallToFlowInput!) { connectCallToFlow(input: $input) { call { sid direction } } }`, {
      input: { from: '+919876543214', callerId: '08039591111', flowId: '223344' },
    });
    expect(placed.body.errors).toBeUndefined();
    const { sid, direction } = placed.body.data.connectCallToFlow.call as { sid: string; direction: string };
    expect(direction).toBe('OUTBOUND_API');
    const request = `CallSid=${sid}&CallFrom=09876543214&CallTo=08039591111&Direction=outbound-api&flow_id=223344&CallType=call-attempt&DialWhomNumber=%2B919800000066`;
    expect(await passthru(request, 'GET', callbackUrlsOf(a).incomingCall)).toEqual({ status: 200, text: '' });
    await storage.cache.delete(`${sim.accountSid}:call:${sid}`);
    const before = sim.countRequests({ endpoint: 'calls.get' });
    const { body } = await b.gql(CALL, { sid });
    expect(body.errors).toBeUndefined();
    expect(body.data.call).toMatchObject({ sid, direction: 'OUTBOUND_API', flow: { flowId: '223344', dialWhomNumber: '+919800000066' } });
    expect(sim.countRequests({ endpoint: 'calls.get' })).toBeGreaterThan(before);
  });
});

describe('the simulator\'s incoming-call route', () => {
  it('refuses a bad start request with a reason, and a start with nowhere to send requests', async () => {
    const start = (url: string, body: unknown) =>
      fetch(`${url}/__sim/incoming-calls`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then(async (r) => ({ status: r.status, body: (await r.json()) as { RestException: { Message: string } } }));
    const bad = await start(gw.simulator!.url, { outcome: 'exploded' });
    expect(bad.status).toBe(400);
    expect(bad.body.RestException.Message).toContain('outcome must be one of answered, caller-hung-up, unanswered, busy, failed');
    expect((await start(gw.simulator!.url, { outcom: 'busy' })).body.RestException.Message).toContain('unknown field(s) outcom');

    const { createSimulator } = await import('../../src/simulator/index.js');
    const lone = await createSimulator({ port: 0, seed: false, log: () => undefined });
    try {
      const nowhere = await start(lone.url, { outcome: 'answered' });
      expect(nowhere.status).toBe(409);
      expect(nowhere.body.RestException.Message).toContain('no Passthru URL');
      expect(lone.calls.list()).toEqual([]);
    } finally {
      await lone.stop();
    }
  });
});

const redisUp = await redisOrSkip();

describe.skipIf(!redisUp)('incoming calls on Redis storage', () => {
  const prefix = testPrefix('incoming');
  afterAll(async () => {
    const redis = new Redis(TEST_REDIS_URL);
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });

  it('announces once, publishes IN_PROGRESS then the outcome once, and keeps the flow', async () => {
    const g = await startGateway({ REDIS_URL: TEST_REDIS_URL, REDIS_KEY_PREFIX: prefix, SIMULATOR_TIME_SCALE: '0.02', LIVE_POLL_INTERVAL_MS: '60000' });
    const client = wsClient(g.wsUrl);
    try {
      const url = callbackUrlsOf(g).incomingCall;
      const events = record<EventItem>(client, CALL_EVENTS, { after: (await g.storage.events.lastId()) ?? '0-0' }, 'callEvents');
      const incoming = record<IncomingItem>(client, INCOMING, {}, 'incomingCalls');
      while (incoming.items.length === 0) {
        expect((await passthru(`CallSid=${probeSid()}&CallFrom=09876543210&CallTo=08039591111`, 'GET', url)).status).toBe(200);
        await incoming.until((all) => all.length > 0, 200).catch(() => undefined);
      }
      const sid = await simulateIncoming(g.simulator!, { outcome: 'caller-hung-up', agent: '+919800000044' });
      await flowDone(g.simulator!, sid);
      const barrier = probeSid();
      await passthru(`CallSid=${barrier}&CallFrom=09876543210&CallTo=08039591111`, 'GET', url);
      await events.until((all) => all.some((e) => e.callSid === barrier));
      await incoming.until((all) => all.some((c) => c.sid === barrier));
      events.dispose();
      incoming.dispose();
      expect(events.items.filter((e) => e.callSid === sid).map((e) => e.status)).toEqual(['IN_PROGRESS', 'CANCELED']);
      expect(incoming.items.filter((c) => c.sid === sid)).toHaveLength(1);
      const { body } = await g.gql(CALL, { sid });
      expect(body.data.call).toMatchObject({ status: 'CANCELED', flow: { dialWhomNumber: '+919800000044', callType: 'client-hangup', dialCallStatus: 'CANCELED' } });
    } finally {
      await client.dispose();
      await g.stop();
    }
  });

  // Exotel never retries a Passthru, so an announcement left for a later step is lost with that step when
  // the flow sends no other request: it must be stored with the call event or not at all.
  it('announces a call whose only request names no direction, though Redis stops answering right after that request\'s call event is stored', async () => {
    const proxy = await startStallProxy(TEST_REDIS_URL);
    const g = await startGateway(
      { REDIS_URL: proxy.url, REDIS_KEY_PREFIX: prefix, REDIS_COMMAND_TIMEOUT_MS: '300', SIMULATOR_TIME_SCALE: '0.02', LIVE_POLL_INTERVAL_MS: '60000' },
      {},
      {},
      { autoStop: false },
    );
    const client = wsClient(g.wsUrl);
    try {
      const url = callbackUrlsOf(g).incomingCall;
      // Also loads the step's script, so the request below sends it by its sha only.
      const incoming = await liveIncoming(client, url);
      const sid = probeSid();
      proxy.stallAfter((sent) => sent.includes(sid) && sent.includes('"kind":"call"'));
      expect(await passthru(`CallSid=${sid}&CallFrom=09876543210&CallTo=08039591111&flow_id=228866&CallType=call-attempt`, 'GET', url)).toEqual({ status: 200, text: '' });
      expect(proxy.stalled()).toBe(true);
      proxy.release();

      let barrier = '';
      await vi.waitFor(
        async () => {
          barrier = probeSid();
          expect((await passthru(`CallSid=${barrier}&CallFrom=09876543210&CallTo=08039591111&Direction=incoming`, 'GET', url)).status).toBe(200);
          await incoming.until((all) => all.some((c) => c.sid === barrier), 300);
        },
        { timeout: 15_000, interval: 50 },
      );
      incoming.dispose();
      // The call event was stored before the stall; its announcement must have been stored with it.
      const history = await g.storage.events.callHistory(g.exotel.accountSid, sid);
      expect(history.map((e) => [e.status, e.forward])).toEqual([['IN_PROGRESS', true]]);
      expect(incoming.items.filter((c) => c.sid === sid)).toEqual([{ sid, from: '09876543210', to: '08039591111', direction: null, status: 'IN_PROGRESS', flow: { flowId: '228866' } }]);
    } finally {
      await client.dispose();
      await g.stop();
      await proxy.close();
    }
  });

  it('announces what is incoming, once, over two replicas', async () => {
    const replicas = await twoReplicas({ REDIS_URL: TEST_REDIS_URL, REDIS_KEY_PREFIX: prefix });
    try {
      await whichCallsAreAnnounced(replicas);
    } finally {
      await replicas.stop();
    }
  });

  it('keeps an API call\'s direction when a later request leaves Direction out, and never announces it', async () => {
    const replicas = await twoReplicas({ REDIS_URL: TEST_REDIS_URL, REDIS_KEY_PREFIX: prefix });
    try {
      await apiCallWithoutDirectionLater(replicas);
    } finally {
      await replicas.stop();
    }
  });
});
