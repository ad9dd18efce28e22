/**
 * Live call status end to end: the real gateway (simulator upstream), a real graphql-ws client, real
 * callbacks. Timings are shrunk through the public knobs (SIMULATOR_TIME_SCALE, LIVE_POLL_INTERVAL_MS,
 * RECONCILE_GRACE_SECONDS); assertions are about order, completeness and duplicates, never about speed.
 */
import { describe, expect, it, vi } from 'vitest';
import { callStatusRank, type CallStatus } from '../../src/exotel/types.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { callbackUrlsOf, callCallback, post } from '../live/webhook-helpers.js';
import { record, wsClientsPerTest } from '../live/ws-helpers.js';

const CONNECT = `mutation($input: ConnectCallInput!) { connectCall(input: $input) { call { sid status } } }`;
const STATUS_CHANGED = `subscription($sid: ID!) { callStatusChanged(sid: $sid) { id callSid status source at call { sid status } } }`;
const CALL_EVENTS = `subscription($filter: CallEventFilter, $after: ID) { callEvents(filter: $filter, after: $after) { id callSid status source } }`;

interface Ev {
  id: string;
  callSid: string;
  status: CallStatus;
  source: string;
  call?: { sid: string; status: CallStatus };
}

const newClient = wsClientsPerTest();
const client = (gw: TestGateway) => newClient(gw.wsUrl);

async function connectCall(gw: TestGateway, input: Record<string, unknown> = {}): Promise<string> {
  const { body } = await gw.gql(CONNECT, { input: { from: '09876543210', to: '+919812345670', callerId: '08039591111', ...input } });
  expect(body.errors).toBeUndefined();
  return body.data.connectCall.call.sid as string;
}

let sidSeq = 0;
const newSid = (tag: string) => `${tag}${process.pid}x${Date.now().toString(36)}x${++sidSeq}`;

