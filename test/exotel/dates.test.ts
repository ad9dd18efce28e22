import { describe, expect, it } from 'vitest';
import {
  EXOTEL_EPOCH_ZERO,
  epochMsToExotel,
  epochMsToIso,
  exotelToEpochMs,
  exotelToIso,
  InvalidDateTimeError,
  isExotelEpochZero,
  isoToEpochMs,
  isoToExotel,
} from '../../src/exotel/dates.js';

describe('Exotel IST wall-clock → ISO-8601', () => {
  it('makes the +05:30 offset explicit', () => {
    expect(exotelToIso('2026-11-20 10:00:00')).toBe('2026-11-20T10:00:00+05:30');
  });

  it('reads the wall-clock as IST, i.e. 5 h 30 min ahead of UTC', () => {
    expect(exotelToEpochMs('2026-11-20 10:00:00')).toBe(Date.parse('2026-11-20T04:30:00Z'));
  });

  it('treats "1970-01-01 05:30:00" as epoch zero', () => {
    expect(exotelToEpochMs(EXOTEL_EPOCH_ZERO)).toBe(0);
    expect(isExotelEpochZero('1970-01-01 05:30:00')).toBe(true);
    expect(isExotelEpochZero('1970-01-01 00:00:00')).toBe(false);
  });

  it('crosses midnight backwards into the previous UTC day', () => {
    expect(new Date(exotelToEpochMs('2026-03-01 02:00:00')).toISOString()).toBe('2026-02-28T20:30:00.000Z');
  });

  it('accepts 29 February only in leap years', () => {
    expect(exotelToIso('2028-02-29 12:00:00')).toBe('2028-02-29T12:00:00+05:30');
    expect(() => exotelToIso('2026-02-29 12:00:00')).toThrow(InvalidDateTimeError);
  });

  it.each([
    '2026-11-20T10:00:00', // ISO, not Exotel
    '2026-11-20 10:00', // no seconds
    '2026-13-01 10:00:00', // month 13
    '2026-04-31 10:00:00', // April has 30 days
    '2026-11-20 24:00:00',
    '2026-11-20 10:60:00',
    '20-11-2026 10:00:00',
    '',
    ' 2026-11-20 10:00:00',
  ])('rejects malformed %j', (value) => {
    expect(() => exotelToIso(value)).toThrow(InvalidDateTimeError);
    expect(() => exotelToEpochMs(value)).toThrow(/invalid date-time/);
  });
});

