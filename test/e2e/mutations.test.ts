/**
 * Every mutation against the real gateway and the simulator: validation before any upstream request,
 * idempotency keys (replay, conflict, pending, unknown outcomes), and bulk SMS split into ≤ 100 per request.
 */
import { beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Simulator } from '../../src/simulator/index.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { callbackUrlsOf } from '../live/webhook-helpers.js';

let gw: TestGateway;
let sim: Simulator;

beforeAll(async () => {
  gw = await startGateway();
  sim = gw.simulator!;
});
beforeEach(() => {
  sim.faults.clear();
  sim.resetRequests();
});

const CONNECT = `mutation($input: ConnectCallInput!) { connectCall(input: $input) {
  idempotencyKey replayed call { sid from to status direction customField dateCreated } } }`;
const FLOW = `mutation($input: ConnectCallToFlowInput!) { connectCallToFlow(input: $input) {
  idempotencyKey replayed call { sid from status customField } } }`;
const SMS = `mutation($input: SendSmsInput!) { sendSms(input: $input) {
  idempotencyKey replayed sms { sid from to body status dateCreated } } }`;
const BULK = `mutation($input: SendBulkSmsInput!) { sendBulkSms(input: $input) {
  idempotencyKey replayed messages { sid to body status } errors { index to code message } } }`;

const callInput = (extra: Record<string, unknown> = {}) => ({ from: '09876543210', to: '+919812345670', callerId: '08039591111', ...extra });
/** Retries a mutation with the same key until its unknown outcome has been resolved (or 10 s pass). */
const retryUntilResolved = (g: TestGateway, mutation: string, input: Record<string, unknown>) =>
  vi.waitFor(
    async () => {
      const r = await g.gql(mutation, { input });
      if (r.body.errors) throw new Error(String(r.body.errors[0]?.extensions?.code));
      return r;
    },
    { timeout: 10_000, interval: 100 },
  );
const smsInput = (extra: Record<string, unknown> = {}) => ({ from: '08039591111', to: '9812345670', body: 'Your order has shipped', ...extra });
const upstream = (endpoint?: string) => sim.countRequests(endpoint ? { endpoint } : {});
let keySeq = 0;
const newKey = () => `key-${process.pid}-${++keySeq}`;

describe('connectCall', () => {
  it('places a call through Exotel and answers the created call', async () => {
    const { body } = await gw.gql(CONNECT, { input: callInput({ timeLimit: 600, timeOut: 30, record: true, recordingChannels: 'DUAL', customField: 'order-42' }) });
    expect(body.errors).toBeUndefined();
    const { call, replayed, idempotencyKey } = body.data.connectCall;
    expect(replayed).toBe(false);
    expect(idempotencyKey).toBeNull();
    expect(call.sid).toMatch(/\S+/);
    expect(call.direction).toBe('OUTBOUND_API');
    expect(call.customField).toBe('order-42');
    expect(sim.calls.get(call.sid)).toBeDefined();
    expect(upstream('calls.connect')).toBe(1);
    // The new call is cached and primed: asking for it right away costs nothing more than a live lookup.
    sim.resetRequests();
    const again = await gw.gql('query($sid: ID!) { call(sid: $sid) { sid } }', { sid: call.sid });
    expect(again.body.data.call.sid).toBe(call.sid);
    expect(upstream('calls.list')).toBe(0);
  });

  it.each([
    ['input.to', { to: '12345' }],
    ['input.from', { from: 'abc' }],
    ['input.callerId', { callerId: '+91' }],
    ['input.to', { to: '5812345670' }],
    ['input.timeLimit', { timeLimit: 0 }],
    ['input.timeLimit', { timeLimit: 14_401 }],
    ['input.timeOut', { timeOut: 61 }],
    ['input.timeOut', { timeOut: 0 }],
    ['input.customField', { customField: 'x'.repeat(1001) }],
    ['input.waitUrl', { waitUrl: 'ftp://example.com/a.mp3' }],
    ['input.recordingChannels', { recordingChannels: 'DUAL' }],
    ['input.idempotencyKey', { idempotencyKey: '' }],
    ['input.idempotencyKey', { idempotencyKey: 'k'.repeat(256) }],
  ])('rejects a bad %s with BAD_USER_INPUT naming it and makes no upstream request', async (field, extra) => {
    const { status, body } = await gw.gql(CONNECT, { input: callInput(extra) });
    expect(status).toBe(200);
    expect(body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field });
    expect(body.errors?.[0]?.message).toContain(field);
    expect(upstream()).toBe(0);
  });
});