describe('callStatusChanged', () => {
  it('sends SNAPSHOT first, then RINGING, IN_PROGRESS and COMPLETED in order, and completes', async () => {
    // The simulator holds the call at each phase until this test has seen what the gateway made of it,
    // so no phase can slip by between two polls however slow the machine is.
    const gw = await startGateway({ SIMULATOR_TIME_SCALE: '0.01', LIVE_POLL_INTERVAL_MS: '50' });
    const sim = gw.simulator!;
    sim.faults.holdCalls('queued');
    sim.faults.holdCalls('ringing');
    const sid = await connectCall(gw);
    const sub = record<Ev>(client(gw), STATUS_CHANGED, { sid }, 'callStatusChanged');
    const has = (status: CallStatus) => (items: Ev[]) => items.some((e) => e.status === status);

    // Subscribed while the call cannot ring yet: the snapshot is QUEUED and ringing must come later.
    await sub.until((items) => items.length >= 1);
    expect(sub.items[0]).toMatchObject({ source: 'SNAPSHOT', status: 'QUEUED', callSid: sid });
    sim.faults.releaseCalls({ at: 'queued' });
    await sub.until(has('RINGING'));
    // Ringing has no callback at Exotel: it can only have come from the live poller.
    expect(sub.items.find((e) => e.status === 'RINGING')!.source).toBe('POLL');

    // Hold the next phase before letting go of this one, so the call moves exactly one phase on.
    sim.faults.holdCalls('in-progress', { sid });
    sim.faults.releaseCalls({ at: 'ringing' });
    await sub.until(has('IN_PROGRESS'));
    expect(sim.calls.get(sid)!.Status).toBe('in-progress');
    sim.faults.releaseCalls({ sid });
    const events = await sub.done;

    expect(events.map((e) => [e.source === 'SNAPSHOT' ? 'SNAPSHOT' : 'LIVE', e.status])).toEqual([
      ['SNAPSHOT', 'QUEUED'],
      ['LIVE', 'RINGING'],
      ['LIVE', 'IN_PROGRESS'],
      ['LIVE', 'COMPLETED'],
    ]);
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
    for (const e of events) expect(e.callSid).toBe(sid);
    // The event's call is the cached call, updated by the same event.
    expect(events.at(-1)!.call).toEqual({ sid, status: 'COMPLETED' });
    // The poller spent background budget only on this call, one call-details request at a time.
    expect(sim.countRequests({ endpoint: 'calls.list' })).toBe(0);
  });

  it('completes right after the snapshot when the call has already ended', async () => {
    const gw = await startGateway({ SIMULATOR_TIME_SCALE: '0.02', LIVE_POLL_INTERVAL_MS: '50' });
    const sid = await connectCall(gw);
    await gw.simulator!.calls.waitFor(sid, (c) => c.Status === 'completed');
    // Wait until the terminal callback is in the log, so the snapshot must come from it.
    await vi_waitFor(async () => (await gw.storage.events.callHistory(gw.exotel.accountSid, sid)).some((e) => e.status === 'COMPLETED'));
    const events = await record<Ev>(client(gw), STATUS_CHANGED, { sid }, 'callStatusChanged').done;
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ source: 'SNAPSHOT', status: 'COMPLETED', callSid: sid });
  });

  it("gives each event its call's history as it is then, not as the first event of the subscription read it", async () => {
    // Real-time simulator and no polling: the events after the snapshot are the callbacks this test posts.
    const gw = await startGateway({ SIMULATOR_TIME_SCALE: '1', LIVE_POLL_INTERVAL_MS: '60000' });
    const sid = await connectCall(gw);
    const urls = callbackUrlsOf(gw);
    type WithHistory = { status: CallStatus; call: { events: Array<{ status: CallStatus }> } };
    const sub = record<WithHistory>(client(gw), 'subscription($sid: ID!) { callStatusChanged(sid: $sid) { status call { events { status } } } }', { sid }, 'callStatusChanged');
    await sub.until((items) => items.length === 1);
    // One callback at a time, each after the previous event was resolved.
    expect((await post(urls.callStatus, callCallback(sid, 'in-progress'))).status).toBe(200);
    await sub.until((items) => items.length === 2);
    expect((await post(urls.callStatus, callCallback(sid, 'completed'))).status).toBe(200);
    const events = await sub.done;
    expect(sub.error).toBeUndefined();
    expect(events.map((e) => e.status)).toEqual([events[0]!.status, 'IN_PROGRESS', 'COMPLETED']);
    // Each event's call carries the history up to that event.
    for (const e of events.slice(1)) expect(e.call.events.at(-1)!.status).toBe(e.status);
  });

  it('answers NOT_FOUND for a call Exotel does not know, and BAD_USER_INPUT for a malformed Sid', async () => {
    const gw = await startGateway({ LIVE_POLL_INTERVAL_MS: '50' });
    const unknown = record<Ev>(client(gw), STATUS_CHANGED, { sid: 'ffffffffffffffffffffffffffffffff' }, 'callStatusChanged');
    await expect(unknown.done).rejects.toBeDefined();
    expect(JSON.stringify(unknown.error)).toContain('NOT_FOUND');
    const bad = record<Ev>(client(gw), STATUS_CHANGED, { sid: '../../etc' }, 'callStatusChanged');
    await expect(bad.done).rejects.toBeDefined();
    expect(JSON.stringify(bad.error)).toContain('BAD_USER_INPUT');
  });
});

