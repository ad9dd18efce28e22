/**
 * Exotel callback bodies → typed updates. Pure functions over a flat field record, so form-urlencoded,
 * multipart and JSON bodies (Exotel uses all three: docs/exotel-fidelity.md) and Passthru query strings all go through
 * the same checks. A callback without a readable Sid or status is rejected with a reason, never guessed; an
 * optional field that cannot be read (a date in an odd form) is left empty and named in `unreadable`, so the
 * status it carries is not refused with it (Exotel would retry the same body twice, then give up).
 */
import { exotelToIso, isExotelEpochZero, isoToEpochMs, epochMsToIso } from '../exotel/dates.js';
import { int, legItems, text, toCallDirection, toCallStatus, toSmsStatus } from '../exotel/parse.js';
import type { Call, CallLeg, IsoDateTime } from '../exotel/types.js';
import { SID_PATTERN } from '../exotel/types.js';
import type { CallStatusUpdate, SmsStatusUpdate } from './updates.js';

export type ParseResult<T> = { ok: true; update: T; unreadable?: string[] } | { ok: false; reason: string };

class Malformed extends Error {}

/**
 * An optional Exotel timestamp: "" / null / epoch-zero → null; ISO with an offset is accepted too. One that
 * cannot be read is null as well, and its name goes to `unreadable`.
 */
function date(fields: Record<string, unknown>, name: string, unreadable: string[]): IsoDateTime | null {
  const value = text(fields[name])?.trim() ?? null;
  if (value === null || isExotelEpochZero(value)) return null;
  try {
    return exotelToIso(value);
  } catch {
    try {
      return epochMsToIso(isoToEpochMs(value));
    } catch {
      unreadable.push(name);
      return null;
    }
  }
}

/**
 * A Sid in a callback: the gateway's Sid rule (graphql/validation.ts: letters, digits, "-" and "_", at most
 * 128), and it must start with a letter or digit. Exotel's Sids are 32 hex characters, but that format is
 * not promised, so only what cannot be a Sid is refused ("-1", blanks, spaces, dots, over-long values):
 * a value the GraphQL API would refuse could never be looked up or subscribed to.
 */
export const CALLBACK_SID = SID_PATTERN;

function requiredSid(fields: Record<string, unknown>, name: string): string {
  const value = text(fields[name]);
  if (value === null) throw new Malformed(`${name} is missing`);
  // Not echoed: anything odd is not from Exotel and must not reach keys or logs.
  if (!CALLBACK_SID.test(value)) throw new Malformed(`${name} is not a valid Sid`);
  return value;
}

/**
 * Legs: JSON gives an array of {OnCallDuration, Status}; a form gives flat keys `Legs[0][Status]` (any
 * index; at most MAX_LEGS kept, in index order). Unknown shapes yield null (legs are optional) rather than
 * failing the whole callback.
 */
export function parseCallbackLegs(fields: Record<string, unknown>): CallLeg[] | null {
  const items = legItems(fields);
  if (items.length === 0) return Array.isArray(fields.Legs) ? [] : null;
  return items.map(([index, leg]) => ({ id: int(leg.Id) ?? index + 1, status: toCallStatus(leg.Status) ?? null, onCallDurationSeconds: int(leg.OnCallDuration) }));
}

/** Drops keys whose value is null so merging never erases what is already known. */
function known<T extends object>(value: T): { [K in keyof T]?: NonNullable<T[K]> } {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null && v !== undefined)) as { [K in keyof T]?: NonNullable<T[K]> };
}

/** Runs a parse with the list its unreadable optional fields go to. */
function attempt<T>(parse: (unreadable: string[]) => T): ParseResult<T> {
  const unreadable: string[] = [];
  try {
    const update = parse(unreadable);
    return unreadable.length > 0 ? { ok: true, update, unreadable } : { ok: true, update };
  } catch (err) {
    if (err instanceof Malformed) return { ok: false, reason: err.message };
    throw err;
  }
}

/** A voice StatusCallback body (default four fields, or the rich one with StatusCallbackEvents). */
export function parseCallStatusCallback(fields: Record<string, unknown>, nowIso: IsoDateTime): ParseResult<CallStatusUpdate> {
  return attempt((unreadable) => {
    const callSid = requiredSid(fields, 'CallSid');
    const rawStatus = text(fields.Status);
    if (rawStatus === null) throw new Malformed('Status is missing');
    const status = toCallStatus(rawStatus);
    if (!status) throw new Malformed(`Status ${JSON.stringify(rawStatus.slice(0, 32))} is not a call status`);
    const dateUpdated = date(fields, 'DateUpdated', unreadable);
    const conversation = int(fields.ConversationDuration);
    const callFields: Partial<Call> = known({
      sid: callSid,
      status,
      from: text(fields.From),
      to: text(fields.To),
      phoneNumberSid: text(fields.PhoneNumberSid),
      direction: toCallDirection(fields.Direction),
      startTime: date(fields, 'StartTime', unreadable),
      endTime: date(fields, 'EndTime', unreadable),
      dateCreated: date(fields, 'DateCreated', unreadable),
      dateUpdated,
      recordingUrl: text(fields.RecordingUrl),
      customField: text(fields.CustomField),
      conversationDurationSeconds: conversation,
      legs: parseCallbackLegs(fields),
    });
    const eventType = text(fields.EventType);
    return {
      kind: 'call' as const,
      callSid,
      status,
      at: dateUpdated ?? nowIso,
      source: 'WEBHOOK' as const,
      fields: callFields,
      ...(eventType ? { eventType: eventType.slice(0, 32) } : {}),
    };
  });
}

/** An SMS StatusCallback body (terminal statuses only, form-urlencoded). */
export function parseSmsStatusCallback(fields: Record<string, unknown>, nowIso: IsoDateTime): ParseResult<SmsStatusUpdate> {
  return attempt((unreadable) => {
    const smsSid = requiredSid(fields, 'SmsSid');
    const rawStatus = text(fields.Status);
    if (rawStatus === null) throw new Malformed('Status is missing');
    const status = toSmsStatus(rawStatus);
    if (!status) throw new Malformed(`Status ${JSON.stringify(rawStatus.slice(0, 32))} is not an SMS status`);
    const dateSent = date(fields, 'DateSent', unreadable);
    return {
      kind: 'sms' as const,
      smsSid,
      status,
      at: dateSent ?? nowIso,
      source: 'WEBHOOK' as const,
      fields: known({
        sid: smsSid,
        status,
        to: text(fields.To),
        detailedStatus: text(fields.DetailedStatus),
        detailedStatusCode: int(fields.DetailedStatusCode),
        dateSent,
      }),
    };
  });
}
