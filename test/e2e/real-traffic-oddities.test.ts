/**
 * Several of real Exotel traffic's oddities at once (docs/exotel-fidelity.md), over real HTTP into the
 * gateway: each is tested on its own elsewhere; here they come together, as a real request can carry them.
 */
process.env.TZ = 'America/New_York';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from 'graphql-ws';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { callbackUrlsOf } from '../live/webhook-helpers.js';
import { record, wsClient } from '../live/ws-helpers.js';

let gw: TestGateway;
let ws: Client;
let urls: ReturnType<typeof callbackUrlsOf>;
beforeAll(async () => {
  gw = await startGateway({ SIMULATOR_TIME_SCALE: '0.02', LIVE_POLL_INTERVAL_MS: '60000' });
  ws = wsClient(gw.wsUrl);
  urls = callbackUrlsOf(gw);
});
afterAll(async () => {
  await ws.dispose();
});

const SMS = `query($sid: ID!) { sms(sid: $sid) { sid from to status detailedStatus detailedStatusCode dateSent } }`;

/** Sends an SMS through the gateway whose own callback from the simulator is dropped, so the test's callbacks are the only ones. */
async function sentSms(to: string): Promise<string> {
  gw.simulator!.faults.dropCallbacks(1, { kind: 'sms' });
  const { body } = await gw.gql(`mutation($input: SendSmsInput!) { sendSms(input: $input) { sms { sid status } } }`, {
    input: { from: '08039591111', to, body: 'Your order has shipped' },
  });
  expect(body.errors).toBeUndefined();
  return body.data.sendSms.sms.sid as string;
}

async function postForm(url: string, body: string, contentType = 'application/x-www-form-urlencoded'): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': contentType }, body });
  return { status: res.status, text: await res.text() };
}

describe('an SMS status callback with every legacy oddity at once', () => {
  it('reads "null" strings, the epoch-zero DateSent, failed_dnd and a Latin-1 form for a Sid ending in a non-hex letter', async () => {
    const sid = await sentSms('9812345670');
    expect(sid).toMatch(/[g-z]$/);
    const sub = record<{ sid: string; status: string; detailedStatus: string | null; detailedStatusCode: number | null; dateSent: string | null }>(
      ws,
      `subscription($sid: ID!) { smsStatusChanged(sid: $sid) { sid status detailedStatus detailedStatusCode dateSent } }`,
      { sid },
      'smsStatusChanged',
    );
    await sub.until((all) => all.length > 0);
    const body =
      `SmsSid=${sid}&To=09812345670&Status=failed_dnd&DetailedStatus=FAILED_REJECTED_DND&DetailedStatusCode=23005` +
      `&DateSent=1970-01-01+05%3A30%3A00&SmsUnits=null&CustomField=Jos%E9`;
    expect(await postForm(urls.smsStatus, body, 'application/x-www-form-urlencoded; charset=ISO-8859-1')).toEqual({ status: 200, text: 'OK' });
    const items = await sub.done;
    expect(items.at(-1)).toEqual({ sid, status: 'FAILED_DND', detailedStatus: 'FAILED_REJECTED_DND', detailedStatusCode: 23005, dateSent: null });
    const { body: read } = await gw.gql(SMS, { sid });
    expect(read.errors).toBeUndefined();
    expect(read.data.sms).toMatchObject({ sid, to: '09812345670', status: 'FAILED_DND', detailedStatusCode: 23005, dateSent: null });
  });

  it('reads "null" for every empty value of a callback that still names its status', async () => {
    const sid = await sentSms('9812345670');
    const body = `SmsSid=${sid}&To=null&Status=failed&DetailedStatus=null&DetailedStatusCode=null&DateSent=null&SmsUnits=null&CustomField=null`;
    expect(await postForm(urls.smsStatus, body)).toEqual({ status: 200, text: 'OK' });
    const { body: read } = await gw.gql(SMS, { sid });
    expect(read.errors).toBeUndefined();
    // Nothing the callback left "null" erases what the send answer said.
    expect(read.data.sms).toMatchObject({ sid, to: '09812345670', status: 'FAILED', dateSent: null });
  });

  it.each([
    ['delivered', 'DELIVERED'],
    ['expired', 'EXPIRED'],
    ['undelivered', 'UNDELIVERED'],
  ])('takes the newer final status %s after sent: stored forward, and what a query or a new subscriber sees', async (wire, status) => {
    const sid = await sentSms('9812345670');
    expect(await postForm(urls.smsStatus, `SmsSid=${sid}&To=09812345670&Status=sent&DetailedStatus=DELIVERED_TO_OPERATOR&DetailedStatusCode=20001&DateSent=2026-11-24+18%3A00%3A04`)).toEqual({ status: 200, text: 'OK' });
    expect(await postForm(urls.smsStatus, `SmsSid=${sid}&To=09812345670&Status=${wire}&DetailedStatus=&DetailedStatusCode=&DateSent=2026-11-24+18%3A00%3A09`)).toEqual({ status: 200, text: 'OK' });
    const history = await gw.storage.events.smsHistory(gw.exotel.accountSid, sid);
    expect(history.filter((e) => e.source === 'WEBHOOK').map((e) => [e.status, e.forward])).toEqual([['SENT', true], [status, true]]);
    const { body: read } = await gw.gql(SMS, { sid });
    expect(read.errors).toBeUndefined();
    expect(read.data.sms).toMatchObject({ status, dateSent: '2026-11-24T18:00:09+05:30', detailedStatus: 'DELIVERED_TO_OPERATOR' });
    const sub = record<{ status: string }>(ws, `subscription($sid: ID!) { smsStatusChanged(sid: $sid) { status } }`, { sid }, 'smsStatusChanged');
    expect((await sub.done).map((i) => i.status)).toEqual([status]);
  });
});