describe('the live poller is told of a subscribed call only once the call is known and still going', () => {
  it('marks neither a call Exotel does not know nor one whose snapshot is final: polling them would spend background budget for nothing', async () => {
    // The poller never runs here: what is asked of it is what the watched set holds.
    const gw = await startGateway({ LIVE_POLL_INTERVAL_MS: '3600000' });
    const watched = () => gw.storage.openItems.laterThan(`watched-calls:${gw.exotel.accountSid}`, 0, 100);
    const unknown = record<Ev>(client(gw), STATUS_CHANGED, { sid: 'ffffffffffffffffffffffffffffffff' }, 'callStatusChanged');
    await expect(unknown.done).rejects.toBeDefined();
    expect(JSON.stringify(unknown.error)).toContain('NOT_FOUND');

    const ended = await connectCall(gw);
    expect((await post(callbackUrlsOf(gw).callStatus, callCallback(ended, 'completed'))).status).toBe(200);
    const final = record<Ev>(client(gw), STATUS_CHANGED, { sid: ended }, 'callStatusChanged');
    expect((await final.done).map((e) => [e.source, e.status])).toEqual([['SNAPSHOT', 'COMPLETED']]);
    expect(await watched()).toEqual([]);

    // A call still going is marked.
    gw.simulator!.faults.holdCalls('queued');
    const live = await connectCall(gw);
    const going = record<Ev>(client(gw), STATUS_CHANGED, { sid: live }, 'callStatusChanged');
    await going.until((items) => items.length === 1);
    expect(await watched()).toEqual([live]);
    going.dispose();
  });
});

describe('reconciler', () => {
  it('finishes a call whose terminal callback was dropped, from call details (source POLL)', async () => {
    const gw = await startGateway({ SIMULATOR_TIME_SCALE: '0.02', LIVE_POLL_INTERVAL_MS: '50', RECONCILE_GRACE_SECONDS: '0' });
    const sim = gw.simulator!;
    sim.faults.dropCallbacks('all', { kind: 'call', eventType: 'terminal' });
    // callEvents does not mark the call watched, so the live poller stays out of it: only the reconciler
    // can produce the terminal event.
    const sub = record<Ev>(client(gw), CALL_EVENTS, { filter: { callSids: [] } }, 'callEvents');
    const sid = await connectCall(gw, { timeLimit: 10, timeOut: 10 });
    const filtered = () => sub.items.filter((e) => e.callSid === sid);
    await sub.until(() => filtered().some((e) => e.status === 'COMPLETED'));
    const terminal = filtered().find((e) => e.status === 'COMPLETED')!;
    expect(terminal.source).toBe('POLL');
    expect(sim.callbacks.some((c) => c.sid === sid && c.eventType === 'terminal' && c.outcome === 'dropped')).toBe(true);
    expect(sim.callbacks.some((c) => c.sid === sid && c.eventType === 'terminal' && c.outcome !== 'dropped')).toBe(false);
    // Exactly one terminal event for the call, and its cached state is final.
    expect(filtered().filter((e) => callStatusRank(e.status) === 3)).toHaveLength(1);
    const { body } = await gw.gql('query($sid: ID!) { call(sid: $sid) { status } }', { sid });
    expect(body.data.call.status).toBe('COMPLETED');
    // Counted for operators: one call recovered by the reconciler.
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/gateway_reconciler_recoveries_total\{kind="call"\} 1\b/);
  });
});

describe('reconciler: a call whose look keeps failing', () => {
  it('is let go once it has been in the open list longer than the give-up age, logged at warn and counted', async () => {
    // A give-up age of 1 ms stands for the day: the first failed look comes after it.
    const gw = await startGateway(
      { SIMULATOR_TIME_SCALE: '0.02', LIVE_POLL_INTERVAL_MS: '50', RECONCILE_GRACE_SECONDS: '0' },
      {},
      { liveTimings: { reconcileGiveUpMs: 1 } },
    );
    const sim = gw.simulator!;
    sim.faults.holdCalls('queued');
    sim.faults.inject({ kind: 'exotel-error', status: 400, message: 'Invalid call', count: 'all', endpoint: 'calls.get' });
    const sid = await connectCall(gw, { timeLimit: 10, timeOut: 10 });
    const metrics = async () => (await fetch(`${gw.url}/metrics`)).text();
    await vi.waitFor(async () => expect(await metrics()).toMatch(/^gateway_reconciler_given_up_total\{kind="call",reason="lookup-failing"\} 1$/m), { timeout: 15_000, interval: 50 });
    expect(gw.logs.filter((l) => l.callSid === sid && l.level === 'warn').map((l) => l.msg)).toEqual([
      'reconciler: looking this up has failed for a day since it entered the open list; no longer looking at it',
    ]);
    expect(sim.countRequests({ endpoint: 'calls.get' })).toBeGreaterThanOrEqual(1);
  });
});

