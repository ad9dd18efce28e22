import { describe, expect, it } from 'vitest';
import { cursorFrom, listParams } from '../../src/exotel/calls.js';
import { nextPageQuery, normaliseNumber } from '../../src/exotel/numbers.js';
import { createUnreadableFieldLog, parseCall, parseDnd, parseExoPhone, parseNumberMetadata, parseSms, toCallStatus, toSmsStatus } from '../../src/exotel/parse.js';
import { createRetryBudget, fullJitterBackoffMs, parseRetryAfterMs } from '../../src/exotel/retry.js';
import { bulkResults } from '../../src/exotel/sms.js';
import type { WireCall, WireSms } from '../../src/exotel/types.js';
import { GatewayError } from '../../src/errors.js';

// Exotel's documented call-details sample (Exotel's call details API docs), with its string numbers and Details block.
const wireCall: WireCall = {
  Sid: 'b6cfaf5f5cef3ca0fc937749ef96d245',
  ParentCallSid: '',
  DateCreated: '2026-11-20 10:00:00',
  DateUpdated: '2026-11-20 10:00:47',
  AccountSid: 'acme1',
  To: '09800000000',
  From: '09900000000',
  PhoneNumberSid: '08039591111',
  Status: 'completed',
  StartTime: '2026-11-20 10:00:00',
  EndTime: '2026-11-20 10:00:47',
  Duration: '47',
  Price: '1.500',
  Direction: 'outbound-api',
  AnsweredBy: 'human',
  ForwardedFrom: '',
  CallerName: '',
  Uri: '/v1/Accounts/acme1/Calls/b6cfaf.json',
  RecordingUrl: 'https://example.test/r.mp3',
  Details: {
    ConversationDuration: 40,
    Leg1Status: 'completed',
    Leg2Status: 'completed',
    Legs: [{ Leg: { Id: 1, OnCallDuration: 47, Status: 'completed' } }, { Leg: { Id: 2, OnCallDuration: '40', Status: 'completed' } }],
  },
};

describe('parseCall', () => {
  it('turns the documented sample into the domain shape', () => {
    expect(parseCall(wireCall)).toEqual({
      sid: 'b6cfaf5f5cef3ca0fc937749ef96d245',
      parentCallSid: null,
      accountSid: 'acme1',
      from: '09900000000',
      to: '09800000000',
      phoneNumberSid: '08039591111',
      status: 'COMPLETED',
      direction: 'OUTBOUND_API',
      startTime: '2026-11-20T10:00:00+05:30',
      endTime: '2026-11-20T10:00:47+05:30',
      durationSeconds: 47,
      price: 1.5,
      recordingUrl: 'https://example.test/r.mp3',
      answeredBy: 'human',
      customField: null,
      dateCreated: '2026-11-20T10:00:00+05:30',
      dateUpdated: '2026-11-20T10:00:47+05:30',
      conversationDurationSeconds: 40,
      legs: [
        { id: 1, status: 'COMPLETED', onCallDurationSeconds: 47 },
        { id: 2, status: 'COMPLETED', onCallDurationSeconds: 40 },
      ],
    });
  });

  it('reads "" and null alike, and a call without Details has legs null', () => {
    const { Details: _details, ...bare } = wireCall;
    const call = parseCall({ ...bare, Status: 'in-progress', EndTime: null, Duration: '', Price: null, RecordingUrl: '', Direction: '' });
    expect(call).toMatchObject({ status: 'IN_PROGRESS', endTime: null, durationSeconds: null, price: null, recordingUrl: null, direction: null, legs: null });
  });

  it('fills leg statuses from Leg1Status/Leg2Status when the Legs items have none', () => {
    const call = parseCall({
      ...wireCall,
      Details: { ConversationDuration: '', Leg1Status: 'completed', Leg2Status: 'no-answer', Legs: [{ Leg: { Id: 1, OnCallDuration: 21, Status: '' } }] },
    });
    expect(call.legs).toEqual([
      { id: 1, status: 'COMPLETED', onCallDurationSeconds: 21 },
      { id: 2, status: 'NO_ANSWER', onCallDurationSeconds: null },
    ]);
  });

  it('throws UPSTREAM_ERROR for an unknown status or a missing Sid instead of guessing', () => {
    expect(() => parseCall({ ...wireCall, Status: 'teleported' as WireCall['Status'] })).toThrow(GatewayError);
    expect(() => parseCall({ ...wireCall, Sid: '' })).toThrow(/Sid/);
  });

  it('makes an unreadable field null and reports it, instead of failing the call', () => {
    const reported: string[] = [];
    const call = parseCall(
      { ...wireCall, Duration: 'eleven', Price: 'n/a', EndTime: 'soon', DateCreated: '20/11/2026' },
      { unreadable: (object, field) => reported.push(`${object}.${field}`) },
    );
    expect(call).toMatchObject({ status: 'COMPLETED', durationSeconds: null, price: null, endTime: null });
    // An unreadable DateCreated falls back to the earliest other date Exotel sent.
    expect(call.dateCreated).toBe('2026-11-20T10:00:00+05:30');
    expect(reported.sort()).toEqual(['Call.DateCreated', 'Call.Duration', 'Call.EndTime', 'Call.Price']);
  });

  it('reads JSON numbers, the string "null", the epoch-zero placeholder, and a Uri without .json', () => {
    const reported: string[] = [];
    const call = parseCall(
      { ...wireCall, Sid: 'b6cfaf5f5cef3ca0fc937749ef96189g', Duration: 11, Price: 0.75, EndTime: '1970-01-01 05:30:00', ParentCallSid: 'null', Uri: '/v1/Accounts/acme1/Calls/b6cf' },
      { unreadable: (object, field) => reported.push(`${object}.${field}`) },
    );
    expect(call).toMatchObject({ sid: 'b6cfaf5f5cef3ca0fc937749ef96189g', durationSeconds: 11, price: 0.75, endTime: null, parentCallSid: null });
    expect(reported).toEqual([]);
  });
});

