/**
 * Passthru / Connect-applet requests → the typed request the gateway ingests: the outcome table, the
 * agent's Status, Exotel's date forms (IST whatever the process's zone), empty values and numbers.
 */
import { describe, expect, it } from 'vitest';
import type { Call } from '../../src/exotel/types.js';
import { MAX_LEGS } from '../../src/exotel/parse.js';
import type { CallEventRecord } from '../../src/storage/types.js';
import { callFromHistory, EMPTY_FLOW, flowDateToIso, incomingOutcome, mergeCall, parseIncomingCall } from '../../src/live/incoming.js';

const NOW = '2026-11-20T12:00:00+05:30';
const parse = (fields: Record<string, unknown>) => {
  const r = parseIncomingCall({ CallSid: 'b6cfaf0a1d8c4ab1c2e4a4f0d12b189g', ...fields }, NOW);
  if (!r.ok) throw new Error(r.reason);
  return r.update;
};

describe('the outcome of an incoming call', () => {
  it.each([
    ['completed', 'completed', 'COMPLETED'],
    ['canceled', 'client-hangup', 'CANCELED'],
    ['no-answer', 'incomplete', 'NO_ANSWER'],
    ['busy', 'incomplete', 'BUSY'],
    ['failed', 'incomplete', 'FAILED'],
    [null, 'client-hangup', 'CANCELED'],
    [null, 'incomplete', 'NO_ANSWER'],
    [null, 'completed', 'COMPLETED'],
  ])('DialCallStatus %s with CallType %s → %s', (dial, type, status) => {
    expect(incomingOutcome(dial, type)).toBe(status);
  });

  it('is not decided while the flow runs: no dial outcome, or a Connect applet that reached nobody (call-attempt)', () => {
    expect(incomingOutcome(null, null)).toBeUndefined();
    expect(incomingOutcome(null, 'call-attempt')).toBeUndefined();
    expect(incomingOutcome('no-answer', 'call-attempt')).toBeUndefined();
    expect(incomingOutcome('in-progress', null)).toBeUndefined();
  });
});

describe('a flow request', () => {
  it('never takes the agent\'s Status for the call\'s', () => {
    for (const Status of ['busy', 'free', 'no-answer', 'completed']) {
      const r = parse({ Status, CallType: 'call-attempt' });
      expect(r.status).toBe('IN_PROGRESS');
      expect(r.fields.flow?.agentStatus).toBe(Status);
    }
    expect(parse({ Status: 'busy', CallType: 'completed', DialCallStatus: 'completed' }).status).toBe('COMPLETED');
  });

  it('takes a live CallStatus of the flow, but leaves a terminal one without a dial outcome to call details', () => {
    expect(parse({ CallStatus: 'ringing' }).status).toBe('RINGING');
    expect(parse({ CallStatus: 'completed' }).status).toBe('IN_PROGRESS');
  });

  it('reads "null", "" and the epoch-zero placeholder as not set, and puts back a "+" read as a space', () => {
    const r = parse({ CallFrom: ' 919876543210', CallTo: '08039591111', DialWhomNumber: ' 919800000011', ForwardedFrom: 'null', digits: '"12"', EndTime: '1970-01-01 05:30:00', RecordingUrl: '', AgentEmail: 'NULL', 'Legs[0][Number]': ' 919800000011', 'Legs[0][Cause]': '16' });
    expect(r.fields).toMatchObject({ from: '+919876543210', to: '08039591111' });
    expect(r.fields.legs).toBeUndefined();
    expect(r.fields.flow?.legs).toMatchObject([{ id: 1, number: '+919800000011', cause: '16', causeCode: null }]);
    expect(r.fields.endTime).toBeUndefined();
    expect(r.fields.recordingUrl).toBeUndefined();
    expect(r.fields.flow).toMatchObject({ dialWhomNumber: '+919800000011', forwardedFrom: null, agentEmail: null, digits: '12' });
  });

  it('leaves a date or number it cannot read empty and says which', () => {
    const r = parse({ Created: 'yesterday-ish', DialCallDuration: 'ten' });
    expect(r.unreadable).toEqual(['Created', 'DialCallDuration']);
    expect(r.fields.dateCreated).toBeUndefined();
    expect(r.fields.flow?.dialCallDurationSeconds).toBeNull();
  });

  it('takes the direction it says, and leaves it unknown (never incoming) when it says none', () => {
    expect(parse({ Direction: 'outbound-api' }).fields.direction).toBe('OUTBOUND_API');
    expect(parse({ Direction: 'incoming' }).fields.direction).toBe('INBOUND');
    expect(parse({}).fields).not.toHaveProperty('direction');
    expect(parse({ Direction: 'null' }).fields).not.toHaveProperty('direction');
  });
});

