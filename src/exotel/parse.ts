/**
 * Exotel wire objects → the gateway's domain types.
 *
 * Exotel is loose (docs/exotel-fidelity.md): empty fields arrive as "", null or the
 * string "null"; numbers as JSON numbers or strings; statuses in two spellings; unset dates as epoch zero
 * in IST. Every such quirk is absorbed here so the rest of the gateway sees one clean shape. A field that
 * cannot be read at all becomes null (reported once through `unreadable`, logged at debug by the client);
 * only an object without a Sid or with an unknown status is an upstream error, never a silent guess.
 */
import { assertNever } from '../assert-never.js';
import { ErrorCode, GatewayError } from '../errors.js';
import { epochMsToIso, exotelToIso, isExotelEpochZero, isoToEpochMs } from './dates.js';
import type {
  Call,
  CallDirection,
  CallLeg,
  CallStatus,
  ExoPhone,
  NumberMetadata,
  SmsMessage,
  SmsStatus,
  WireCall,
  WireCallDetails,
  WireExoPhone,
  WireNumberResponse,
  WireSms,
} from './types.js';

function upstream(message: string): GatewayError {
  return new GatewayError(ErrorCode.UPSTREAM_ERROR, `Exotel sent an unexpected answer: ${message}`);
}

/** Told about a field Exotel sent but the gateway could not read (it is shown as null). */
export type UnreadableField = (object: 'Call' | 'SMSMessage' | 'ExoPhone' | 'Numbers', field: string) => void;

/** How a parse runs: who hears about unreadable fields, and the clock for dates Exotel left out. */
export interface ParseOptions {
  unreadable?: UnreadableField;
  /** Told about an item of a list that is left out because its Sid or status cannot be read. */
  unreadableItem?: (object: 'Call', error: GatewayError) => void;
  /** Epoch ms "now"; stands in for a required date Exotel did not send in any readable form. */
  nowMs?: () => number;
}

const ignore: UnreadableField = () => {};

/** An UnreadableField that logs each (object, field) once at debug: the same odd field must not flood logs. */
export function createUnreadableFieldLog(logger: { debug(obj: Record<string, unknown>, msg: string): void }): UnreadableField {
  const seen = new Set<string>();
  return (object, field) => {
    const key = `${object}.${field}`;
    if (seen.has(key)) return;
    seen.add(key);
    logger.debug({ object, field }, 'Exotel sent a field the gateway cannot read; it is shown as null');
  };
}

/** "" / null / undefined / whitespace / the string "null" (legacy answers) → null; anything else → its string form. */
export function text(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  const s = typeof value === 'string' ? value : typeof value === 'number' || typeof value === 'boolean' ? String(value) : null;
  if (s === null) return null;
  const trimmed = s.trim();
  return trimmed === '' || trimmed.toLowerCase() === 'null' ? null : s;
}

/** A number that may arrive as a string ("1.500", "47"); empty or non-numeric → null. */
export function num(value: unknown): number | null {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  const s = text(value);
  if (s === null) return null;
  const n = Number(s.trim());
  return Number.isFinite(n) ? n : null;
}

/** Like num(), but only whole numbers GraphQL's Int can carry (durations, status codes, leg ids). */
export function int(value: unknown): number | null {
  const n = num(value);
  // What GraphQL's Int can carry (32-bit signed): a larger count or id from Exotel is as unreadable as text.
  return n !== null && Number.isInteger(n) && n >= -0x80000000 && n <= 0x7fffffff ? n : null;
}

/** Most legs kept of one request or callback (a 64 KiB body can carry hundreds): those of the lowest indices. */
export const MAX_LEGS = 100;

/** `Legs[i][Name]`: any index of up to nine digits (so `i + 1`, a leg's id, is a GraphQL Int). */
const FLAT_LEG_KEY = /^Legs\[(\d{1,9})\]\[(\w{1,32})\]$/;

/**
 * The `Legs` of a callback or flow request as [index, parameters], in index order: a JSON array, or the
 * flat form keys `Legs[i][Name]` (any order, gaps allowed). At most MAX_LEGS, the lowest indices.
 */
export function legItems(fields: Record<string, unknown>): Array<[number, Record<string, unknown>]> {
  if (Array.isArray(fields.Legs)) {
    return fields.Legs.slice(0, MAX_LEGS).flatMap((item: unknown, i): Array<[number, Record<string, unknown>]> =>
      item && typeof item === 'object' ? [[i, item as Record<string, unknown>]] : [],
    );
  }
  const byIndex = new Map<number, Record<string, unknown>>();
  for (const [key, value] of Object.entries(fields)) {
    const m = FLAT_LEG_KEY.exec(key);
    if (!m) continue;
    const index = Number(m[1]);
    let leg = byIndex.get(index);
    if (!leg) byIndex.set(index, (leg = Object.create(null) as Record<string, unknown>));
    leg[m[2]!] = value;
  }
  return [...byIndex].sort(([a], [b]) => a - b).slice(0, MAX_LEGS);
}

