/**
 * The webhook routes over real HTTP: every encoding Exotel uses, dedup and forward-only ordering of
 * repeated and reordered callbacks, and rejection (with nothing stored or published) of forged,
 * malformed and oversized requests. A graphql-ws subscriber watches what is published.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Client } from 'graphql-ws';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { callbackUrlsOf, callCallback, post, type Encoding } from '../live/webhook-helpers.js';
import { record, wsClient } from '../live/ws-helpers.js';

const CALL_EVENTS = `subscription($filter: CallEventFilter, $after: ID) { callEvents(filter: $filter, after: $after) { id callSid status source } }`;

let gw: TestGateway;
let ws: Client;
let urls: ReturnType<typeof callbackUrlsOf>;
beforeAll(async () => {
  gw = await startGateway({ SIMULATOR_TIME_SCALE: '0.05', LIVE_POLL_INTERVAL_MS: '60000' });
  ws = wsClient(gw.wsUrl);
  urls = callbackUrlsOf(gw);
});
afterAll(async () => {
  await ws.dispose();
});

let seq = 0;
const newSid = (tag: string) => `${tag}${process.pid}x${Date.now().toString(36)}x${++seq}`;
const history = (sid: string) => gw.storage.events.callHistory(gw.exotel.accountSid, sid);
const fromNow = async () => (await gw.storage.events.lastId()) ?? '0-0';
/**
 * Events stored since `before`, leaving out late callbacks of calls earlier tests placed through the
 * simulator (its Sids are 32 hex characters; this file's own Sids never are).
 */
/** Events this file's own Sids (newSid) stored after `before`; the simulator's calls of earlier tests go on
 * changing state meanwhile, and their Sids look like Exotel's (not always hex), so they are left out by origin. */
const storedSince = async (before: string | undefined) =>
  (await gw.storage.events.readAfter(before)).filter((e) => (e.kind === 'sms' ? e.smsSid : e.callSid).includes(`${process.pid}x`));