describe('flow dates', () => {
  it.each([
    ['Wed, 23 Feb 2022 12:31:59', '2022-02-23T12:31:59+05:30'],
    ['23 Feb 2022 12:31:59', '2022-02-23T12:31:59+05:30'],
    ['2022-02-23 12:32:02', '2022-02-23T12:32:02+05:30'],
    ['Wed, 23 Feb 2022 07:01:59 GMT', '2022-02-23T12:31:59+05:30'],
    ['Wed, 23 Feb 2022 12:31:59 +0530', '2022-02-23T12:31:59+05:30'],
    ['2022-02-23T07:01:59Z', '2022-02-23T12:31:59+05:30'],
    ['1970-01-01 05:30:00', null],
    [null, null],
    ['Wed, 30 Feb 2022 12:31:59', 'unreadable'],
    ['soon', 'unreadable'],
  ])('%s → %s, whatever the process\'s zone', (raw, iso) => {
    expect(flowDateToIso(raw)).toBe(iso);
  });
});

describe('merging a request into the call', () => {
  const call: Call = {
    sid: 's1', parentCallSid: null, accountSid: 'a', from: '09876543210', to: '08039591111', phoneNumberSid: null, status: 'COMPLETED',
    direction: 'INBOUND', startTime: null, endTime: null, durationSeconds: null, price: null, recordingUrl: null, answeredBy: null,
    customField: null, dateCreated: '2022-02-23T12:31:59+05:30', dateUpdated: '2022-02-23T12:31:59+05:30', conversationDurationSeconds: null,
    legs: [{ id: 1, status: 'COMPLETED', onCallDurationSeconds: 40 }],
    flow: { ...EMPTY_FLOW, dialWhomNumber: '+919800000011', flowId: '1', legs: [{ id: 1, status: null, onCallDurationSeconds: 4, number: '+919800000011' }] },
  };

  it('keeps known values, merges the flow and the legs field by field, and never moves the status back', () => {
    const r = parse({ CallType: 'call-attempt', AgentEmail: 'a@example.com', 'Legs[0][CauseCode]': 'NORMAL_CLEARING', Created: 'Thu, 24 Feb 2022 09:00:00' });
    const merged = mergeCall(call, { ...r.fields, status: r.status });
    expect(merged.status).toBe('COMPLETED');
    expect(merged.dateCreated).toBe(call.dateCreated);
    expect(merged.from).toBe('09876543210');
    expect(merged.flow).toMatchObject({ dialWhomNumber: '+919800000011', flowId: '1', agentEmail: 'a@example.com', callType: 'call-attempt' });
    expect(merged.flow?.legs).toEqual([{ id: 1, status: null, onCallDurationSeconds: 4, number: '+919800000011', causeCode: 'NORMAL_CLEARING' }]);
    // The call details' legs are not the flow's.
    expect(merged.legs).toEqual(call.legs);
  });

  it('never moves the start time earlier: a later request without StartTime names its Created instead', () => {
    const first = parse({ Created: 'Wed, 23 Feb 2022 12:31:59', StartTime: '2022-02-23 12:32:02', CurrentTime: '2022-02-23 12:32:02' });
    const later = parse({ Created: 'Wed, 23 Feb 2022 12:31:59', CurrentTime: '2022-02-23 12:33:10', DialCallStatus: 'completed' });
    const started = mergeCall(call, { ...first.fields, status: first.status });
    expect(started.startTime).toBe('2022-02-23T12:32:02+05:30');
    expect(mergeCall(started, { ...later.fields, status: later.status }).startTime).toBe('2022-02-23T12:32:02+05:30');
    // Read back from the log, each event carrying the call as its request left it.
    const event = (id: string, c: Call): CallEventRecord => ({ kind: 'call', id, accountSid: 'a', callSid: 's1', status: c.status, at: call.dateCreated, source: 'WEBHOOK', forward: true, data: { call: c } });
    const cacheLost = mergeCall(call, { ...later.fields, status: later.status });
    expect(cacheLost.startTime).toBe('2022-02-23T12:31:59+05:30');
    expect(callFromHistory([event('1-0', started), event('2-0', cacheLost)])?.startTime).toBe('2022-02-23T12:32:02+05:30');
    // The other way round, a StartTime named after Created was known takes its place.
    const last = parse({ Created: 'Wed, 23 Feb 2022 12:31:59', StartTime: '2022-02-23 12:32:02', CurrentTime: '2022-02-23 12:34:00' });
    expect(mergeCall(cacheLost, { ...last.fields, status: last.status }).startTime).toBe('2022-02-23T12:32:02+05:30');
  });

  it('keeps at most MAX_LEGS flow legs, however many requests bring new ones', () => {
    const request = (from: number) => parse(Object.fromEntries(Array.from({ length: MAX_LEGS }, (_, k) => [`Legs[${from + k}][Number]`, `+9198${String(from + k).padStart(8, '0')}`])));
    const first = request(0);
    expect(first.fields.flow?.legs).toHaveLength(MAX_LEGS);
    const merged = mergeCall(mergeCall(call, first.fields), request(MAX_LEGS / 2).fields);
    expect(merged.flow?.legs?.map((l) => l.id)).toEqual(Array.from({ length: MAX_LEGS }, (_, i) => i + 1));
  });

  it('reads the call from the log as every request told it, in log order: two requests stored at once both count', () => {
    const event = (id: string, c: Partial<Call>): CallEventRecord => ({
      kind: 'call', id, accountSid: 'a', callSid: 's1', status: c.status ?? 'IN_PROGRESS', at: call.dateCreated, source: 'WEBHOOK', forward: true, data: { call: c },
    });
    const start = { ...call, status: 'IN_PROGRESS' as const, flow: { ...EMPTY_FLOW, flowId: '1', dialWhomNumber: '+919800000011' } };
    // Two requests on two replicas, each merged over what it knew then (a new call: From/To still empty).
    const connect = { ...start, from: '', to: '', flow: { ...EMPTY_FLOW, agentEmail: 'a@example.com' } };
    const end = { ...start, status: 'COMPLETED' as const, flow: { ...EMPTY_FLOW, flowId: '1', dialCallDurationSeconds: 42 } };
    // A status callback's event carries no flow: not a request of the flow.
    const callback = event('2-0', { status: 'RINGING', from: '+910000000000' });
    const merged = callFromHistory([event('1-0', start), callback, event('3-0', end), event('4-0', connect)]);
    expect(merged).toMatchObject({ status: 'COMPLETED', from: '09876543210', to: '08039591111' });
    expect(merged?.flow).toMatchObject({ flowId: '1', dialWhomNumber: '+919800000011', agentEmail: 'a@example.com', dialCallDurationSeconds: 42 });
    expect(callFromHistory([callback])).toBeUndefined();
  });

  it('takes the direction from the last other event that names one when no request of the flow did', () => {
    const event = (id: string, c: Partial<Call>): CallEventRecord => ({
      kind: 'call', id, accountSid: 'a', callSid: 's1', status: 'IN_PROGRESS', at: call.dateCreated, source: 'API', forward: true, data: { call: c },
    });
    const request = { ...call, direction: null, flow: { ...EMPTY_FLOW, flowId: '1' } };
    const placed = event('1-0', { ...call, direction: 'OUTBOUND_API' });
    expect(callFromHistory([placed, event('2-0', request)])).toMatchObject({ direction: 'OUTBOUND_API', flow: { flowId: '1' } });
    expect(callFromHistory([event('1-0', request), event('2-0', { direction: 'OUTBOUND_DIAL' }), event('3-0', { status: 'COMPLETED' })])).toMatchObject({ direction: 'OUTBOUND_DIAL' });
    // What a request of the flow said wins.
    expect(callFromHistory([placed, event('2-0', { ...request, direction: 'INBOUND' })])).toMatchObject({ direction: 'INBOUND' });
    expect(callFromHistory([event('1-0', request)])).toMatchObject({ direction: null });
  });
});