/** An Exotel timestamp (or ISO with an offset) → ISO; undefined when it is there but not a date. */
function readDate(s: string): string | undefined {
  try {
    return exotelToIso(s);
  } catch {
    try {
      return epochMsToIso(isoToEpochMs(s));
    } catch {
      return undefined;
    }
  }
}

/** An optional Exotel timestamp → ISO, treating ""/null/"null" and the epoch-zero placeholder as null. */
export function optionalDate(value: unknown): string | null {
  const s = text(value);
  if (s === null || isExotelEpochZero(s.trim())) return null;
  return readDate(s.trim()) ?? null;
}

/** True for a value that says something (not empty, not "null", not the epoch-zero placeholder). */
function isPresent(value: unknown): boolean {
  if (value === null || value === undefined) return false;
  if (typeof value === 'object') return true;
  const s = text(value);
  return s !== null && !isExotelEpochZero(s.trim());
}

/**
 * Reads one field of a wire object; a value that is there but unreadable is reported and becomes null.
 * `read` must return null only for an empty value or an unreadable one.
 */
function fieldReader(object: Parameters<UnreadableField>[0], wire: Record<string, unknown>, unreadable: UnreadableField) {
  return <T>(name: string, read: (value: unknown) => T | null, value: unknown = wire[name]): T | null => {
    const out = read(value);
    if (out === null && isPresent(value)) unreadable(object, name);
    return out;
  };
}

/** Lower-case, with "_" and "-" treated alike, so "in_progress", "In-Progress", "failed_dnd" all match. */
function normalise(status: string): string {
  return status.trim().toLowerCase().replace(/_/g, '-');
}

/** Exotel call (or leg) status → CallStatus; undefined when not recognised. */
export function toCallStatus(value: unknown): CallStatus | undefined {
  const s = text(value);
  if (s === null) return undefined;
  switch (normalise(s)) {
    case 'queued':
      return 'QUEUED';
    case 'ringing':
      return 'RINGING';
    case 'in-progress':
      return 'IN_PROGRESS';
    case 'completed':
      return 'COMPLETED';
    case 'failed':
      return 'FAILED';
    case 'busy':
      return 'BUSY';
    case 'no-answer':
      return 'NO_ANSWER';
    case 'canceled':
    case 'cancelled':
      return 'CANCELED';
    default:
      return undefined;
  }
}

/** A required call status: unknown values are an upstream error rather than a guess. */
export function parseCallStatus(value: unknown): CallStatus {
  const status = toCallStatus(value);
  if (status === undefined) throw upstream(`unknown call status ${JSON.stringify(value)}`);
  return status;
}

/** CallStatus → Exotel's spelling (used for the `Status` filter of bulk call details). */
export function callStatusToWire(status: CallStatus): string {
  switch (status) {
    case 'QUEUED':
      return 'queued';
    case 'RINGING':
      return 'ringing';
    case 'IN_PROGRESS':
      return 'in-progress';
    case 'COMPLETED':
      return 'completed';
    case 'FAILED':
      return 'failed';
    case 'BUSY':
      return 'busy';
    case 'NO_ANSWER':
      return 'no-answer';
    case 'CANCELED':
      return 'canceled';
    default:
      return assertNever(status, 'call status');
  }
}

/** Exotel direction → CallDirection; unknown or empty → null (it is optional in the contract). */
export function toCallDirection(value: unknown): CallDirection | null {
  const s = text(value);
  if (s === null) return null;
  switch (normalise(s)) {
    case 'inbound':
    case 'incoming':
      return 'INBOUND';
    case 'outbound-api':
      return 'OUTBOUND_API';
    case 'outbound-dial':
      return 'OUTBOUND_DIAL';
    default:
      return null;
  }
}

/** CallDirection → Exotel's spelling (bulk call details `Direction` filter). */
export function callDirectionToWire(direction: CallDirection): string {
  switch (direction) {
    case 'INBOUND':
      return 'inbound';
    case 'OUTBOUND_API':
      return 'outbound-api';
    case 'OUTBOUND_DIAL':
      return 'outbound-dial';
    default:
      return assertNever(direction, 'call direction');
  }
}

