/**
 * Exotel's timestamps ↔ ISO-8601.
 *
 * Exotel writes Indian wall-clock time with no zone, "YYYY-MM-DD HH:mm:ss" (docs/exotel-fidelity.md: IST, UTC+05:30;
 * an unset SMS DateSent comes back as "1970-01-01 05:30:00", which is epoch zero rendered in IST). India
 * has no daylight saving, so the offset is a constant and plain arithmetic on epoch milliseconds is exact:
 * no time-zone database is needed.
 */
import type { ExotelDateTime, IsoDateTime } from './types.js';

/** IST is UTC+05:30 all year round. */
export const IST_OFFSET_MINUTES = 330;
const IST_OFFSET_MS = IST_OFFSET_MINUTES * 60_000;
const IST_SUFFIX = '+05:30';

/** Exotel's "zero" date: epoch 0 rendered in IST, sent for timestamps that are not set yet. */
export const EXOTEL_EPOCH_ZERO: ExotelDateTime = '1970-01-01 05:30:00';

const EXOTEL_RE = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/;
// Passthru/Connect-applet requests write `Created` as "Wed, 23 Feb 2022 12:31:59" — IST too, no zone.
const EXOTEL_WORDY_RE = /^(?:[A-Za-z]{3},\s*)?(\d{1,2}) ([A-Za-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2})$/;
const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
// Seconds and fractions are optional (GraphQL clients often send "…T10:00Z"); the offset is not, because a
// time without a zone cannot be placed on the timeline.
const ISO_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})$/i;

/** Thrown for a timestamp that is not in the expected shape or names a day that does not exist. */
export class InvalidDateTimeError extends Error {
  constructor(value: string, expected: string) {
    super(`invalid date-time ${JSON.stringify(value)}: expected ${expected}`);
    this.name = 'InvalidDateTimeError';
  }
}

interface Fields {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  ms: number;
}

/** Epoch ms of the given wall-clock fields read as UTC, or undefined when a field is out of range (e.g. Feb 30). */
function wallClockAsUtcMs(f: Fields): number | undefined {
  if (f.month < 1 || f.month > 12 || f.day < 1 || f.hour > 23 || f.minute > 59 || f.second > 59) return undefined;
  const ms = Date.UTC(f.year, f.month - 1, f.day, f.hour, f.minute, f.second, f.ms);
  // Date.UTC silently rolls Feb 30 into March; a round trip catches days that do not exist.
  const back = new Date(ms);
  if (back.getUTCFullYear() !== f.year || back.getUTCMonth() !== f.month - 1 || back.getUTCDate() !== f.day) return undefined;
  return ms;
}

const pad2 = (n: number) => String(n).padStart(2, '0');
const pad4 = (n: number) => String(n).padStart(4, '0');

/** Wall-clock fields of `epochMs` shifted by `offsetMs` (read back with the UTC getters). */
function shiftedFields(epochMs: number, offsetMs: number): Fields {
  const d = new Date(epochMs + offsetMs);
  return {
    year: d.getUTCFullYear(),
    month: d.getUTCMonth() + 1,
    day: d.getUTCDate(),
    hour: d.getUTCHours(),
    minute: d.getUTCMinutes(),
    second: d.getUTCSeconds(),
    ms: d.getUTCMilliseconds(),
  };
}

/**
 * Epoch milliseconds of an Exotel timestamp ("2026-11-20 10:00:00", or "Fri, 20 Nov 2026 10:00:00" as
 * Passthru requests write it), always read as IST whatever the process's TZ; throws InvalidDateTimeError.
 */
export function exotelToEpochMs(value: ExotelDateTime): number {
  const utc = exotelWallClockMs(value);
  if (utc === undefined) throw new InvalidDateTimeError(value, 'Exotel "YYYY-MM-DD HH:mm:ss" (IST)');
  return utc - IST_OFFSET_MS;
}