describe('live poller: a call Exotel never finishes', () => {
  it('is no longer polled once it is older than the give-up age, logged once at info, and its subscription stays open', async () => {
    // A give-up age of 1 ms stands for the day: the first poll finds the call older than that.
    const gw = await startGateway({ SIMULATOR_TIME_SCALE: '0.02', LIVE_POLL_INTERVAL_MS: '50' }, {}, { liveTimings: { reconcileGiveUpMs: 1 } });
    gw.simulator!.faults.holdCalls('queued');
    const sid = await connectCall(gw);
    const sub = record<Ev>(client(gw), STATUS_CHANGED, { sid }, 'callStatusChanged');
    await sub.until((items) => items.length >= 1);
    const stopped = () => gw.logs.filter((l) => l.callSid === sid && String(l.msg).startsWith('live poller: the call is still unfinished a day on'));
    await vi.waitFor(() => expect(stopped()).toHaveLength(1), { timeout: 15_000, interval: 20 });
    expect(stopped()[0]).toMatchObject({ level: 'info', dateCreated: expect.any(String) });
    expect(sub.error).toBeUndefined();
  });
});

describe('SMS reconciler', () => {
  it('finishes an SMS whose status callback was dropped, so smsStatusChanged still ends', async () => {
    // ×0.002: the SMS ends upstream within milliseconds and is due for the reconciler ~2 s after sending.
    const gw = await startGateway({ SIMULATOR_TIME_SCALE: '0.002', LIVE_POLL_INTERVAL_MS: '50', RECONCILE_GRACE_SECONDS: '0' });
    const sim = gw.simulator!;
    sim.faults.dropCallbacks('all', { kind: 'sms' });
    const { body } = await gw.gql(`mutation($input: SendSmsInput!) { sendSms(input: $input) { sms { sid status } } }`, {
      input: { from: '08039591111', to: '9812345677', body: 'Your OTP is 1234' },
    });
    expect(body.errors).toBeUndefined();
    const sid = body.data.sendSms.sms.sid as string;
    const sub = record<{ sid: string; status: string; detailedStatus: string | null }>(client(gw), `subscription($sid: ID!) { smsStatusChanged(sid: $sid) { sid status detailedStatus } }`, { sid }, 'smsStatusChanged');
    const items = await sub.done;
    // Last digit 7: the simulator fails it as DND; only the reconciler can have told the gateway.
    expect(items.at(-1)).toMatchObject({ sid, status: 'FAILED_DND', detailedStatus: 'FAILED_REJECTED_DND' });
    expect(sim.callbacks.filter((c) => c.sid === sid).map((c) => c.outcome)).toEqual(['dropped']);
    expect(sim.countRequests({ endpoint: 'sms.get' })).toBeGreaterThanOrEqual(1);
  });
});