/** Exotel SMS status → SmsStatus; both DND spellings (failed_dnd, failed-dnd) map to FAILED_DND. */
export function toSmsStatus(value: unknown): SmsStatus | undefined {
  const s = text(value);
  if (s === null) return undefined;
  switch (normalise(s)) {
    case 'queued':
      return 'QUEUED';
    case 'sending':
      return 'SENDING';
    case 'submitted':
      return 'SUBMITTED';
    case 'sent':
      return 'SENT';
    case 'delivered':
      return 'DELIVERED';
    case 'failed':
      return 'FAILED';
    case 'failed-dnd':
      return 'FAILED_DND';
    case 'expired':
      return 'EXPIRED';
    case 'undelivered':
      return 'UNDELIVERED';
    default:
      return undefined;
  }
}

/** A required SMS status: unknown values are an upstream error. */
export function parseSmsStatus(value: unknown): SmsStatus {
  const status = toSmsStatus(value);
  if (status === undefined) throw upstream(`unknown SMS status ${JSON.stringify(value)}`);
  return status;
}

/** The `Details.Legs` array (each item wrapped in `{Leg: …}` by Exotel's XML-to-JSON); tolerant of bare items. */
export function parseLegs(details: WireCallDetails | undefined | null): CallLeg[] | null {
  if (!details || typeof details !== 'object') return null;
  const legs: CallLeg[] = [];
  const raw: unknown[] = Array.isArray(details.Legs) ? details.Legs : [];
  raw.forEach((item, index) => {
    const leg = (item && typeof item === 'object' && 'Leg' in item ? (item as { Leg: unknown }).Leg : item) as Record<string, unknown> | null;
    if (!leg || typeof leg !== 'object') return;
    legs.push({
      id: int(leg.Id) ?? index + 1,
      status: toCallStatus(leg.Status) ?? null,
      onCallDurationSeconds: int(leg.OnCallDuration),
    });
  });
  // Older answers carry only Leg1Status/Leg2Status: fill the statuses the Legs array left out.
  const summary = [details.Leg1Status, details.Leg2Status];
  summary.forEach((status, i) => {
    const existing = legs.find((l) => l.id === i + 1);
    const parsed = toCallStatus(status) ?? null;
    if (existing) {
      if (existing.status === null) existing.status = parsed;
    } else if (parsed !== null) {
      legs.push({ id: i + 1, status: parsed, onCallDurationSeconds: null });
    }
  });
  return legs.sort((a, b) => a.id - b.id);
}

/** `{Call: …}` → Call. Only a missing Sid or an unknown status fails the call; other odd fields become null. */
export function parseCall(wire: WireCall, options: ParseOptions = {}): Call {
  if (!wire || typeof wire !== 'object' || !text(wire.Sid)) throw upstream('a call without a Sid');
  const w = wire as unknown as Record<string, unknown>;
  const field = fieldReader('Call', w, options.unreadable ?? ignore);
  const dates = requiredDates('Call', w, field, options);
  const details = wire.Details && typeof wire.Details === 'object' ? wire.Details : undefined;
  return {
    sid: String(wire.Sid).trim(),
    parentCallSid: text(wire.ParentCallSid),
    accountSid: text(wire.AccountSid) ?? '',
    from: text(wire.From) ?? '',
    to: text(wire.To) ?? '',
    phoneNumberSid: text(wire.PhoneNumberSid),
    status: parseCallStatus(wire.Status),
    direction: field('Direction', toCallDirection),
    startTime: field('StartTime', optionalDate),
    endTime: field('EndTime', optionalDate),
    durationSeconds: field('Duration', int),
    price: field('Price', num),
    recordingUrl: text(wire.RecordingUrl),
    answeredBy: text(wire.AnsweredBy),
    customField: text(wire.CustomField),
    ...dates,
    conversationDurationSeconds: field('Details.ConversationDuration', int, details?.ConversationDuration),
    legs: parseLegs(details),
  };
}

/**
 * DateCreated and DateUpdated, which the contract never leaves null. When Exotel's DateCreated cannot be
 * read, the earliest other date it sent stands in (StartTime, then DateUpdated), and only when it sent none
 * the time the gateway read the answer (`nowMs`) — the closest honest value. A missing DateUpdated is the
 * creation time, the best "last changed" known.
 */
function requiredDates(
  object: 'Call' | 'SMSMessage',
  w: Record<string, unknown>,
  field: ReturnType<typeof fieldReader>,
  options: ParseOptions,
): { dateCreated: string; dateUpdated: string } {
  const created = field('DateCreated', optionalDate);
  const updated = field('DateUpdated', optionalDate);
  const dateCreated = created ?? optionalDate(w.StartTime) ?? updated ?? epochMsToIso((options.nowMs ?? Date.now)());
  if (created === null && !isPresent(w.DateCreated)) (options.unreadable ?? ignore)(object, 'DateCreated');
  return { dateCreated, dateUpdated: updated ?? dateCreated };
}

