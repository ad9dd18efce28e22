/**
 * Exotel wire objects → the gateway's domain types.
 *
 * Exotel is loose (exotel-api.md): empty fields arrive as "" or null, numbers often as strings, statuses
 * in two spellings, and unset dates as epoch zero. Every such quirk is absorbed here so the rest of the
 * gateway sees one clean shape. A value that cannot be understood at all (an unknown call status, a
 * malformed date in a required field) is an upstream error, never a silent guess.
 */
import { ErrorCode, GatewayError } from '../errors.js';
import { exotelToIso, isExotelEpochZero } from './dates.js';
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

/** "" / null / undefined / whitespace → null; anything else → its string form. */
export function text(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  const s = typeof value === 'string' ? value : typeof value === 'number' || typeof value === 'boolean' ? String(value) : null;
  return s === null || s.trim() === '' ? null : s;
}

/** A number that may arrive as a string ("1.500", "47"); empty or non-numeric → null. */
export function num(value: unknown): number | null {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  const s = text(value);
  if (s === null) return null;
  const n = Number(s.trim());
  return Number.isFinite(n) ? n : null;
}

/** Like num(), but only whole numbers (durations, status codes). */
export function int(value: unknown): number | null {
  const n = num(value);
  return n !== null && Number.isInteger(n) ? n : null;
}

/** An optional Exotel timestamp → ISO, treating ""/null and the epoch-zero placeholder as null. */
export function optionalDate(value: unknown, field: string): string | null {
  const s = text(value);
  if (s === null || isExotelEpochZero(s)) return null;
  return requiredDate(s, field);
}

/** A timestamp that must be there (DateCreated, DateUpdated). */
export function requiredDate(value: unknown, field: string): string {
  const s = text(value);
  if (s === null) throw upstream(`${field} is missing`);
  try {
    return exotelToIso(s);
  } catch {
    throw upstream(`${field} is not an Exotel date (${JSON.stringify(s.slice(0, 40))})`);
  }
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
    default: {
      const never: never = status;
      throw new Error(`unexpected call status ${String(never)}`);
    }
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
    default: {
      const never: never = direction;
      throw new Error(`unexpected call direction ${String(never)}`);
    }
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

/** `{Call: …}` → Call. */
export function parseCall(wire: WireCall): Call {
  if (!wire || typeof wire !== 'object' || !text(wire.Sid)) throw upstream('a call without a Sid');
  return {
    sid: wire.Sid,
    parentCallSid: text(wire.ParentCallSid),
    accountSid: text(wire.AccountSid) ?? '',
    from: text(wire.From) ?? '',
    to: text(wire.To) ?? '',
    phoneNumberSid: text(wire.PhoneNumberSid),
    status: parseCallStatus(wire.Status),
    direction: toCallDirection(wire.Direction),
    startTime: optionalDate(wire.StartTime, 'StartTime'),
    endTime: optionalDate(wire.EndTime, 'EndTime'),
    durationSeconds: int(wire.Duration),
    price: num(wire.Price),
    recordingUrl: text(wire.RecordingUrl),
    answeredBy: text(wire.AnsweredBy),
    customField: text(wire.CustomField),
    dateCreated: requiredDate(wire.DateCreated, 'DateCreated'),
    // Some answers omit DateUpdated; the creation time is then the best "last changed" we know.
    dateUpdated: optionalDate(wire.DateUpdated, 'DateUpdated') ?? requiredDate(wire.DateCreated, 'DateCreated'),
    conversationDurationSeconds: int(wire.Details?.ConversationDuration),
    legs: parseLegs(wire.Details),
  };
}

/** `{SMSMessage: …}` → SmsMessage. */
export function parseSms(wire: WireSms): SmsMessage {
  if (!wire || typeof wire !== 'object' || !text(wire.Sid)) throw upstream('an SMS without a Sid');
  return {
    sid: wire.Sid,
    accountSid: text(wire.AccountSid) ?? '',
    from: text(wire.From) ?? '',
    to: text(wire.To) ?? '',
    body: text(wire.Body),
    status: parseSmsStatus(wire.Status),
    detailedStatus: text(wire.DetailedStatus),
    detailedStatusCode: int(wire.DetailedStatusCode),
    price: num(wire.Price),
    dateCreated: requiredDate(wire.DateCreated, 'DateCreated'),
    dateUpdated: optionalDate(wire.DateUpdated, 'DateUpdated') ?? requiredDate(wire.DateCreated, 'DateCreated'),
    dateSent: optionalDate(wire.DateSent, 'DateSent'),
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
 * One v2_beta IncomingPhoneNumbers item → ExoPhone, or undefined when it has no number at all. The schema
 * is unconfirmed (exotel-api.md), so camelCase/PascalCase variants and both capability shapes are accepted.
 */
export function parseExoPhone(wire: WireExoPhone | Record<string, unknown>): ExoPhone | undefined {
  if (!wire || typeof wire !== 'object') return undefined;
  const w = wire as Record<string, unknown>;
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