describe('ISO-8601 with any offset → Exotel IST wall-clock (DateCreated filters)', () => {
  it('keeps an IST timestamp as it is', () => {
    expect(isoToExotel('2026-11-20T10:00:00+05:30')).toBe('2026-11-20 10:00:00');
  });

  it('shifts UTC forward by 5 h 30 min', () => {
    expect(isoToExotel('2026-11-20T04:30:00Z')).toBe('2026-11-20 10:00:00');
  });

  it('rolls over midnight into the next day', () => {
    expect(isoToExotel('2026-11-20T20:00:00Z')).toBe('2026-11-21 01:30:00');
  });

  it('rolls over the end of a month, including February', () => {
    expect(isoToExotel('2026-04-30T19:00:00Z')).toBe('2026-05-01 00:30:00');
    expect(isoToExotel('2028-02-28T18:30:00Z')).toBe('2028-02-29 00:00:00');
    expect(isoToExotel('2026-02-28T18:30:00Z')).toBe('2026-03-01 00:00:00');
  });

  it('rolls over the end of a year', () => {
    expect(isoToExotel('2026-12-31T18:30:00Z')).toBe('2027-01-01 00:00:00');
    expect(isoToExotel('2026-12-31T18:29:59Z')).toBe('2026-12-31 23:59:59');
  });

  it('handles negative offsets, which can move the date forward by more than a day boundary', () => {
    // 22:00 in New York (UTC-05:00) is 03:00 UTC next day, 08:30 IST.
    expect(isoToExotel('2026-12-31T22:00:00-05:00')).toBe('2027-01-01 08:30:00');
    // 00:30 at UTC+14 is 10:30 UTC the day before.
    expect(isoToExotel('2027-01-01T00:30:00+14:00')).toBe('2026-12-31 16:00:00');
  });

  it('accepts lower-case z, fractions and minutes-only times', () => {
    expect(isoToExotel('2026-11-20T04:30:00.999z')).toBe('2026-11-20 10:00:00');
    expect(isoToExotel('2026-11-20T04:30Z')).toBe('2026-11-20 10:00:00');
    expect(isoToEpochMs('2026-11-20T04:30:00.5Z')).toBe(Date.parse('2026-11-20T04:30:00.500Z'));
  });

  it('turns epoch zero into the Exotel placeholder and back', () => {
    expect(epochMsToExotel(0)).toBe(EXOTEL_EPOCH_ZERO);
    expect(epochMsToIso(0)).toBe('1970-01-01T05:30:00+05:30');
    expect(isoToExotel('1970-01-01T00:00:00Z')).toBe('1970-01-01 05:30:00');
  });

  it('round-trips every half hour across a year boundary', () => {
    const start = Date.parse('2026-12-31T00:00:00Z');
    for (let ms = start; ms < start + 2 * 86_400_000; ms += 1_800_000) {
      const exotel = epochMsToExotel(ms);
      expect(exotelToEpochMs(exotel)).toBe(ms);
      expect(isoToEpochMs(exotelToIso(exotel))).toBe(ms);
    }
  });

  it.each([
    '2026-11-20T10:00:00', // no offset: cannot be placed on the timeline
    '2026-11-20 10:00:00+05:30',
    '2026-11-20T10:00:00+5:30',
    '2026-11-20T10:00:00+15:00',
    '2026-02-30T10:00:00Z',
    '2026-11-20',
    'yesterday',
  ])('rejects %j', (value) => {
    expect(() => isoToExotel(value)).toThrow(InvalidDateTimeError);
  });

  it('rejects a non-finite epoch time', () => {
    expect(() => epochMsToExotel(Number.NaN)).toThrow(InvalidDateTimeError);
  });
});

describe('Exotel dates whatever the process time zone', () => {
  it('reads the Passthru form "Wed, 23 Feb 2022 12:31:59" as IST too', () => {
    expect(exotelToIso('Wed, 23 Feb 2022 12:31:59')).toBe('2022-02-23T12:31:59+05:30');
    expect(exotelToEpochMs('23 Feb 2022 12:31:59')).toBe(Date.parse('2022-02-23T07:01:59Z'));
    expect(() => exotelToIso('Wed, 30 Feb 2022 12:31:59')).toThrow(InvalidDateTimeError);
  });

  it('gives the same instants in a child process running under TZ=America/New_York', async () => {
    // The zone is read once at process start, so it is set on a fresh process rather than here.
    const { execFileSync } = await import('node:child_process');
    const script = [
      "import { exotelToIso, exotelToEpochMs } from './src/exotel/dates.ts';",
      "import { parseCall } from './src/exotel/parse.ts';",
      "const call = parseCall({ Sid: 'a1', Status: 'completed', DateCreated: '2026-03-08 02:30:00', StartTime: 'Sun, 08 Mar 2026 02:30:00', EndTime: '1970-01-01 05:30:00' });",
      'console.log(JSON.stringify({ offset: new Date(2026, 2, 8).getTimezoneOffset(), iso: exotelToIso(\'2026-03-08 02:30:00\'), ms: exotelToEpochMs(\'2026-03-08 02:30:00\'), call }));',
    ].join('\n');
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: new URL('../..', import.meta.url),
      env: { ...process.env, TZ: 'America/New_York' },
      encoding: 'utf8',
    });
    const seen = JSON.parse(out.trim().split('\n').at(-1)!);
    // The child really ran in New York (UTC-5 in winter), and nothing of that leaked into Exotel's dates.
    expect(seen.offset).toBe(300);
    expect(seen.iso).toBe('2026-03-08T02:30:00+05:30');
    expect(seen.ms).toBe(Date.parse('2026-03-07T21:00:00Z'));
    expect(seen.call).toMatchObject({ dateCreated: '2026-03-08T02:30:00+05:30', startTime: '2026-03-08T02:30:00+05:30', endTime: null });
  });
});