describe('statuses', () => {
  it.each([
    ['queued', 'QUEUED'],
    ['ringing', 'RINGING'],
    ['in-progress', 'IN_PROGRESS'],
    ['in_progress', 'IN_PROGRESS'],
    ['completed', 'COMPLETED'],
    ['busy', 'BUSY'],
    ['no-answer', 'NO_ANSWER'],
    ['failed', 'FAILED'],
    ['canceled', 'CANCELED'],
    ['cancelled', 'CANCELED'],
  ])('call %s → %s', (wire, domain) => {
    expect(toCallStatus(wire)).toBe(domain);
  });

  it.each([
    ['failed_dnd', 'FAILED_DND'],
    ['failed-dnd', 'FAILED_DND'],
    ['sent', 'SENT'],
    ['delivered', 'DELIVERED'],
    ['submitted', 'SUBMITTED'],
    ['undelivered', 'UNDELIVERED'],
    ['expired', 'EXPIRED'],
  ])('SMS %s → %s', (wire, domain) => {
    expect(toSmsStatus(wire)).toBe(domain);
  });
});

describe('parseSms', () => {
  const wire: WireSms = {
    Sid: '0b6c6a98',
    AccountSid: 'acme1',
    From: '/acme1',
    To: '09876543210',
    DateCreated: '2026-11-24 18:00:00',
    DateUpdated: '2026-11-24 18:00:00',
    DateSent: '1970-01-01 05:30:00',
    Body: 'Your order has shipped',
    Direction: 'outbound-api',
    Uri: '/v1/x',
    ApiVersion: '',
    Price: '',
    Status: 'failed_dnd',
    DetailedStatusCode: '23005',
    DetailedStatus: 'FAILED_REJECTED_DND',
  };

  it('maps the epoch-zero DateSent placeholder to null and string codes to numbers', () => {
    expect(parseSms(wire)).toMatchObject({ status: 'FAILED_DND', dateSent: null, price: null, detailedStatusCode: 23005, dateCreated: '2026-11-24T18:00:00+05:30' });
  });
});