describe('inputs with several bad fields', () => {
  it('reports every bad field of a connectCall in one error, and makes no upstream request', async () => {
    const { status, body } = await gw.gql(CONNECT, { input: callInput({ from: 'abc', timeOut: 90, customField: 'x'.repeat(1001) }) });
    expect(status).toBe(200);
    expect(body.errors).toHaveLength(1);
    const error = body.errors![0]!;
    expect(error.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.from' });
    expect(error.extensions?.fields).toEqual([
      { field: 'input.from', message: expect.stringContaining('not a phone number') },
      { field: 'input.timeOut', message: 'must be between 1 and 60 seconds' },
      { field: 'input.customField', message: 'must be at most 1000 characters' },
    ]);
    for (const field of ['input.from', 'input.timeOut', 'input.customField']) expect(error.message).toContain(field);
    expect(upstream()).toBe(0);
  });

  it('reports every bad message of a bulk SMS with its index', async () => {
    const { body } = await gw.gql(BULK, {
      input: { from: '08039591111', messages: [{ to: '9812345670', body: 'ok' }, { to: '123', body: 'x' }, { to: '9812345671', body: ' ' }] },
    });
    expect(body.errors).toHaveLength(1);
    expect((body.errors![0]!.extensions?.fields as Array<{ field: string }>).map((f) => f.field)).toEqual(['input.messages[1].to', 'input.messages[2].body']);
    expect(upstream()).toBe(0);
  });
});

describe('connectCallToFlow', () => {
  it('connects a number to a flow', async () => {
    const { body } = await gw.gql(FLOW, { input: { from: '+919876543214', callerId: '08039591111', flowId: '223344', customField: 'ivr', timeLimit: 300 } });
    expect(body.errors).toBeUndefined();
    expect(body.data.connectCallToFlow.call.customField).toBe('ivr');
    expect(sim.calls.get(body.data.connectCallToFlow.call.sid)).toBeDefined();
    expect(upstream('calls.connect')).toBe(1);
  });

  it('rejects a flow id that is not numeric without asking Exotel', async () => {
    const { body } = await gw.gql(FLOW, { input: { from: '+919876543214', callerId: '08039591111', flowId: '../x' } });
    expect(body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.flowId' });
    expect(upstream()).toBe(0);
  });
});

describe('sendSms', () => {
  it('sends one SMS and answers the accepted message', async () => {
    const { body } = await gw.gql(SMS, { input: smsInput({ dltTemplateId: '1107160000000012345', dltEntityId: '1101000000000001' }) });
    expect(body.errors).toBeUndefined();
    const { sms, replayed } = body.data.sendSms;
    expect(replayed).toBe(false);
    expect(sms.body).toBe('Your order has shipped');
    expect(sim.sms.get(sms.sid)).toBeDefined();
    expect(upstream('sms.send')).toBe(1);
  });

  it.each([
    ['input.body', { body: '' }],
    ['input.body', { body: '   ' }],
    ['input.body', { body: 'x'.repeat(2001) }],
    ['input.to', { to: '+1' }],
    ['input.from', { from: 'a b' }],
    ['input.dltTemplateId', { dltTemplateId: 'no spaces allowed' }],
  ])('rejects a bad %s with BAD_USER_INPUT naming it and makes no upstream request', async (field, extra) => {
    const { body } = await gw.gql(SMS, { input: smsInput(extra) });
    expect(body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field });
    expect(upstream()).toBe(0);
  });

  it('accepts a DLT sender id as `from`', async () => {
    const { body } = await gw.gql(SMS, { input: smsInput({ from: 'EXOSIM' }) });
    expect(body.errors).toBeUndefined();
    expect(upstream('sms.send')).toBe(1);
  });
});

describe('sendBulkSms', () => {
  it('splits 250 messages into 3 requests and answers per message, in input order', async () => {
    // …8 fails at the simulator after acceptance; all are accepted by the bulk request itself.
    const messages = Array.from({ length: 250 }, (_, i) => ({ to: `+9198${String(10_000_000 + i).padStart(8, '0')}`, body: `Message ${i}` }));
    const { body } = await gw.gql(BULK, { input: { from: '08039591111', messages } });
    expect(body.errors).toBeUndefined();
    const result = body.data.sendBulkSms;
    expect(result.errors).toEqual([]);
    expect(result.messages).toHaveLength(250);
    result.messages.forEach((m: { body: string; sid: string }, i: number) => {
      expect(m.body).toBe(`Message ${i}`);
      expect(sim.sms.get(m.sid)).toBeDefined();
    });
    expect(upstream('sms.bulksend')).toBe(3);
  });

  it('rejects the whole bulk when one message is invalid, naming it, with no upstream request', async () => {
    const messages = [{ to: '9812345670', body: 'ok' }, { to: '9812345671', body: 'ok' }, { to: '9812345672', body: '' }];
    const { body } = await gw.gql(BULK, { input: { from: '08039591111', messages } });
    expect(body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.messages[2].body' });
    const bad = await gw.gql(BULK, { input: { from: '08039591111', messages: [{ to: '9812345670', body: 'ok' }, { to: 'nope', body: 'ok' }] } });
    expect(bad.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.messages[1].to' });
    const empty = await gw.gql(BULK, { input: { from: '08039591111', messages: [] } });
    expect(empty.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.messages' });
    expect(upstream()).toBe(0);
  });

  it('rejects more than 10 000 messages', async () => {
    // 10 001 messages exceed the default 256 KiB body limit; raise it to reach the input check.
    const roomy = await startGateway({ MAX_BODY_BYTES: String(1024 * 1024) });
    const messages = Array.from({ length: 10_001 }, () => ({ to: '9812345670', body: 'x' }));
    const { body } = await roomy.gql(BULK, { input: { from: '08039591111', messages } });
    expect(roomy.simulator!.countRequests()).toBe(0);
    expect(body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.messages' });
    expect(upstream()).toBe(0);
  });

  it('reports a failed batch per message, marks the unsent rest, and keeps the sent ones', async () => {
    const messages = Array.from({ length: 250 }, (_, i) => ({ to: `+9197${String(10_000_000 + i).padStart(8, '0')}`, body: `M${i}` }));
    sim.faults.inject({ kind: 'insufficient-balance', status: 402, count: 1, endpoint: 'sms.bulksend' });
    // The first batch fails before anything is sent: with nothing sent at all, the whole mutation fails.
    const refused = await gw.gql(BULK, { input: { from: '08039591111', messages } });
    expect(refused.body.errors?.[0]?.extensions?.code).toBe('INSUFFICIENT_BALANCE');
    expect(upstream('sms.bulksend')).toBe(1);

    sim.resetRequests();
    // Now the second batch fails with an unknown outcome (faults apply in order, one per request: the
    // first batch gets the no-op delay): batch 1 is kept, batch 2 is OUTCOME_UNKNOWN, batch 3 is not sent.
    sim.faults.inject({ kind: 'slow', delayMs: 0, count: 1, endpoint: 'sms.bulksend' });
    sim.faults.inject({ kind: 'error', status: 500, count: 1, endpoint: 'sms.bulksend' });
    const partial = await gw.gql(BULK, { input: { from: '08039591111', messages } });
    expect(partial.body.errors).toBeUndefined();
    const r = partial.body.data.sendBulkSms;
    expect(r.messages.slice(0, 100).every((m: unknown) => m !== null)).toBe(true);
    expect(r.messages.slice(100).every((m: unknown) => m === null)).toBe(true);
    expect(r.errors).toHaveLength(150);
    expect(r.errors[0]).toMatchObject({ index: 100, to: messages[100]!.to, code: 'OUTCOME_UNKNOWN' });
    expect(r.errors[99]).toMatchObject({ index: 199, code: 'OUTCOME_UNKNOWN' });
    expect(r.errors[100]).toMatchObject({ index: 200, code: 'UPSTREAM_UNAVAILABLE' });
    expect(r.errors[100].message).toMatch(/Not sent/);
    expect(upstream('sms.bulksend')).toBe(2);
  });

  it('reads Exotel\'s short answer {"SMSMessages": [{Sid, Status, To}]} as sent messages, never as errors', async () => {
    const messages = Array.from({ length: 3 }, (_, i) => ({ to: `+91981234${String(5700 + i)}`, body: `S${i}` }));
    sim.faults.inject({ kind: 'answer-form', form: 'bulk-sms-short', count: 1 });
    const { body } = await gw.gql(
      `mutation($input: SendBulkSmsInput!) { sendBulkSms(input: $input) {
        messages { sid from to body status detailedStatusCode price dateCreated dateSent } errors { index code message } } }`,
      { input: { from: '08039591111', messages } },
    );
    expect(body.errors).toBeUndefined();
    const r = body.data.sendBulkSms;
    expect(r.errors).toEqual([]);
    expect(r.messages).toHaveLength(3);
    r.messages.forEach((m: Record<string, unknown>, i: number) => {
      // Sid, Status and To from Exotel; sender and body from the request; the rest unknown yet.
      expect(sim.sms.get(m.sid as string)).toBeDefined();
      expect(m).toMatchObject({ from: '+918039591111', body: `S${i}`, status: 'QUEUED', detailedStatusCode: null, price: null, dateSent: null });
      expect(m.dateCreated).toMatch(/\+05:30$/);
    });
    expect(sim.faults.list()).toEqual([]);
  });

  it('marks messages left out of Exotel\'s answer as OUTCOME_UNKNOWN, not as failed', async () => {
    const messages = Array.from({ length: 5 }, (_, i) => ({ to: `+91981234${String(5600 + i)}`, body: `T${i}` }));
    sim.faults.inject({ kind: 'truncate-bulk', drop: 2, count: 1, endpoint: 'sms.bulksend' });
    const { body } = await gw.gql(BULK, { input: { from: '08039591111', messages } });
    expect(body.errors).toBeUndefined();
    const r = body.data.sendBulkSms;
    expect(r.messages.slice(0, 3).every((m: unknown) => m !== null)).toBe(true);
    expect(r.messages.slice(3)).toEqual([null, null]);
    expect(r.errors.map((e: { index: number; code: string }) => [e.index, e.code])).toEqual([
      [3, 'OUTCOME_UNKNOWN'],
      [4, 'OUTCOME_UNKNOWN'],
    ]);
    expect(upstream('sms.bulksend')).toBe(1);
  });
});

describe('idempotency keys', () => {
  it('replays the first result for the same key and input, with no second upstream request', async () => {
    const idempotencyKey = newKey();
    const first = await gw.gql(CONNECT, { input: callInput({ idempotencyKey }) });
    expect(first.body.data.connectCall).toMatchObject({ replayed: false, idempotencyKey });
    // The same input in another number form is the same input.
    const second = await gw.gql(CONNECT, { input: callInput({ idempotencyKey, from: '+919876543210' }) });
    expect(second.body.errors).toBeUndefined();
    expect(second.body.data.connectCall).toMatchObject({ replayed: true, idempotencyKey });
    expect(second.body.data.connectCall.call.sid).toBe(first.body.data.connectCall.call.sid);
    expect(upstream('calls.connect')).toBe(1);
  });

  it('answers IDEMPOTENCY_CONFLICT for the same key with another input or another operation', async () => {
    const idempotencyKey = newKey();
    await gw.gql(SMS, { input: smsInput({ idempotencyKey }) });
    const other = await gw.gql(SMS, { input: smsInput({ idempotencyKey, body: 'Something else' }) });
    expect(other.body.errors?.[0]?.extensions).toMatchObject({ code: 'IDEMPOTENCY_CONFLICT', field: 'input.idempotencyKey' });
    const otherOp = await gw.gql(CONNECT, { input: callInput({ idempotencyKey }) });
    expect(otherOp.body.errors?.[0]?.extensions?.code).toBe('IDEMPOTENCY_CONFLICT');
    expect(upstream('sms.send')).toBe(1);
    expect(upstream('calls.connect')).toBe(0);
  });

  it('replays bulk results too', async () => {
    const idempotencyKey = newKey();
    const input = { from: '08039591111', messages: [{ to: '9812345670', body: 'a' }, { to: '9812345671', body: 'b' }], idempotencyKey };
    const first = await gw.gql(BULK, { input });
    const second = await gw.gql(BULK, { input });
    expect(second.body.data.sendBulkSms.replayed).toBe(true);
    expect(second.body.data.sendBulkSms.messages.map((m: { sid: string }) => m.sid)).toEqual(first.body.data.sendBulkSms.messages.map((m: { sid: string }) => m.sid));
    expect(upstream('sms.bulksend')).toBe(1);
  });

  it('records an unknown outcome and never re-sends it blindly', async () => {
    const idempotencyKey = newKey();
    sim.faults.failNext(1, 500, 'calls.connect');
    const first = await gw.gql(CONNECT, { input: callInput({ idempotencyKey }) });
    expect(first.body.errors?.[0]?.extensions?.code).toBe('OUTCOME_UNKNOWN');
    const retry = await gw.gql(CONNECT, { input: callInput({ idempotencyKey }) });
    expect(retry.body.errors?.[0]?.extensions?.code).toBe('OUTCOME_UNKNOWN');
    expect(retry.body.errors?.[0]?.message).toMatch(/calls/);
    expect(upstream('calls.connect')).toBe(1);
  });

  it('resolves an unknown outcome later, from the placed call\'s own callback, and never adopts another call', async () => {
    // The first request's answer never comes back in time (the gateway gives up at 300 ms), but Exotel
    // (the simulator) placed the call; its callbacks reach the gateway with the request's reference.
    const slow = await startGateway({ EXOTEL_TIMEOUT_MS: '300' });
    const ssim = slow.simulator!;
    const idempotencyKey = newKey();
    const input = callInput({ idempotencyKey, to: '+919812345066' });
    // Another request dials the same numbers just before: same From/To, another key, another call.
    const other = await slow.gql(CONNECT, { input: callInput({ idempotencyKey: newKey(), to: '+919812345066' }) });
    expect(other.body.errors).toBeUndefined();
    ssim.faults.inject({ kind: 'slow-answer', delayMs: 800, count: 1, endpoint: 'calls.connect' });
    const first = await slow.gql(CONNECT, { input });
    expect(first.body.errors?.[0]?.extensions?.code).toBe('OUTCOME_UNKNOWN');
    const placed = ssim.calls.list().filter((c) => c.To.endsWith('9812345066') && c.Sid !== other.body.data.connectCall.call.sid);
    expect(placed).toHaveLength(1);
    // Until the placed call's callback has arrived, the outcome stays unknown; then a retry replays it.
    const retry = await retryUntilResolved(slow, CONNECT, input);
    expect(retry.body.data.connectCall).toMatchObject({ replayed: true, idempotencyKey, call: { sid: placed[0]!.Sid } });
    // Resolved for good, and nothing was sent twice.
    ssim.resetRequests();
    const again = await slow.gql(CONNECT, { input });
    expect(again.body.data.connectCall).toMatchObject({ replayed: true, call: { sid: placed[0]!.Sid } });
    expect(ssim.countRequests({ endpoint: 'calls.connect' })).toBe(0);
    expect(ssim.calls.list().filter((c) => c.To.endsWith('9812345066'))).toHaveLength(2);
  });

  it('resolves an unknown outcome from the reconciler when none of the call\'s callbacks ever arrives', async () => {
    // The answer is lost and every callback of the call is dropped: only Exotel's call records know the
    // call. The reconciler finds it there by the request reference in its CustomField, never by From/To.
    const slow = await startGateway({ EXOTEL_TIMEOUT_MS: '300', LIVE_POLL_INTERVAL_MS: '200', RECONCILE_GRACE_SECONDS: '0' });
    const ssim = slow.simulator!;
    const idempotencyKey = newKey();
    const input = callInput({ idempotencyKey, to: '+919812345077', timeLimit: 60, timeOut: 10 });
    const other = await slow.gql(CONNECT, { input: callInput({ idempotencyKey: newKey(), to: '+919812345077', timeLimit: 60, timeOut: 10 }) });
    expect(other.body.errors).toBeUndefined();
    ssim.faults.dropCallbacks('all', { kind: 'call' });
    ssim.faults.inject({ kind: 'slow-answer', delayMs: 800, count: 1, endpoint: 'calls.connect' });
    const first = await slow.gql(CONNECT, { input });
    expect(first.body.errors?.[0]?.extensions?.code).toBe('OUTCOME_UNKNOWN');
    const placed = ssim.calls.list().filter((c) => c.To.endsWith('9812345077') && c.Sid !== other.body.data.connectCall.call.sid);
    expect(placed).toHaveLength(1);
    const retry = await retryUntilResolved(slow, CONNECT, input);
    expect(retry.body.data.connectCall).toMatchObject({ replayed: true, idempotencyKey, call: { sid: placed[0]!.Sid, customField: expect.stringMatching(/^gateway-ref:/) } });
    // No callback ever came: the reconciler's look in the call records stored the reference.
    const history = await slow.storage.events.callHistory(slow.exotel.accountSid, placed[0]!.Sid);
    expect(history.map((e) => e.source)).toEqual(['POLL']);
    expect(ssim.countRequests({ endpoint: 'calls.connect' })).toBe(2);
    ssim.faults.clear();
  });

  it('resolves an unknown SMS outcome later the same way, from the SMS status callback', async () => {
    const slow = await startGateway({ EXOTEL_TIMEOUT_MS: '300' });
    const ssim = slow.simulator!;
    const idempotencyKey = newKey();
    const input = smsInput({ idempotencyKey, to: '9812345096' });
    ssim.faults.inject({ kind: 'slow-answer', delayMs: 800, count: 1, endpoint: 'sms.send' });
    const first = await slow.gql(SMS, { input });
    expect(first.body.errors?.[0]?.extensions?.code).toBe('OUTCOME_UNKNOWN');
    const retry = await retryUntilResolved(slow, SMS, input);
    const sent = ssim.sms.list().filter((m) => m.To.endsWith('9812345096'));
    expect(sent).toHaveLength(1);
    expect(retry.body.data.sendSms).toMatchObject({ replayed: true, idempotencyKey, sms: { sid: sent[0]!.Sid } });
    expect(ssim.countRequests({ endpoint: 'sms.send' })).toBe(1);
  });

  it('frees the key after a failure that certainly did not reach Exotel', async () => {
    const idempotencyKey = newKey();
    sim.faults.inject({ kind: 'insufficient-balance', status: 403, count: 1, endpoint: 'sms.send' });
    const first = await gw.gql(SMS, { input: smsInput({ idempotencyKey }) });
    expect(first.body.errors?.[0]?.extensions?.code).toBe('INSUFFICIENT_BALANCE');
    const retry = await gw.gql(SMS, { input: smsInput({ idempotencyKey }) });
    expect(retry.body.errors).toBeUndefined();
    expect(retry.body.data.sendSms.replayed).toBe(false);
    expect(upstream('sms.send')).toBe(2);
  });

  it('lets a retry that arrives while the first is in flight wait for its result', async () => {
    const idempotencyKey = newKey();
    sim.faults.slowNext(1, 400, 'sms.send');
    const [a, b] = await Promise.all([gw.gql(SMS, { input: smsInput({ idempotencyKey }) }), gw.gql(SMS, { input: smsInput({ idempotencyKey }) })]);
    expect(a.body.errors).toBeUndefined();
    expect(b.body.errors).toBeUndefined();
    expect(a.body.data.sendSms.sms.sid).toBe(b.body.data.sendSms.sms.sid);
    expect([a.body.data.sendSms.replayed, b.body.data.sendSms.replayed].sort()).toEqual([false, true]);
    expect(upstream('sms.send')).toBe(1);
  });

  it('answers IDEMPOTENCY_CONFLICT when the first is still in flight after the wait', async () => {
    const idempotencyKey = newKey();
    sim.faults.slowNext(1, 3_000, 'sms.send');
    const first = gw.gql(SMS, { input: smsInput({ idempotencyKey }) });
    // The first has claimed the key once its request reaches Exotel.
    await vi.waitFor(() => expect(upstream('sms.send')).toBe(1), { timeout: 2_000, interval: 10 });
    const second = await gw.gql(SMS, { input: smsInput({ idempotencyKey }) });
    expect(second.body.errors?.[0]?.extensions?.code).toBe('IDEMPOTENCY_CONFLICT');
    expect(second.body.errors?.[0]?.message).toMatch(/in progress/);
    expect((await first).body.data.sendSms.replayed).toBe(false);
    expect(upstream('sms.send')).toBe(1);
  });

  it('runs mutations without a key normally: two requests, two calls', async () => {
    const a = await gw.gql(CONNECT, { input: callInput() });
    const b = await gw.gql(CONNECT, { input: callInput() });
    expect(a.body.data.connectCall.call.sid).not.toBe(b.body.data.connectCall.call.sid);
    expect(upstream('calls.connect')).toBe(2);
  });
});

describe('callback URLs', () => {
  it('puts the gateway\'s own callback URL into every connect and SMS request, asking for answered and terminal events', async () => {
    const fast = await startGateway({ SIMULATOR_TIME_SCALE: '0.02', LIVE_POLL_INTERVAL_MS: '60000' });
    const fsim = fast.simulator!;
    const urls = callbackUrlsOf(fast);
    const call = (await fast.gql(CONNECT, { input: callInput() })).body.data.connectCall.call.sid as string;
    const flow = (await fast.gql(FLOW, { input: { from: '+919876543214', callerId: '08039591111', flowId: '223344' } })).body.data.connectCallToFlow.call.sid as string;
    const sms = (await fast.gql(SMS, { input: smsInput() })).body.data.sendSms.sms.sid as string;
    const bulk = (await fast.gql(BULK, { input: { from: '08039591111', messages: [{ to: '9812345670', body: 'a' }, { to: '9812345671', body: 'b' }] } })).body.data.sendBulkSms.messages.map((m: { sid: string }) => m.sid) as string[];
    const callbacksOf = (sid: string) => fsim.callbacks.filter((c) => c.sid === sid);
    await vi.waitFor(() => {
      for (const sid of [call, flow]) expect(callbacksOf(sid).map((c) => c.eventType).sort()).toEqual(['answered', 'terminal']);
      for (const sid of [sms, ...bulk]) expect(callbacksOf(sid)).toHaveLength(1);
    }, { timeout: 10_000 });
    for (const sid of [call, flow]) for (const c of callbacksOf(sid)) expect([c.url, c.outcome]).toEqual([urls.callStatus, 200]);
    for (const sid of [sms, ...bulk]) for (const c of callbacksOf(sid)) expect([c.url, c.outcome]).toEqual([urls.smsStatus, 200]);
  });
});
