/** Callback tokens, callback bodies and multipart parsing. */
import { describe, expect, it } from 'vitest';
import { parseCallStatusCallback, parseSmsStatusCallback } from '../../src/live/callback-parse.js';
import { MAX_LEGS } from '../../src/exotel/parse.js';
import { parseIncomingCall } from '../../src/live/incoming.js';
import { callbackToken, createCallbackUrls, createTokenCheck } from '../../src/live/callback-urls.js';
import { multipartBoundary, parseMultipartFields } from '../../src/live/multipart.js';

const NOW = '2026-11-20T12:00:00+05:30';

describe('callback URLs', () => {
  it('mints one stable, distinct token per kind and never puts the secret in a URL', () => {
    const secret = 'a-very-secret-webhook-secret';
    const urls = createCallbackUrls({ publicUrl: 'https://gw.example.com/', webhookSecret: secret, accountSid: 'acme' });
    expect(urls.callStatus).toBe(`https://gw.example.com/webhooks/exotel/${callbackToken(secret, 'acme', 'call-status')}/call-status`);
    expect(new Set(Object.values(urls).map((u) => u.split('/').at(-2))).size).toBe(3);
    expect(JSON.stringify(urls)).not.toContain(secret);
    expect(createCallbackUrls({ publicUrl: 'https://gw.example.com', webhookSecret: secret, accountSid: 'acme' })).toEqual(urls);
    expect(createCallbackUrls({ publicUrl: 'https://gw.example.com', webhookSecret: secret, accountSid: 'other' }).callStatus).not.toBe(urls.callStatus);
  });

  it('accepts only the exact token of the kind', () => {
    const check = createTokenCheck('a-very-secret-webhook-secret', 'acme');
    const token = callbackToken('a-very-secret-webhook-secret', 'acme', 'call-status');
    expect(check('call-status', token)).toBe(true);
    expect(check('sms-status', token)).toBe(false);
    expect(check('call-status', token.slice(1))).toBe(false);
    expect(check('call-status', '')).toBe(false);
    expect(check('call-status', `${token}x`)).toBe(false);
  });
});

describe('parseCallStatusCallback', () => {
  it('reads the default four fields, using the receive time when DateUpdated is empty', () => {
    const r = parseCallStatusCallback({ CallSid: 'abc', Status: 'no-answer', RecordingUrl: '', DateUpdated: '' }, NOW);
    expect(r).toEqual({ ok: true, update: { kind: 'call', callSid: 'abc', status: 'NO_ANSWER', at: NOW, source: 'WEBHOOK', fields: { sid: 'abc', status: 'NO_ANSWER' } } });
  });

  it('reads form-flattened legs and Exotel dates', () => {
    const r = parseCallStatusCallback({ CallSid: 'abc', Status: 'completed', StartTime: '2026-11-20 10:00:00', 'Legs[0][Status]': 'completed', 'Legs[0][OnCallDuration]': '12', 'Legs[1][Status]': 'no-answer' }, NOW);
    expect(r.ok && r.update.fields).toMatchObject({
      startTime: '2026-11-20T10:00:00+05:30',
      legs: [{ id: 1, status: 'COMPLETED', onCallDurationSeconds: 12 }, { id: 2, status: 'NO_ANSWER', onCallDurationSeconds: null }],
    });
  });

  it('keeps at most MAX_LEGS legs, those of the lowest indices, of a form or a JSON array', () => {
    const count = MAX_LEGS + 50;
    // Highest index first: the bound keeps the lowest indices, not the first parameters.
    const flat = Object.fromEntries(Array.from({ length: count }, (_, k) => [`Legs[${count - 1 - k}][Status]`, 'busy']));
    const json = { Legs: Array.from({ length: count }, () => ({ Status: 'busy' })) };
    for (const fields of [flat, json]) {
      const r = parseCallStatusCallback({ CallSid: 'abc', Status: 'busy', ...fields }, NOW);
      const legs = r.ok ? r.update.fields.legs : null;
      expect(legs).toHaveLength(MAX_LEGS);
      expect(legs!.map((l) => l.id)).toEqual(Array.from({ length: MAX_LEGS }, (_, i) => i + 1));
    }
  });

  it('keeps the status of a callback whose dates cannot be read: those are left empty and named, the receive time stands in', () => {
    const r = parseCallStatusCallback(
      { CallSid: 'abc', Status: 'completed', DateUpdated: '2026-11-20 10:00:47.0', EndTime: 'yesterday', StartTime: '2026-02-30 10:00:00', DateCreated: ' 2026-11-20 10:00:00 ' },
      NOW,
    );
    expect(r).toEqual({
      ok: true,
      update: { kind: 'call', callSid: 'abc', status: 'COMPLETED', at: NOW, source: 'WEBHOOK', fields: { sid: 'abc', status: 'COMPLETED', dateCreated: '2026-11-20T10:00:00+05:30' } },
      unreadable: ['DateUpdated', 'StartTime', 'EndTime'],
    });
    const sms = parseSmsStatusCallback({ SmsSid: 's1', Status: 'sent', DateSent: '03/03/2017 14:14' }, NOW);
    expect(sms).toMatchObject({ ok: true, update: { status: 'SENT', at: NOW }, unreadable: ['DateSent'] });
  });

  it.each([
    [{ Status: 'completed' }, 'CallSid is missing'],
    [{ CallSid: 'abc' }, 'Status is missing'],
    [{ CallSid: 'abc', Status: 'answered-ish' }, 'not a call status'],
    [{ CallSid: 'x'.repeat(200), Status: 'completed' }, 'not a valid Sid'],
  ])('rejects %j', (fields, reason) => {
    const r = parseCallStatusCallback(fields, NOW);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.reason).toContain(reason);
  });
});

