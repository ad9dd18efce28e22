import { describe, expect, it } from 'vitest';
import { isGatewayError } from '../../src/errors.js';
import { exotelSid, parsePhoneNumber, smsSender, validateConnectCall, validateSendBulkSms } from '../../src/graphql/validation.js';

describe('parsePhoneNumber', () => {
  it.each([
    ['+919876543210', '+919876543210'],
    ['919876543210', '+919876543210'],
    ['09876543210', '+919876543210'],
    ['9876543210', '+919876543210'],
    ['+91 98765-43210', '+919876543210'],
    ['(080) 3959 1111', '+918039591111'],
    ['08039591111', '+918039591111'],
    ['+14155552671', '+14155552671'],
    ['+447911123456', '+447911123456'],
  ])('reads %s as %s', (raw, expected) => {
    expect(parsePhoneNumber(raw)).toBe(expected);
  });

  it.each(['', '12345', '5876543210', '+9198765', '+0123456789', '00919876543210', '98765432101', '+91987654321012', 'abc', '+91-0876543210'])(
    'rejects %j',
    (raw) => {
      expect(parsePhoneNumber(raw)).toBeNull();
    },
  );
});

describe('smsSender', () => {
  it('keeps a DLT sender id and normalises a number', () => {
    expect(smsSender('EXOSIM', 'input.from')).toBe('EXOSIM');
    expect(smsSender('08039591111', 'input.from')).toBe('+918039591111');
  });

  it('rejects an all-digit non-number and names the field', () => {
    try {
      smsSender('12345', 'input.from');
      expect.unreachable();
    } catch (err) {
      expect(isGatewayError(err) && err.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.from' });
    }
  });
});

describe('validateConnectCall', () => {
  it('normalises numbers and maps options to Exotel parameters', () => {
    expect(
      validateConnectCall({ from: '09876543210', to: '9812345670', callerId: '08039591111', timeLimit: 14_400, timeOut: 60, record: true, recordingChannels: 'DUAL', customField: 'x' }),
    ).toEqual({ from: '+919876543210', to: '+919812345670', callerId: '+918039591111', timeLimitSeconds: 14_400, timeOutSeconds: 60, record: true, recordingChannels: 'dual', customField: 'x' });
  });

  it('leaves unset options out, so equal inputs fingerprint equally', () => {
    expect(validateConnectCall({ from: '9876543210', to: '9812345670', callerId: '08039591111', timeLimit: null, customField: null })).toEqual({
      from: '+919876543210',
      to: '+919812345670',
      callerId: '+918039591111',
    });
  });
});

describe('customField', () => {
  it("refuses the gateway's own request-reference form, which the reconciler would take for a lost request", () => {
    let thrown: unknown;
    try {
      validateConnectCall({ from: '9876543210', to: '9812345670', callerId: '08039591111', customField: 'gateway-ref:abcdefghijklmnop' });
    } catch (err) {
      thrown = err;
    }
    expect(isGatewayError(thrown) && thrown.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.customField' });
    expect(validateConnectCall({ from: '9876543210', to: '9812345670', callerId: '08039591111', customField: 'ticket gateway-ref:x' }).customField).toBe('ticket gateway-ref:x');
  });
});

describe('validateSendBulkSms', () => {
  it('names the index of the failing message', () => {
    expect(() => validateSendBulkSms({ from: 'EXOSIM', messages: [{ to: '9812345670', body: 'a' }, { to: '9812345670', body: 'x'.repeat(2001) }] })).toThrow(
      /input\.messages\[1\]\.body/,
    );
  });
});

describe('exotelSid', () => {
  it('accepts Exotel-shaped Sids and trims them', () => {
    expect(exotelSid(' b6cfaf0e1f2d3c4b5a69788796a5b4c3 ', 'sid')).toBe('b6cfaf0e1f2d3c4b5a69788796a5b4c3');
    expect(exotelSid('a1_b-2', 'sid')).toBe('a1_b-2');
  });

  it.each(['', '-1', '_x', 'a,b', 'a b', 'a.b', 'x'.repeat(129)])('refuses %j with BAD_USER_INPUT naming the field', (sid) => {
    try {
      exotelSid(sid, 'sids[2]');
      expect.unreachable();
    } catch (e) {
      expect(isGatewayError(e) && e.code === 'BAD_USER_INPUT' && e.field === 'sids[2]').toBe(true);
    }
  });
});