/** The wall-clock of an Exotel timestamp as if it were UTC, or undefined when it is not one. */
function exotelWallClockMs(value: string): number | undefined {
  const m = EXOTEL_RE.exec(value);
  if (m) return wallClockAsUtcMs({ year: +m[1]!, month: +m[2]!, day: +m[3]!, hour: +m[4]!, minute: +m[5]!, second: +m[6]!, ms: 0 });
  const w = EXOTEL_WORDY_RE.exec(value);
  const month = w ? MONTHS.indexOf(w[2]!.toLowerCase()) + 1 : 0;
  if (!w || month === 0) return undefined;
  return wallClockAsUtcMs({ year: +w[3]!, month, day: +w[1]!, hour: +w[4]!, minute: +w[5]!, second: +w[6]!, ms: 0 });
}

/** "2026-11-20 10:00:00" → "2026-11-20T10:00:00+05:30" (same instant, zone made explicit). */
export function exotelToIso(value: ExotelDateTime): IsoDateTime {
  return epochMsToIso(exotelToEpochMs(value));
}

/** Epoch milliseconds of an ISO-8601 timestamp with an offset (Z or ±HH:MM); throws InvalidDateTimeError. */
export function isoToEpochMs(value: IsoDateTime): number {
  const m = ISO_RE.exec(value);
  if (m) {
    const fraction = (m[7] ?? '').padEnd(3, '0').slice(0, 3);
    const utc = wallClockAsUtcMs({
      year: +m[1]!,
      month: +m[2]!,
      day: +m[3]!,
      hour: +m[4]!,
      minute: +m[5]!,
      second: m[6] === undefined ? 0 : +m[6],
      ms: +fraction,
    });
    const offset = parseOffsetMinutes(m[8]!);
    if (utc !== undefined && offset !== undefined) return utc - offset * 60_000;
  }
  throw new InvalidDateTimeError(value, 'ISO-8601 with an offset, e.g. "2026-11-20T10:00:00+05:30" or "…Z"');
}

function parseOffsetMinutes(offset: string): number | undefined {
  if (offset.toUpperCase() === 'Z') return 0;
  const sign = offset.startsWith('-') ? -1 : 1;
  const hours = +offset.slice(1, 3);
  const minutes = +offset.slice(4, 6);
  // Real offsets span -12:00…+14:00; anything else is a typo, not a zone.
  if (hours > 14 || minutes > 59) return undefined;
  return sign * (hours * 60 + minutes);
}

/** Epoch ms → Exotel's IST wall-clock "YYYY-MM-DD HH:mm:ss" (sub-second precision is dropped). */
export function epochMsToExotel(epochMs: number): ExotelDateTime {
  if (!Number.isFinite(epochMs)) throw new InvalidDateTimeError(String(epochMs), 'a finite epoch time');
  const f = shiftedFields(epochMs, IST_OFFSET_MS);
  if (f.year < 0 || f.year > 9999) throw new InvalidDateTimeError(String(epochMs), 'a year between 0000 and 9999');
  return `${pad4(f.year)}-${pad2(f.month)}-${pad2(f.day)} ${pad2(f.hour)}:${pad2(f.minute)}:${pad2(f.second)}`;
}

/** Epoch ms → ISO-8601 in IST, e.g. "2026-11-20T10:00:00+05:30" (the zone Exotel's own dates are in). */
export function epochMsToIso(epochMs: number): IsoDateTime {
  return `${epochMsToExotel(epochMs).replace(' ', 'T')}${IST_SUFFIX}`;
}

/** Any ISO-8601 timestamp with an offset → Exotel's IST wall-clock (for `DateCreated` filters). */
export function isoToExotel(value: IsoDateTime): ExotelDateTime {
  return epochMsToExotel(isoToEpochMs(value));
}

/**
 * True for Exotel's "not set" placeholder dates: epoch zero in IST (what Exotel sends) and the
 * all-zero date some exports write instead.
 */
export function isExotelEpochZero(value: string): boolean {
  return value === EXOTEL_EPOCH_ZERO || value === '0000-00-00 00:00:00';
}