describe('call status callbacks', () => {
  it.each<Encoding>(['form', 'multipart', 'json'])('accepts a %s body and stores the parsed callback before answering 200', async (encoding) => {
    const sid = newSid('enc');
    const legs = [{ OnCallDuration: 47, Status: 'completed' }, { OnCallDuration: 40, Status: 'completed' }];
    const res = await post(urls.callStatus, callCallback(sid, 'completed', { ConversationDuration: 40, Legs: legs, DateUpdated: '2026-11-20 10:00:47' }), encoding);
    expect(res).toEqual({ status: 200, text: 'OK' });
    // Stored by the time the 200 arrived.
    const [event] = await history(sid);
    expect(event).toMatchObject({ callSid: sid, status: 'COMPLETED', source: 'WEBHOOK', forward: true, at: '2026-11-20T10:00:47+05:30' });
    expect(event!.data?.call).toMatchObject({
      conversationDurationSeconds: 40,
      from: '09876543210',
      direction: 'OUTBOUND_API',
      legs: [
        { id: 1, status: 'COMPLETED', onCallDurationSeconds: 47 },
        { id: 2, status: 'COMPLETED', onCallDurationSeconds: 40 },
      ],
    });
  });

  it('reads a form by the charset it declares: percent-escapes are UTF-8 bytes, or Latin-1 ones with charset=iso-8859-1', async () => {
    for (const [charset, customField] of [['utf-8', 'Jos%C3%A9+M'], ['ISO-8859-1', 'Jos%E9+M'], ['"iso-8859-1"', 'Jos%E9+M']] as const) {
      const sid = newSid('cs');
      const { CustomField: _, ...callback } = callCallback(sid, 'completed');
      const fields = new URLSearchParams(callback as Record<string, string>).toString();
      const res = await fetch(urls.callStatus, {
        method: 'POST',
        headers: { 'content-type': `application/x-www-form-urlencoded; charset=${charset}` },
        body: `${fields}&CustomField=${customField}`,
      });
      expect({ charset, status: res.status, text: await res.text() }).toEqual({ charset, status: 200, text: 'OK' });
      const [event] = await history(sid);
      expect({ charset, customField: (event!.data?.call as { customField?: string }).customField }).toEqual({ charset, customField: 'José M' });
    }
  });

  it('turns the same callbacks posted 3 times and in reverse order into exactly one event per forward transition', async () => {
    const sid = newSid('rev');
    const barrier = newSid('bar');
    const sub = record<{ callSid: string; status: string; id: string }>(ws, CALL_EVENTS, { filter: { callSids: [sid, barrier] }, after: await fromNow() }, 'callEvents');
    // Terminal first, then the (late) answered one; each three times, in every encoding.
    for (const status of ['completed', 'in-progress']) {
      for (const encoding of ['form', 'json', 'multipart'] as const) expect((await post(urls.callStatus, callCallback(sid, status), encoding)).status).toBe(200);
    }
    await post(urls.callStatus, callCallback(barrier, 'completed'));
    const items = await sub.until((all) => all.some((e) => e.callSid === barrier));
    sub.dispose();

    expect(items.filter((e) => e.callSid === sid).map((e) => e.status)).toEqual(['COMPLETED']);
    // Everything is in the history; only the first terminal one moved the call forward.
    const h = await history(sid);
    expect(h.map((e) => [e.status, e.forward])).toEqual([
      ['COMPLETED', true],
      ['COMPLETED', false],
      ['COMPLETED', false],
      ['IN_PROGRESS', false],
      ['IN_PROGRESS', false],
      ['IN_PROGRESS', false],
    ]);
  });

  it('publishes answered then terminal once each when every callback arrives three times in order', async () => {
    const sid = newSid('ord');
    const sub = record<{ callSid: string; status: string }>(ws, CALL_EVENTS, { filter: { callSids: [sid] }, after: await fromNow() }, 'callEvents');
    for (const status of ['in-progress', 'completed']) {
      const results = await Promise.all([post(urls.callStatus, callCallback(sid, status)), post(urls.callStatus, callCallback(sid, status), 'json'), post(urls.callStatus, callCallback(sid, status), 'multipart')]);
      expect(results.map((r) => r.status)).toEqual([200, 200, 200]);
    }
    const items = await sub.until((all) => all.some((e) => e.status === 'COMPLETED'));
    sub.dispose();
    expect(items.map((e) => e.status)).toEqual(['IN_PROGRESS', 'COMPLETED']);
    expect((await history(sid)).filter((e) => e.forward).map((e) => e.status)).toEqual(['IN_PROGRESS', 'COMPLETED']);
  });

  it('takes the status of a callback whose dates cannot be read, leaving those dates empty (Exotel would resend the same body)', async () => {
    const sid = newSid('dat');
    const sub = record<{ callSid: string; status: string }>(ws, CALL_EVENTS, { filter: { callSids: [sid] }, after: await fromNow() }, 'callEvents');
    const odd = { DateUpdated: '2026-02-30 10:00:00', StartTime: '2026-11-20T10:00:02', EndTime: '2026-11-20 10:00:47.0' };
    for (const encoding of ['json', 'form'] as const) expect(await post(urls.callStatus, callCallback(sid, 'busy', odd), encoding)).toEqual({ status: 200, text: 'OK' });
    const items = await sub.until((all) => all.length > 0);
    sub.dispose();
    expect(items.map((e) => e.status)).toEqual(['BUSY']);
    const [event] = await history(sid);
    expect(event).toMatchObject({ status: 'BUSY', forward: true, source: 'WEBHOOK' });
    expect(event!.data?.call).not.toHaveProperty('startTime');
    expect(event!.data?.call).not.toHaveProperty('endTime');
    const sms = await post(urls.smsStatus, { SmsSid: sid, Status: 'sent', DateSent: '2017-03-03 14:14' });
    expect(sms).toEqual({ status: 200, text: 'OK' });
  });

  it('reads a form with legs past index 9 and 99, in index order whatever the order of the parameters', async () => {
    const sid = newSid('legs');
    const indices = [150, 11, 10, ...Array.from({ length: 10 }, (_, i) => i)];
    const legs = Object.fromEntries(indices.flatMap((i) => [[`Legs[${i}][Status]`, i % 2 ? 'no-answer' : 'completed'], [`Legs[${i}][OnCallDuration]`, String(i)]]));
    expect(await post(urls.callStatus, { ...callCallback(sid, 'completed'), ...legs })).toEqual({ status: 200, text: 'OK' });
    const [event] = await history(sid);
    expect((event!.data?.call as { legs?: unknown }).legs).toEqual(
      [...indices].sort((a, b) => a - b).map((i) => ({ id: i + 1, status: i % 2 ? 'NO_ANSWER' : 'COMPLETED', onCallDurationSeconds: i })),
    );
  });

  it('updates the cached call so a query right after the callback sees the new status', async () => {
    const { body } = await gw.gql(`mutation($input: ConnectCallInput!) { connectCall(input: $input) { call { sid } } }`, {
      input: { from: '09876543210', to: '+919812345670', callerId: '08039591111', timeLimit: 600 },
    });
    const sid = body.data.connectCall.call.sid as string;
    gw.simulator!.resetRequests();
    await post(urls.callStatus, callCallback(sid, 'busy'));
    const after = await gw.gql('query($sid: ID!) { call(sid: $sid) { status events { status source } } }', { sid });
    expect(after.body.data.call.status).toBe('BUSY');
    expect(after.body.data.call.events.map((e: { status: string; source: string }) => `${e.status}/${e.source}`)).toEqual(expect.arrayContaining(['QUEUED/API', 'BUSY/WEBHOOK']));
    expect(gw.simulator!.countRequests({ endpoint: 'calls.get' })).toBe(0);
  });
});