describe('callEvents(after:)', () => {
  it('gives a client that reconnects exactly the events it missed, then the live ones, with no duplicate at the seam', async () => {
    const gw = await startGateway({ LIVE_POLL_INTERVAL_MS: '60000' });
    const urls = callbackUrlsOf(gw);
    const [a, b, c] = [newSid('a'), newSid('b'), newSid('c')];

    const first = client(gw);
    // Subscribing from the log's current end means the first post cannot race the subscription.
    const sub1 = record<Ev>(first, CALL_EVENTS, { after: (await gw.storage.events.lastId()) ?? '0-0' }, 'callEvents');
    // The socket is open and subscribed once the first event comes through.
    await post(urls.callStatus, callCallback(a, 'in-progress'));
    await sub1.until((items) => items.length === 1);
    const seen = sub1.items[0]!;
    expect(seen).toMatchObject({ callSid: a, status: 'IN_PROGRESS', source: 'WEBHOOK' });
    await first.dispose();

    // Missed while disconnected.
    for (const [sid, status] of [[a, 'completed'], [b, 'in-progress'], [b, 'busy']] as const) {
      expect((await post(urls.callStatus, callCallback(sid, status))).status).toBe(200);
    }
    const missed = (await gw.storage.events.readAfter(seen.id)).filter((e) => e.kind === 'call' && e.forward).map((e) => e.id);
    expect(missed).toHaveLength(3);

    // Resubscribe while more events keep arriving: they must land exactly once, replayed or live.
    const second = client(gw);
    const sub2 = record<Ev>(second, CALL_EVENTS, { after: seen.id }, 'callEvents');
    const concurrent = Promise.all(Array.from({ length: 10 }, (_, i) => post(urls.callStatus, callCallback(`${c}n${i}`, 'in-progress'))));
    await concurrent;
    await post(urls.callStatus, callCallback(c, 'in-progress'));
    const all = await sub2.until((items) => items.some((e) => e.callSid === c));

    const expectedIds = (await gw.storage.events.readAfter(seen.id)).filter((e) => e.kind === 'call' && e.forward).map((e) => e.id);
    expect(all.map((e) => e.id)).toEqual(expectedIds);
    expect(all.slice(0, 3).map((e) => [e.callSid, e.status])).toEqual([
      [a, 'COMPLETED'],
      [b, 'IN_PROGRESS'],
      [b, 'BUSY'],
    ]);
    expect(all.map((e) => e.id)).not.toContain(seen.id);
  });

  it('rejects an `after` that is not an event id', async () => {
    const gw = await startGateway({ LIVE_POLL_INTERVAL_MS: '60000' });
    const sub = record<Ev>(client(gw), CALL_EVENTS, { after: 'yesterday' }, 'callEvents');
    await expect(sub.done).rejects.toBeDefined();
    expect(JSON.stringify(sub.error)).toContain('BAD_USER_INPUT');
  });
});

describe('fan-out', () => {
  it('delivers every event to 1,000 concurrent subscribers of one call', async () => {
    // Real-time simulator (nothing happens upstream during the test) and no polling: the events are the
    // callbacks this test posts.
    const gw = await startGateway({ SIMULATOR_TIME_SCALE: '1', LIVE_POLL_INTERVAL_MS: '60000' });
    const sid = await connectCall(gw);
    const urls = callbackUrlsOf(gw);
    const sockets = Array.from({ length: 10 }, () => client(gw));
    const subs = sockets.flatMap((socket) => Array.from({ length: 100 }, () => record<Ev>(socket, STATUS_CHANGED, { sid }, 'callStatusChanged')));
    await Promise.all(subs.map((s) => s.until((items) => items.length >= 1, 20_000)));

    expect((await post(urls.callStatus, callCallback(sid, 'in-progress'))).status).toBe(200);
    expect((await post(urls.callStatus, callCallback(sid, 'completed'), 'json')).status).toBe(200);
    const results = await Promise.all(subs.map((s) => s.done));

    const reference = results[0]!.map((e) => `${e.id}:${e.status}:${e.source}`);
    expect(reference.slice(1)).toEqual([expect.stringMatching(/:IN_PROGRESS:WEBHOOK$/), expect.stringMatching(/:COMPLETED:WEBHOOK$/)]);
    for (const events of results) expect(events.map((e) => `${e.id}:${e.status}:${e.source}`)).toEqual(reference);
    expect(subs.every((s) => s.completed)).toBe(true);
  }, 30_000);
});