/** `{SMSMessage: …}` → SmsMessage. Legacy answers' "null" strings and string DetailedStatusCode are read too. */
export function parseSms(wire: WireSms, options: ParseOptions = {}): SmsMessage {
  if (!wire || typeof wire !== 'object' || !text(wire.Sid)) throw upstream('an SMS without a Sid');
  const w = wire as unknown as Record<string, unknown>;
  const field = fieldReader('SMSMessage', w, options.unreadable ?? ignore);
  return {
    sid: String(wire.Sid).trim(),
    accountSid: text(wire.AccountSid) ?? '',
    from: text(wire.From) ?? '',
    to: text(wire.To) ?? '',
    body: text(wire.Body),
    status: parseSmsStatus(wire.Status),
    detailedStatus: text(wire.DetailedStatus),
    detailedStatusCode: field('DetailedStatusCode', int),
    price: field('Price', num),
    ...requiredDates('SMSMessage', w, field, options),
    dateSent: field('DateSent', optionalDate),
  };
}

/**
 * One entry of the short bulk SMS answer, `{"SMSMessages": [{"Sid", "Status", "To"}]}` (docs/exotel-fidelity.md,
 * "Bulk SMS"): a message Exotel accepted, with only those three fields. What the request itself says fills the rest
 * honestly — the sender and body the gateway sent, and as `dateCreated` the time the answer was read —
 * and what nobody knows yet stays null.
 */
export function parseShortBulkSms(
  wire: Record<string, unknown>,
  sent: { accountSid: string; from: string; to: string; body: string },
  options: ParseOptions = {},
): SmsMessage {
  if (!wire || typeof wire !== 'object' || !text(wire.Sid)) throw upstream('an SMS without a Sid');
  const at = epochMsToIso((options.nowMs ?? Date.now)());
  return {
    sid: String(wire.Sid).trim(),
    accountSid: sent.accountSid,
    from: sent.from,
    to: text(wire.To) ?? sent.to,
    body: sent.body,
    status: parseSmsStatus(wire.Status),
    detailedStatus: null,
    detailedStatusCode: null,
    price: null,
    dateCreated: at,
    dateUpdated: at,
    dateSent: null,
  };
}

/** DND "Yes"/"No" (any case, also true/false) → boolean; anything else → null. */
export function parseDnd(value: unknown): boolean | null {
  const s = text(value)?.trim().toLowerCase();
  if (s === 'yes' || s === 'true' || s === 'y') return true;
  if (s === 'no' || s === 'false' || s === 'n') return false;
  return null;
}

/** `{Numbers: …}` → NumberMetadata; the requested number stands in when Exotel leaves PhoneNumber out. */
export function parseNumberMetadata(wire: WireNumberResponse['Numbers'], requested: string): NumberMetadata {
  if (!wire || typeof wire !== 'object') throw upstream('number metadata without a Numbers object');
  return {
    phoneNumber: text(wire.PhoneNumber) ?? requested,
    circle: text(wire.Circle),
    circleName: text(wire.CircleName),
    type: text(wire.Type),
    operator: text(wire.Operator),
    operatorName: text(wire.OperatorName),
    dnd: parseDnd(wire.DND),
  };
}

/**
 * One IncomingPhoneNumbers item (v1 `{"IncomingPhoneNumber": {…}}` or a v2_beta snake_case item) → ExoPhone,
 * or undefined when it has no number at all. Neither schema is fully documented by Exotel, so
 * snake_case, camelCase and PascalCase names and both capability shapes are accepted.
 */
export function parseExoPhone(wire: WireExoPhone | Record<string, unknown>): ExoPhone | undefined {
  if (!wire || typeof wire !== 'object') return undefined;
  // v1 wraps each item: {"IncomingPhoneNumber": {"PhoneNumber": …}}.
  const inner = (wire as Record<string, unknown>).IncomingPhoneNumber;
  const w = (inner && typeof inner === 'object' ? inner : wire) as Record<string, unknown>;
  const phoneNumber = text(w.phone_number ?? w.phoneNumber ?? w.PhoneNumber);
  const sid = text(w.sid ?? w.Sid) ?? phoneNumber;
  if (!phoneNumber || !sid) return undefined;
  return {
    sid,
    phoneNumber,
    friendlyName: text(w.friendly_name ?? w.friendlyName ?? w.FriendlyName),
    capabilities: parseCapabilities(w.capabilities ?? w.Capabilities),
    region: text(w.region ?? w.Region),
  };
}

function parseCapabilities(value: unknown): string[] {
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string' && v !== '').map((v) => v.toLowerCase());
  if (value && typeof value === 'object') {
    return Object.entries(value as Record<string, unknown>)
      .filter(([, on]) => on === true || on === 'true')
      .map(([name]) => name.toLowerCase());
  }
  if (typeof value === 'string' && value.trim()) return value.split(',').map((v) => v.trim().toLowerCase()).filter(Boolean);
  return [];
}