describe('rejected webhooks', () => {
  it('rejects forged, malformed and oversized requests, storing and publishing nothing', async () => {
    const sid = newSid('bad');
    const barrier = newSid('bar');
    const before = await gw.storage.events.lastId();
    const sub = record<{ callSid: string }>(ws, CALL_EVENTS, { after: await fromNow() }, 'callEvents');
    const good = callCallback(sid, 'completed');
    const base = `${gw.url}/webhooks/exotel`;
    const smsTokenOnCallPath = urls.smsStatus.replace(/sms-status$/, 'call-status');
    const forged = urls.callStatus.replace(/\/([^/]+)\/call-status$/, (_m, token: string) => `/${token.slice(0, -2)}${token.endsWith('AA') ? 'BB' : 'AA'}/call-status`);

    const cases: Array<[string, Promise<{ status: number; text: string }>, number]> = [
      ['wrong token', post(forged, good), 404],
      ['no token', post(`${base}/call-status`, good), 404],
      ['token of another kind', post(smsTokenOnCallPath, good), 404],
      ['unknown kind', post(urls.callStatus.replace(/call-status$/, 'other'), good), 404],
      ['no CallSid', post(urls.callStatus, { ...good, CallSid: '' }), 400],
      ['unknown Status', post(urls.callStatus, { ...good, Status: 'exploded' }), 400],
      ['Sid with odd characters', post(urls.callStatus, { ...good, CallSid: 'a b<c>' }), 400],
      ['broken JSON', fetch(urls.callStatus, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"CallSid":' }).then(async (r) => ({ status: r.status, text: await r.text() })), 400],
      [
        'broken multipart',
        fetch(urls.callStatus, { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=xyz' }, body: `--xyz\r\nContent-Disposition: form-data; name="CallSid"\r\n\r\n${sid}` }).then(async (r) => ({ status: r.status, text: await r.text() })),
        400,
      ],
      ['oversized', post(urls.callStatus, { ...good, CustomField: 'x'.repeat(70 * 1024) }), 413],
      ['oversized JSON', post(urls.callStatus, { ...good, CustomField: 'x'.repeat(70 * 1024) }, 'json'), 413],
      ['GET on a status callback', fetch(`${urls.callStatus}?CallSid=${sid}&Status=completed`).then(async (r) => ({ status: r.status, text: await r.text() })), 405],
    ];
    for (const [name, response, status] of cases) expect({ name, status: (await response).status }).toEqual({ name, status });

    // Nothing was stored…
    expect(await storedSince(before)).toEqual([]);
    expect(await history(sid)).toEqual([]);
    // …and nothing published: the first event the subscriber sees is the barrier posted last.
    await post(urls.callStatus, callCallback(barrier, 'completed'));
    const items = await sub.until((all) => all.length > 0);
    sub.dispose();
    expect(items.map((e) => e.callSid)).toEqual([barrier]);
    // The token never reaches the log; a wrong one is logged without it.
    const token = urls.callStatus.split('/').at(-2)!;
    expect(gw.logText()).not.toContain(token);
    expect(gw.logText()).toContain('wrong or missing token');
  });

  it('does not say whether a token exists: a wrong token looks like any unknown path', async () => {
    const wrong = await fetch(`${gw.url}/webhooks/exotel/not-a-token/call-status`, { method: 'POST' });
    const unknown = await fetch(`${gw.url}/webhooks/exotel/whatever`, { method: 'POST' });
    expect([wrong.status, await wrong.text()]).toEqual([404, 'Not Found']);
    expect([unknown.status, await unknown.text()]).toEqual([404, 'Not Found']);
  });

  it('answers only its exact path: the right token with a trailing slash or another case is an unknown path, and nothing is stored', async () => {
    const sid = newSid('slash');
    const before = await fromNow();
    const { pathname, search } = new URL(urls.callStatus);
    for (const near of [`${pathname}/`, pathname.replace(/call-status$/, 'Call-Status')]) {
      const res = await post(`${gw.url}${near}${search}`, callCallback(sid, 'completed'));
      expect({ near: near.slice(-12), status: res.status, text: res.text }).toEqual({ near: near.slice(-12), status: 404, text: 'Not Found' });
    }
    expect(await storedSince(before)).toEqual([]);
    expect(await history(sid)).toEqual([]);
  });
});

describe('SMS status callbacks', () => {
  it('feeds smsStatusChanged: the queued snapshot, then the final status from the callback', async () => {
    const { body } = await gw.gql(`mutation($input: SendSmsInput!) { sendSms(input: $input) { sms { sid status } } }`, {
      input: { from: '08039591111', to: '9812345677', body: 'Your order has shipped' },
    });
    expect(body.errors).toBeUndefined();
    const sid = body.data.sendSms.sms.sid as string;
    const sub = record<{ sid: string; status: string; detailedStatus: string | null; dateSent: string | null }>(ws, `subscription($sid: ID!) { smsStatusChanged(sid: $sid) { sid status detailedStatus dateSent } }`, { sid }, 'smsStatusChanged');
    const items = await sub.done;
    // Last digit 7: the simulator fails it as DND (failed-dnd), which only its callback reports here, with
    // DateSent the epoch-zero placeholder ("not set").
    expect(items[0]!.sid).toBe(sid);
    expect(items.at(-1)).toMatchObject({ sid, status: 'FAILED_DND', detailedStatus: 'FAILED_REJECTED_DND', dateSent: null });
    // Subscribers are fed when the event is stored, which is before the 200 reaches the simulator.
    await vi.waitFor(() => expect(gw.simulator!.callbacks.some((c) => c.kind === 'sms' && c.sid === sid && c.outcome === 200)).toBe(true), { timeout: 5_000 });
  });

  it('rejects an SMS callback without SmsSid', async () => {
    const res = await post(urls.smsStatus, { Status: 'sent' });
    expect(res.status).toBe(400);
    expect(res.text).toContain('SmsSid');
  });
});

describe('incoming calls (Passthru)', () => {
  it('announces a call to incomingCalls once, answering each Passthru request 200 at once', async () => {
    const sid = newSid('in');
    const sub = record<{ sid: string; from: string; to: string; direction: string; status: string }>(ws, 'subscription { incomingCalls { sid from to direction status } }', {}, 'incomingCalls');
    // The subscription is live once an incoming call comes through; keep announcing fresh ones until then.
    let probe = 0;
    while (sub.items.length === 0) {
      const probeSid = `${sid}p${probe++}`;
      const res = await fetch(`${urls.incomingCall}?CallSid=${probeSid}&From=09876543210&To=08039591111&Direction=incoming&Created=2026-11-20%2010%3A00%3A00`);
      expect([res.status, await res.text()]).toEqual([200, '']);
      await sub.until((all) => all.length > 0, 200).catch(() => undefined);
    }
    const params = `CallSid=${sid}&From=09876543210&To=08039591111&Direction=incoming&flow_id=42`;
    const get = await fetch(`${urls.incomingCall}?${params}`);
    expect(get.status).toBe(200);
    await get.text();
    // A later Passthru step of the same call (POST this time) is not a new incoming call.
    const again = await fetch(`${urls.incomingCall}?${params}&Status=in-progress`, { method: 'POST' });
    expect(again.status).toBe(200);
    await again.text();
    const barrier = newSid('inb');
    await (await fetch(`${urls.incomingCall}?CallSid=${barrier}&From=1&To=2`)).text();
    const items = await sub.until((all) => all.some((c) => c.sid === barrier));
    sub.dispose();
    expect(items.filter((c) => c.sid === sid)).toEqual([{ sid, from: '09876543210', to: '08039591111', direction: 'INBOUND', status: 'IN_PROGRESS' }]);
  });
});

describe('Sid validation', () => {
  it('answers 400 and stores nothing for a Passthru, call status or SMS status callback whose Sid is garbage', async () => {
    const before = await gw.storage.events.lastId();
    const passthru = (query: string, method = 'GET') => fetch(`${urls.incomingCall}?${query}`, { method }).then(async (r) => ({ status: r.status, text: await r.text() }));
    const cases: Array<[string, Promise<{ status: number; text: string }>]> = [
      ['Passthru GET CallSid=-1', passthru('CallSid=-1&From=09876543210&To=08039591111')],
      ['Passthru POST CallSid=-1', passthru('CallSid=-1&From=09876543210', 'POST')],
      ['Passthru CallSid empty', passthru('CallSid=&From=09876543210')],
      ['Passthru CallSid with a space', passthru('CallSid=ab%20cd&From=09876543210')],
      ['Passthru CallSid over-long', passthru(`CallSid=${'a'.repeat(129)}&From=09876543210`)],
      ['Passthru CallSid in a form body', fetch(urls.incomingCall, { method: 'POST', body: new URLSearchParams({ CallSid: '-1' }) }).then(async (r) => ({ status: r.status, text: await r.text() }))],
      ['call status CallSid=-1', post(urls.callStatus, callCallback('-1', 'completed'))],
      ['call status CallSid -1 as a JSON number', post(urls.callStatus, callCallback('x', 'completed', { CallSid: -1 }), 'json')],
      ['call status CallSid with a dot', post(urls.callStatus, callCallback('a.b', 'completed'), 'multipart')],
      ['SMS status SmsSid=-1', post(urls.smsStatus, { SmsSid: '-1', Status: 'sent' })],
      ['SMS status SmsSid with a space', post(urls.smsStatus, { SmsSid: 'ab cd', Status: 'sent' })],
    ];
    for (const [name, response] of cases) {
      const res = await response;
      expect({ name, status: res.status }).toEqual({ name, status: 400 });
      expect(res.text).toMatch(/^Bad Request: (CallSid|SmsSid) is (not a valid Sid|missing)$/);
    }
    expect(await storedSince(before)).toEqual([]);
    expect(await history('-1')).toEqual([]);

    // The same routes still take a well-formed Exotel Sid (32 hex characters).
    const good = '0123456789abcdef0123456789abcdef';
    expect(await passthru(`CallSid=${good}&From=09876543210&To=08039591111`)).toEqual({ status: 200, text: '' });
    expect(await gw.storage.events.lastId()).not.toBe(before);
  });
});

describe('when the event log cannot store', () => {
  it('answers 503 so Exotel retries, and the retry is stored and published', async () => {
    // The only fault here a real part cannot produce on demand: the log refusing one write.
    const storage = createMemoryStorage();
    let refuse = 1;
    const appendStatus = storage.events.appendStatus.bind(storage.events);
    storage.events.appendStatus = (append) =>
      append.event.source === 'WEBHOOK' && append.event.kind === 'call' && refuse-- > 0 ? Promise.reject(new Error('disk full')) : appendStatus(append);
    const g = await startGateway({ SIMULATOR_TIME_SCALE: '0.02', LIVE_POLL_INTERVAL_MS: '60000' }, {}, { storage });
    const client = wsClient(g.wsUrl);
    try {
      const { body } = await g.gql(`mutation($input: ConnectCallInput!) { connectCall(input: $input) { call { sid } } }`, {
        input: { from: '09876543210', to: '+919812345670', callerId: '08039591111', timeLimit: 60 },
      });
      const sid = body.data.connectCall.call.sid as string;
      const events = await record<{ status: string; source: string }>(client, `subscription($sid: ID!) { callStatusChanged(sid: $sid) { status source } }`, { sid }, 'callStatusChanged').done;
      expect(events.at(-1)).toEqual({ status: 'COMPLETED', source: 'WEBHOOK' });
      const attemptsOf = () => g.simulator!.callbacks.filter((c) => c.sid === sid && c.kind === 'call').map((c) => [c.eventType, c.attempt, c.outcome]);
      // The terminal callback may overtake the answered one's retry (it waits a scaled back-off): wait for it.
      for (let i = 0; i < 200 && !attemptsOf().some(([type, attempt]) => type === 'answered' && attempt === 2); i++) await new Promise((r) => setTimeout(r, 25));
      const attempts = attemptsOf();
      expect(attempts[0]).toEqual(['answered', 1, 503]);
      expect(attempts).toContainEqual(['answered', 2, 200]);
      expect((await storage.events.callHistory(g.exotel.accountSid, sid)).filter((e) => e.status === 'IN_PROGRESS')).toHaveLength(1);
      expect(g.logText()).toContain('answering 503');
    } finally {
      await client.dispose();
      await g.stop();
    }
  });
});