describe('graphql-ws transport', () => {
  const KEYS = { GATEWAY_API_KEYS: 'ops:ops-secret-0123456789:read,bot:bot-secret-0123456789:read+write', WS_MAX_SUBSCRIPTIONS_PER_SOCKET: '2', LIVE_POLL_INTERVAL_MS: '60000' };

  it('authenticates in connection_init: a wrong or missing key closes the socket with 4403 and a reason saying what to send', async () => {
    const gw = await startGateway(KEYS);
    const cases = [
      [undefined, 'Forbidden: send connectionParams { authorization: "Bearer <api key>" } in connection_init'],
      ['ops-secret-0123456789', 'Forbidden: Missing or malformed Authorization header: expected "Bearer <api key>"'],
      ['Bearer wrong-secret-0123456789', 'Forbidden: Invalid API key'],
      ['Bearer ops:ops-secret-0123456789:read', 'Forbidden: Invalid API key: send only the secret part of name:secret:scopes after "Bearer"'],
    ] as const;
    for (const [authorization, reason] of cases) {
      const c = newClient(gw.wsUrl, authorization ? { authorization } : {});
      const sub = record(c, CALL_EVENTS, {}, 'callEvents');
      await expect(sub.done).rejects.toMatchObject({ code: 4403, reason });
    }
    const ok = newClient(gw.wsUrl, { authorization: 'Bearer ops-secret-0123456789' });
    const sub = record<Ev>(ok, CALL_EVENTS, { after: '0-0' }, 'callEvents');
    await post(callbackUrlsOf(gw).callStatus, callCallback(newSid('auth'), 'completed'));
    await sub.until((items) => items.length === 1);
    expect(gw.logText()).not.toContain('ops-secret-0123456789');
  });

  it('refuses a read-only key a mutation over the socket, and more operations per socket than allowed', async () => {
    const gw = await startGateway(KEYS);
    const c = newClient(gw.wsUrl, { authorization: 'Bearer ops-secret-0123456789' });
    const mutation = record(c, CONNECT, { input: { from: '09876543210', to: '+919812345670', callerId: '08039591111' } }, 'connectCall');
    await expect(mutation.done).rejects.toBeDefined();
    expect(JSON.stringify(mutation.error)).toContain('FORBIDDEN');
    const open = [record(c, CALL_EVENTS, {}, 'callEvents'), record(c, CALL_EVENTS, {}, 'callEvents')];
    const third = record(c, CALL_EVENTS, {}, 'callEvents');
    await expect(third.done).rejects.toBeDefined();
    expect(JSON.stringify(third.error)).toContain('RATE_LIMITED');
    open.forEach((s) => s.dispose());
  });

  it('speaks graphql-transport-ws only, and tells a client that speaks another (or none) why it is closed', async () => {
    const gw = await startGateway({ LIVE_POLL_INTERVAL_MS: '60000' });
    const { default: WebSocket } = await import('ws');
    // Refused clients write nothing outside the log (graphql-ws's own listener prints a warning per such client).
    const warn = vi.spyOn(console, 'warn');
    // subscriptions-transport-ws's subprotocol, then no subprotocol at all.
    for (const protocols of [['graphql-ws'], []]) {
      const socket = new WebSocket(gw.wsUrl, protocols);
      const errors: Error[] = [];
      socket.on('error', (err) => errors.push(err));
      const [code, reason] = await new Promise<[number, string]>((resolve) => socket.on('close', (c, r) => resolve([c, r.toString()])));
      expect(errors).toEqual([]);
      expect(code).toBe(4406);
      expect(reason).toContain('graphql-transport-ws');
    }
    await vi_waitFor(async () => (gw.logText().match(/speaks another subprotocol/g) ?? []).length === 2);
    expect(gw.logText()).not.toMatch(/"level":(50|40).*subprotocol/);
    expect(warn.mock.calls.filter((args) => String(args[0]).includes('subprotocol'))).toEqual([]);
    warn.mockRestore();
    // A client offering both gets the one spoken here.
    const both = new WebSocket(gw.wsUrl, ['graphql-ws', 'graphql-transport-ws']);
    await new Promise((resolve, reject) => both.once('open', resolve).once('error', reject));
    expect(both.protocol).toBe('graphql-transport-ws');
    both.terminate();
  });
});

/** Polls an async condition without fixed sleeps longer than a tick. */
async function vi_waitFor(condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
