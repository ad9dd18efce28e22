/**
 * Input validation of every mutation, run before any upstream request or idempotency record: a bad
 * input costs no Exotel budget and leaves nothing behind. Each rule throws BAD_USER_INPUT naming the
 * field (`extensions.field`, e.g. "input.to") so a client can point at it; a mutation's validator checks
 * every field and reports all bad ones in one error (`extensions.fields`), so fixing one does not reveal
 * the next.
 */
import { ErrorCode, badInput, badInputs, isGatewayError, type FieldProblem } from '../errors.js';
import type { ConnectCallParams, ConnectFlowParams, SendBulkSmsParams, SendSmsParams } from '../exotel/types.js';
import { SID_PATTERN } from '../exotel/types.js';
import { isRefCustomField } from '../live/callback-urls.js';
import type {
  ConnectCallInput,
  ConnectCallToFlowInput,
  SendBulkSmsInput,
  SendSmsInput,
} from '../generated/graphql.js';

/** Limits of the inputs; Exotel's own bounds are cited where they come from. */
export const INPUT_LIMITS = Object.freeze({
  // Exotel Calls/connect: TimeLimit ≤ 14400 s (4 h).
  timeLimitSeconds: { min: 1, max: 14_400 },
  // Exotel Calls/connect: TimeOut ≤ 60 s per leg.
  timeOutSeconds: { min: 1, max: 60 },
  // Exotel does not publish a body limit; 2000 characters is ~13 concatenated GSM parts, far beyond
  // what DLT templates allow, so anything longer is a client mistake.
  smsBodyChars: 2_000,
  customFieldChars: 1_000,
  // A bulk send is split into requests of ≤ 100 messages (Exotel bulksend); 10 000 bounds one mutation
  // to 100 upstream requests, half the account's per-minute budget.
  bulkMessages: 10_000,
  idempotencyKeyChars: { min: 1, max: 255 },
  dltIdChars: 64,
  urlChars: 2_000,
});

/** Parses a phone number into the E.164 form Exotel accepts, or returns null. */
export function parsePhoneNumber(raw: string): string | null {
  const compact = raw.trim().replace(/[\s\-().]/g, '');
  if (!/^\+?\d+$/.test(compact)) return null;
  const digits = compact.replace(/^\+/, '');
  let nsn: string | undefined;
  if (compact.startsWith('+')) {
    if (digits.startsWith('91')) {
      if (digits.length !== 12) return null;
      nsn = digits.slice(2);
    } else {
      // E.164: a country code (never starting with 0) and at most 15 digits in all.
      return digits.length >= 8 && digits.length <= 15 && !digits.startsWith('0') ? compact : null;
    }
  } else if (digits.length === 12 && digits.startsWith('91')) nsn = digits.slice(2);
  else if (digits.length === 11 && digits.startsWith('0')) nsn = digits.slice(1);
  // A bare 10-digit number is read as an Indian mobile only: landlines need their 0 trunk prefix to be unambiguous.
  else if (digits.length === 10 && /^[6-9]/.test(digits)) nsn = digits;
  if (nsn === undefined || !/^[1-9]\d{9}$/.test(nsn)) return null;
  return `+91${nsn}`;
}

/** A phone number → E.164, or BAD_USER_INPUT naming `field`. */
export function phoneNumber(value: string, field: string): string {
  const parsed = parsePhoneNumber(value);
  if (parsed === null) {
    throw badInput(field, 'not a phone number: use E.164 (+91XXXXXXXXXX) or an Indian form (0XXXXXXXXXX, 91XXXXXXXXXX, a 10-digit mobile)');
  }
  return parsed;
}

/** An SMS sender: a phone number (→ E.164) or a DLT sender id of 3–11 letters and digits (kept as is). */
export function smsSender(value: string, field: string): string {
  const parsed = parsePhoneNumber(value);
  if (parsed !== null) return parsed;
  const trimmed = value.trim();
  if (/^[A-Za-z0-9]{3,11}$/.test(trimmed) && /[A-Za-z]/.test(trimmed)) return trimmed;
  throw badInput(field, 'not a phone number or a sender id (3–11 letters and digits)');
}

function intInRange(value: number | null | undefined, field: string, range: { min: number; max: number }, unit: string): number | undefined {
  if (value === null || value === undefined) return undefined;
  if (!Number.isInteger(value) || value < range.min || value > range.max) {
    throw badInput(field, `must be between ${range.min} and ${range.max} ${unit}`);
  }
  return value;
}

function optionalText(value: string | null | undefined, field: string, maxChars: number): string | undefined {
  if (value === null || value === undefined) return undefined;
  if (value.length > maxChars) throw badInput(field, `must be at most ${maxChars} characters`);
  return value;
}