describe('number metadata and ExoPhones', () => {
  it('maps DND Yes/No to booleans and anything else to null', () => {
    expect(parseDnd('Yes')).toBe(true);
    expect(parseDnd('no')).toBe(false);
    expect(parseDnd('')).toBeNull();
    expect(parseNumberMetadata({ PhoneNumber: '', Circle: 'KA', CircleName: '', Type: 'Mobile', Operator: 'A', OperatorName: 'Airtel', DND: 'No' }, '+919876543210')).toEqual({
      phoneNumber: '+919876543210',
      circle: 'KA',
      circleName: null,
      type: 'Mobile',
      operator: 'A',
      operatorName: 'Airtel',
      dnd: false,
    });
  });

  it('parses ExoPhones tolerantly: capability maps or lists, missing fields, unusable items dropped', () => {
    expect(parseExoPhone({ sid: '011', phone_number: '+9111', friendly_name: '', capabilities: { voice: true, sms: false }, region: 'DL' })).toEqual({
      sid: '011',
      phoneNumber: '+9111',
      friendlyName: null,
      capabilities: ['voice'],
      region: 'DL',
    });
    expect(parseExoPhone({ phone_number: '+9122', capabilities: ['Voice', 'SMS'] })).toMatchObject({ sid: '+9122', capabilities: ['voice', 'sms'] });
    expect(parseExoPhone({ sid: 'x' })).toBeUndefined();
  });

  it('takes only the query of a next_page_uri, and only for our own path', () => {
    const path = '/v2_beta/Accounts/acme1/IncomingPhoneNumbers';
    expect(nextPageQuery(`http://twilix.exotel.com${path}?Page=1&PageSize=50`, path)?.toString()).toBe('Page=1&PageSize=50');
    expect(nextPageQuery('/v2_beta/Accounts/other/IncomingPhoneNumbers?Page=1', path)).toBeUndefined();
    expect(nextPageQuery(null, path)).toBeUndefined();
  });

  it('normalises phone numbers and rejects what is not one', () => {
    expect(normaliseNumber(' +91 98765-43210 ')).toBe('+919876543210');
    expect(() => normaliseNumber('../Calls')).toThrow(/not a phone number/);
  });
});