describe('parseSmsStatusCallback and parseIncomingCall', () => {
  it('maps both DND spellings and keeps the detailed status', () => {
    for (const spelling of ['failed_dnd', 'failed-dnd']) {
      const r = parseSmsStatusCallback({ SmsSid: 's1', Status: spelling, DetailedStatus: 'FAILED_REJECTED_DND', DetailedStatusCode: '23005', DateSent: '' }, NOW);
      expect(r.ok && r.update).toMatchObject({ status: 'FAILED_DND', at: NOW, fields: { detailedStatus: 'FAILED_REJECTED_DND', detailedStatusCode: 23005 } });
    }
  });

  it('builds an inbound call from Passthru parameters', () => {
    const r = parseIncomingCall({ CallSid: 'in1', From: '09876543210', To: '08039591111', Direction: 'incoming', Created: 'Fri, 20 Nov 2026 10:00:00 +0530', flow_id: '42' }, NOW);
    expect(r.ok && r.update).toMatchObject({ callSid: 'in1', status: 'IN_PROGRESS', fields: { direction: 'INBOUND', dateCreated: '2026-11-20T10:00:00+05:30', flow: { flowId: '42' } } });
  });
});

describe('Sids in callbacks', () => {
  const parsers = {
    'call status (CallSid)': (sid: unknown) => parseCallStatusCallback({ CallSid: sid, Status: 'completed' }, NOW),
    'SMS status (SmsSid)': (sid: unknown) => parseSmsStatusCallback({ SmsSid: sid, Status: 'sent' }, NOW),
    'Passthru (CallSid)': (sid: unknown) => parseIncomingCall({ CallSid: sid, From: '09876543210' }, NOW),
  };
  const garbage: unknown[] = ['-1', -1, '_x', 'a b', ' abc', 'abc\n', 'a.b', 'a:b', '../etc', 'ab%20c', 'x'.repeat(129), 'é1'];
  const tolerated = ['b6cfaf0a1d8c4ab1c2e4a4f0d12b3456', 'B6CFAF0A1D8C4AB1C2E4A4F0D12B3456', 'b6cfaf0a1d8c4ab1c2e4a4f0d12b3456-k1e', 'in1', 'abc_1-x', '1', 42, 'x'.repeat(128)];

  it.each(Object.entries(parsers))('%s: refuses what cannot be a Sid, naming the field and not echoing the value', (_name, parse) => {
    for (const sid of garbage) {
      const r = parse(sid);
      expect({ sid, ok: r.ok }).toEqual({ sid, ok: false });
      expect(!r.ok && r.reason).toMatch(/^(CallSid|SmsSid) is not a valid Sid$/);
    }
    for (const sid of ['', '   ', null, undefined]) expect(!parse(sid).ok && (parse(sid) as { reason: string }).reason).toMatch(/is missing$/);
  });

  it.each(Object.entries(parsers))('%s: accepts Exotel-shaped Sids and tolerates other token formats', (_name, parse) => {
    for (const sid of tolerated) {
      const r = parse(sid);
      expect({ sid, ok: r.ok }).toEqual({ sid, ok: true });
      const update = r.ok ? r.update : undefined;
      expect(update && ('callSid' in update ? update.callSid : update.smsSid)).toBe(String(sid));
    }
  });
});

describe('multipart', () => {
  it('reads text fields and skips files', () => {
    const body = Buffer.from('--b1\r\nContent-Disposition: form-data; name="CallSid"\r\n\r\nabc\r\n--b1\r\nContent-Disposition: form-data; name="f"; filename="x.txt"\r\nContent-Type: text/plain\r\n\r\nfile\r\n--b1\r\nContent-Disposition: form-data; name="Status"\r\n\r\ncompleted\r\n--b1--\r\n');
    expect(multipartBoundary('multipart/form-data; boundary=b1')).toBe('b1');
    expect(parseMultipartFields(body, 'b1')).toEqual({ CallSid: 'abc', Status: 'completed' });
  });

  it('refuses a body without its closing delimiter', () => {
    expect(parseMultipartFields(Buffer.from('--b1\r\nContent-Disposition: form-data; name="CallSid"\r\n\r\nabc'), 'b1')).toBeUndefined();
  });
});