/** A client's customField: bounded, and never in the form the gateway's request references use. */
function clientCustomField(value: string | null | undefined, field: string): string | undefined {
  const text = optionalText(value, field, INPUT_LIMITS.customFieldChars);
  if (text !== undefined && isRefCustomField(text)) throw badInput(field, "must not start with 'gateway-ref:', which the gateway keeps for its own request references");
  return text;
}

function dltId(value: string | null | undefined, field: string): string | undefined {
  if (value === null || value === undefined) return undefined;
  const trimmed = value.trim();
  // DLT ids are numeric strings of ~19 digits; allow letters in case an operator issues them.
  if (!/^[A-Za-z0-9]{1,64}$/.test(trimmed)) throw badInput(field, 'must be 1–64 letters and digits');
  return trimmed;
}

function smsBody(value: string, field: string): string {
  if (value.trim() === '') throw badInput(field, 'must not be empty');
  if ([...value].length > INPUT_LIMITS.smsBodyChars) throw badInput(field, `must be at most ${INPUT_LIMITS.smsBodyChars} characters`);
  return value;
}

/** The idempotency key, if any; BAD_USER_INPUT when it is empty or longer than 255 characters. */
export function idempotencyKey(value: string | null | undefined, field = 'input.idempotencyKey'): string | undefined {
  if (value === null || value === undefined) return undefined;
  const { min, max } = INPUT_LIMITS.idempotencyKeyChars;
  if (value.length < min || value.length > max) throw badInput(field, `must be ${min}–${max} characters`);
  return value;
}

function httpUrl(value: string | null | undefined, field: string): string | undefined {
  if (value === null || value === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw badInput(field, 'must be an absolute http(s) URL');
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || value.length > INPUT_LIMITS.urlChars) {
    throw badInput(field, 'must be an absolute http(s) URL');
  }
  return value;
}

/** Gathers the bad fields of one input, so every one of them is reported in one answer. */
class InputProblems {
  private readonly problems: FieldProblem[] = [];

  /** What `check` returns, or undefined once its BAD_USER_INPUT is noted. */
  check<T>(check: () => T): T | undefined {
    try {
      return check();
    } catch (err) {
      if (!isGatewayError(err) || err.code !== ErrorCode.BAD_USER_INPUT || !err.fields) throw err;
      this.problems.push(...err.fields);
      return undefined;
    }
  }

  /** Notes a bad field found without a check function. */
  add(field: string, message: string): void {
    this.problems.push({ field, message });
  }

  /** Throws one BAD_USER_INPUT listing every noted field, if any. */
  throwIfAny(): void {
    if (this.problems.length > 0) throw badInputs(this.problems);
  }
}

/** connectCall input → Exotel parameters (numbers in E.164); the status callback is added later. */
export function validateConnectCall(input: ConnectCallInput): ConnectCallParams {
  const p = new InputProblems();
  const from = p.check(() => phoneNumber(input.from, 'input.from'));
  const to = p.check(() => phoneNumber(input.to, 'input.to'));
  const callerId = p.check(() => phoneNumber(input.callerId, 'input.callerId'));
  const timeLimit = p.check(() => intInRange(input.timeLimit, 'input.timeLimit', INPUT_LIMITS.timeLimitSeconds, 'seconds'));
  const timeOut = p.check(() => intInRange(input.timeOut, 'input.timeOut', INPUT_LIMITS.timeOutSeconds, 'seconds'));
  const customField = p.check(() => clientCustomField(input.customField, 'input.customField'));
  const waitUrl = p.check(() => httpUrl(input.waitUrl, 'input.waitUrl'));
  if (input.recordingChannels && !input.record) p.add('input.recordingChannels', 'only applies when record is true');
  p.check(() => idempotencyKey(input.idempotencyKey));
  p.throwIfAny();
  const params: ConnectCallParams = { from: from!, to: to!, callerId: callerId! };
  if (timeLimit !== undefined) params.timeLimitSeconds = timeLimit;
  if (timeOut !== undefined) params.timeOutSeconds = timeOut;
  if (customField !== undefined) params.customField = customField;
  if (waitUrl !== undefined) params.waitUrl = waitUrl;
  if (input.record !== null && input.record !== undefined) params.record = input.record;
  if (input.recordingChannels) params.recordingChannels = input.recordingChannels === 'DUAL' ? 'dual' : 'single';
  return params;
}