describe('bulk call details query', () => {
  it('builds Exotel filters with IST dates and comma lists', () => {
    const q = listParams({
      sids: ['a1', 'b2'],
      dateCreatedFrom: '2026-11-19T18:30:00Z',
      dateCreatedTo: '2026-11-20T23:59:59+05:30',
      status: ['COMPLETED', 'NO_ANSWER'],
      direction: 'OUTBOUND_API',
      to: ['09800000000', '09800000001'],
      sort: 'asc',
      pageSize: 20,
      after: 'cur',
      details: true,
    });
    expect(Object.fromEntries(q)).toEqual({
      Sid: 'a1,b2',
      DateCreated: 'gte:2026-11-20 00:00:00;lte:2026-11-20 23:59:59',
      Status: 'completed,no-answer',
      Direction: 'outbound-api',
      To: '09800000000,09800000001',
      SortBy: 'DateCreated:asc',
      PageSize: '20',
      After: 'cur',
      details: 'true',
    });
  });

  it.each([
    [{ sids: Array.from({ length: 101 }, (_, i) => `s${i}`) }, /sids: at most 100/],
    [{ to: ['1', '2', '3', '4', '5', '6'] }, /to: at most 5/],
    [{ pageSize: 101 }, /pageSize/],
    [{ dateCreatedFrom: '2026-11-20 10:00:00' }, /dateCreatedFrom/],
  ])('rejects %j with BAD_USER_INPUT', (query, message) => {
    let error: unknown;
    try {
      listParams(query);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(GatewayError);
    expect((error as GatewayError).code).toBe('BAD_USER_INPUT');
    expect((error as GatewayError).message).toMatch(message);
  });

  it('finds cursors in relative or absolute page URIs', () => {
    expect(cursorFrom('/v1/Accounts/a/Calls.json?PageSize=2&After=abc%3D', 'After')).toBe('abc=');
    expect(cursorFrom('https://api.exotel.com/v1/Accounts/a/Calls.json?Before=xyz', 'Before')).toBe('xyz');
    expect(cursorFrom(null, 'After')).toBeNull();
    expect(cursorFrom('', 'After')).toBeNull();
  });
});

describe('bulk SMS results', () => {
  const sms = (to: string) => ({
    SMSMessage: { Sid: `sid-${to}`, AccountSid: 'a', From: 'X', To: to, DateCreated: '2026-11-24 18:00:00', DateUpdated: '2026-11-24 18:00:00', Status: 'queued' },
  });

  it('keeps input order and puts each error in its own slot', () => {
    const results = bulkResults([sms('09800000001'), { RestException: { Status: 400, Message: 'Invalid Recipient [x]' } }], ['09800000001', 'x']);
    expect(results).toEqual([
      expect.objectContaining({ ok: true, to: '09800000001', sms: expect.objectContaining({ sid: 'sid-09800000001' }) }),
      { ok: false, to: 'x', status: 400, message: 'Invalid Recipient [x]' },
    ]);
  });

  it("keeps a per-message RestException's numeric Code", () => {
    const results = bulkResults([{ RestException: { Status: 403, Message: 'Your account is not yet KYC compliant', Code: '340030', To: 'x' } }], ['x']);
    expect(results).toEqual([{ ok: false, to: 'x', status: 403, message: 'Your account is not yet KYC compliant', exotelCode: 340030 }]);
  });

  it('reads the short form by recipient: a message it names is sent, one it leaves out is unknown', () => {
    const sent = { accountSid: 'acme1', from: 'WEBDEV', messages: [{ to: '09800000001', body: 'one' }, { to: '09800000002', body: 'two' }, { to: '09800000003', body: 'three' }] };
    const results = bulkResults({ SMSMessages: [{ Sid: 's3', Status: 'queued', To: '+919800000003' }, { Sid: 's1', Status: 'queued', To: '09800000001' }] }, sent, { nowMs: () => Date.parse('2026-11-24T12:30:00Z') });
    expect(results[0]).toMatchObject({ ok: true, sms: { sid: 's1', body: 'one', from: 'WEBDEV', dateCreated: '2026-11-24T18:00:00+05:30' } });
    expect(results[1]).toMatchObject({ ok: false, status: 0 });
    expect(results[2]).toMatchObject({ ok: true, sms: { sid: 's3', body: 'three', to: '+919800000003' } });
  });

  it('matches by recipient when the answer does not line up, and says when a message is unaccounted for', () => {
    const results = bulkResults([sms('09800000002')], ['+919800000001', '+919800000002']);
    expect(results[0]).toMatchObject({ ok: false, status: 0, message: expect.stringMatching(/may or may not have been sent/) });
    expect(results[1]).toMatchObject({ ok: true, sms: { sid: 'sid-09800000002' } });
  });
});

describe('retry arithmetic', () => {
  it('reads Retry-After as seconds or as an HTTP date', () => {
    const now = Date.parse('2026-11-20T10:00:00Z');
    expect(parseRetryAfterMs('30', now)).toBe(30_000);
    expect(parseRetryAfterMs('Fri, 20 Nov 2026 10:00:05 GMT', now)).toBe(5_000);
    expect(parseRetryAfterMs('Fri, 20 Nov 2026 09:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfterMs('soon', now)).toBeUndefined();
    expect(parseRetryAfterMs(null, now)).toBeUndefined();
  });

  it('backs off with full jitter under a doubling ceiling', () => {
    expect(fullJitterBackoffMs(1, 1000, 8000, () => 0.999)).toBe(999);
    expect(fullJitterBackoffMs(3, 1000, 8000, () => 0.5)).toBe(2000);
    expect(fullJitterBackoffMs(10, 1000, 8000, () => 0.5)).toBe(4000);
    expect(fullJitterBackoffMs(2, 1000, 8000, () => 0)).toBe(0);
  });

  it('allows retries up to a share of first attempts over the window, with a floor', () => {
    let now = 0;
    const budget = createRetryBudget({ ratio: 0.1, minPerWindow: 2, windowMs: 1000, now: () => now });
    for (let i = 0; i < 30; i++) budget.recordAttempt();
    const granted = Array.from({ length: 10 }, () => budget.tryRetry()).filter(Boolean).length;
    expect(granted).toBe(3);
    now += 1001;
    expect([budget.tryRetry(), budget.tryRetry(), budget.tryRetry()]).toEqual([true, true, false]);
  });
});

describe('unreadable fields', () => {
  it('are logged once per object and field at debug, without the value', () => {
    const lines: Array<Record<string, unknown>> = [];
    const unreadable = createUnreadableFieldLog({ debug: (obj) => lines.push(obj) });
    for (let i = 0; i < 3; i++) parseCall({ ...wireCall, Duration: `secret-${i}` }, { unreadable });
    parseSms({ ...wireCall, Sid: 's1', Status: 'sent', Price: 'n/a' } as unknown as WireSms, { unreadable });
    expect(lines).toEqual([
      { object: 'Call', field: 'Duration' },
      { object: 'SMSMessage', field: 'Price' },
    ]);
  });
});