describe('a Passthru flow with every oddity at once', () => {
  const CALL = `query($sid: ID!) { call(sid: $sid) { sid from to direction status startTime endTime
    flow { dialWhomNumber agentStatus callType dialCallStatus forwardedFrom outgoingPhoneNumber legs { id number callerId onCallDurationSeconds causeCode } } } }`;

  it('keeps "+" read as a space in numbers, legs past index 9, "null" values and what a later request leaves out', async () => {
    const sid = '9c1e2b3d4a5968778695a4b3f0a5189g';
    const base =
      `CallSid=${sid}&CallFrom=+919876543210&CallTo=08039591111&From=+919876543210&To=08039591111&Direction=incoming` +
      `&Created=Wed,+23+Feb+2022+12:31:59&StartTime=2022-02-23+12:32:02&EndTime=1970-01-01+05:30:00&flow_id=228866&tenant_id=67890` +
      `&ForwardedFrom=null&ProcessStatus=null&CustomField=null`;
    const get = async (query: string, method = 'GET') => {
      const res = await fetch(`${urls.incomingCall}?${query}`, { method });
      return { status: res.status, text: await res.text() };
    };
    expect(await get(`${base}&CallType=call-attempt&CurrentTime=2022-02-23+12:32:02&digits=null`)).toEqual({ status: 200, text: '' });
    expect(await get(`${base}&CallType=call-attempt&EventType=Dial&DialWhomNumber=+919800000011&Status=free&CurrentTime=2022-02-23+12:32:03`)).toEqual({ status: 200, text: '' });
    // The end: no DialWhomNumber, DialWhomNumber-like numbers in twelve legs (indices 10 and 11 first), every "+" unencoded.
    const legs = [10, 11, ...Array.from({ length: 10 }, (_, i) => i)]
      .map((i) => `&Legs[${i}][Number]=+9198000${String(10 + i).padStart(5, '0')}&Legs[${i}][Type]=single&Legs[${i}][OnCallDuration]=${i === 11 ? 42 : 0}&Legs[${i}][CallerId]=+918039591111&Legs[${i}][CauseCode]=${i === 11 ? 'NORMAL_CLEARING' : 'NO_ANSWER'}&Legs[${i}][Cause]=null`)
      .join('');
    const end = `${base}&CallType=completed&DialCallStatus=completed&DialCallDuration=42&EventType=Dial&Status=busy&OutgoingPhoneNumber=+918039591111&CurrentTime=2022-02-23+12:33:01&RecordingUrl=null${legs}`;
    expect(await get(end)).toEqual({ status: 200, text: '' });

    const { body } = await gw.gql(CALL, { sid });
    expect(body.errors).toBeUndefined();
    const call = body.data.call;
    expect(call).toMatchObject({
      sid,
      from: '+919876543210',
      to: '08039591111',
      direction: 'INBOUND',
      status: 'COMPLETED',
      startTime: '2022-02-23T12:32:02+05:30',
      endTime: '2022-02-23T12:33:01+05:30',
      flow: { dialWhomNumber: '+919800000011', agentStatus: 'busy', callType: 'completed', dialCallStatus: 'COMPLETED', forwardedFrom: null, outgoingPhoneNumber: '+918039591111' },
    });
    expect(call.flow.legs).toHaveLength(12);
    expect(call.flow.legs[11]).toEqual({ id: 12, number: '+919800000021', callerId: '+918039591111', onCallDurationSeconds: 42, causeCode: 'NORMAL_CLEARING' });
    expect(call.flow.legs.map((l: { number: string }) => l.number)).toEqual(Array.from({ length: 12 }, (_, i) => `+9198000${String(10 + i).padStart(5, '0')}`));
    expect((await gw.storage.events.callHistory(gw.exotel.accountSid, sid)).filter((e) => e.forward).map((e) => e.status)).toEqual(['IN_PROGRESS', 'COMPLETED']);
  });
});