/** connectCallToFlow input → Exotel parameters. */
export function validateConnectCallToFlow(input: ConnectCallToFlowInput): ConnectFlowParams {
  const p = new InputProblems();
  const flowId = input.flowId.trim();
  // Exotel flow (app) ids are numeric; anything else would build a broken flow URL.
  if (!/^\d{1,20}$/.test(flowId)) p.add('input.flowId', 'must be the numeric flow (app) id from the Exotel dashboard');
  const from = p.check(() => phoneNumber(input.from, 'input.from'));
  const callerId = p.check(() => phoneNumber(input.callerId, 'input.callerId'));
  const timeLimit = p.check(() => intInRange(input.timeLimit, 'input.timeLimit', INPUT_LIMITS.timeLimitSeconds, 'seconds'));
  const timeOut = p.check(() => intInRange(input.timeOut, 'input.timeOut', INPUT_LIMITS.timeOutSeconds, 'seconds'));
  const customField = p.check(() => clientCustomField(input.customField, 'input.customField'));
  p.check(() => idempotencyKey(input.idempotencyKey));
  p.throwIfAny();
  const params: ConnectFlowParams = { from: from!, callerId: callerId!, flowId };
  if (timeLimit !== undefined) params.timeLimitSeconds = timeLimit;
  if (timeOut !== undefined) params.timeOutSeconds = timeOut;
  if (customField !== undefined) params.customField = customField;
  return params;
}

/** sendSms input → Exotel parameters. */
export function validateSendSms(input: SendSmsInput): SendSmsParams {
  const p = new InputProblems();
  const from = p.check(() => smsSender(input.from, 'input.from'));
  const to = p.check(() => phoneNumber(input.to, 'input.to'));
  const body = p.check(() => smsBody(input.body, 'input.body'));
  const template = p.check(() => dltId(input.dltTemplateId, 'input.dltTemplateId'));
  const entity = p.check(() => dltId(input.dltEntityId, 'input.dltEntityId'));
  p.check(() => idempotencyKey(input.idempotencyKey));
  p.throwIfAny();
  const params: SendSmsParams = { from: from!, to: to!, body: body! };
  if (template !== undefined) params.dltTemplateId = template;
  if (entity !== undefined) params.dltEntityId = entity;
  return params;
}

/** Bad messages reported for one bulk send at most; past that the list would only be noise. */
const MAX_REPORTED_MESSAGE_PROBLEMS = 20;

/** sendBulkSms input → Exotel parameters for all messages (split into requests later). */
export function validateSendBulkSms(input: SendBulkSmsInput): SendBulkSmsParams {
  const p = new InputProblems();
  const from = p.check(() => smsSender(input.from, 'input.from'));
  if (input.messages.length === 0) p.add('input.messages', 'must hold at least one message');
  if (input.messages.length > INPUT_LIMITS.bulkMessages) p.add('input.messages', `must hold at most ${INPUT_LIMITS.bulkMessages} messages`);
  const messages: SendBulkSmsParams['messages'] = [];
  let badMessages = 0;
  for (const [i, m] of input.messages.slice(0, INPUT_LIMITS.bulkMessages).entries()) {
    // A list of thousands of bad numbers is reported by its first few, and counted.
    const sink = badMessages < MAX_REPORTED_MESSAGE_PROBLEMS ? p : new InputProblems();
    const to = sink.check(() => phoneNumber(m.to, `input.messages[${i}].to`));
    const body = sink.check(() => smsBody(m.body, `input.messages[${i}].body`));
    if (to === undefined || body === undefined) badMessages++;
    else messages.push({ to, body });
  }
  if (badMessages > MAX_REPORTED_MESSAGE_PROBLEMS) p.add('input.messages', `${badMessages} messages are invalid; the first ${MAX_REPORTED_MESSAGE_PROBLEMS} are listed`);
  const template = p.check(() => dltId(input.dltTemplateId, 'input.dltTemplateId'));
  const entity = p.check(() => dltId(input.dltEntityId, 'input.dltEntityId'));
  p.check(() => idempotencyKey(input.idempotencyKey));
  p.throwIfAny();
  const params: SendBulkSmsParams = { from: from!, messages };
  if (template !== undefined) params.dltTemplateId = template;
  if (entity !== undefined) params.dltEntityId = entity;
  return params;
}

/** Most Sids or numbers one list query may ask for; larger lists are split by the client. */
export const MAX_LOOKUP_KEYS = 1_000;


/** An Exotel Sid, or BAD_USER_INPUT naming `field`. */
export function exotelSid(value: string, field: string): string {
  const trimmed = value.trim();
  if (!SID_PATTERN.test(trimmed)) throw badInput(field, 'not an Exotel Sid (a letter or digit, then letters, digits, "-" and "_", at most 128)');
  return trimmed;
}

/**
 * A list of lookup keys with at most MAX_LOOKUP_KEYS distinct ones (repeats are answered in place). The SDL's
 * `@maxItems` is checked before execution (src/graphql/cost.ts); this holds for any other caller.
 */
export function lookupList<T>(values: readonly T[], field: string): readonly T[] {
  if (values.length > MAX_LOOKUP_KEYS && new Set(values).size > MAX_LOOKUP_KEYS) throw badInput(field, `at most ${MAX_LOOKUP_KEYS} distinct values per query`);
  return values;
}
