/**
 * The simulator's documented, deterministic rules: how numbers are read, which outcome a call or SMS
 * gets, what metadata a number has, and the call/SMS timelines. Tests and the README cite these
 * constants instead of repeating the numbers.
 *
 * ┌───────────────────────── OUTCOME RULES (last digit of the number) ─────────────────────────┐
 * │ Calls: the decisive number is `To` (connect two numbers) or `From` (connect to a flow).     │
 * │   …1 → busy   …2 → no-answer   …3 → failed   any other digit → completed                    │
 * │ SMS: the decisive number is `To`.                                                           │
 * │   …7 → failed-dnd (23005 FAILED_REJECTED_DND)                                                │
 * │   …8 → failed     (23010 FAILED_INVALID_DESTINATION_NUMBER)                                  │
 * │   any other digit → sent (20005 DELIVERED_TO_HANDSET)                                        │
 * │ Number metadata: DND is "Yes" exactly when the last digit is 7 (the SMS DND rule agrees).    │
 * └─────────────────────────────────────────────────────────────────────────────────────────────┘
 */
import type { WireCallStatus } from '../exotel/types.js';

/** Terminal call statuses the simulator produces. */
export type CallOutcome = Extract<WireCallStatus, 'completed' | 'busy' | 'no-answer' | 'failed'>;

/** Call outcome by the last digit of the decisive number; digits not listed → `completed`. */
export const CALL_OUTCOME_BY_LAST_DIGIT: Readonly<Record<string, CallOutcome>> = Object.freeze({
  '1': 'busy',
  '2': 'no-answer',
  '3': 'failed',
});

/** The outcome a new call to `number` will have (see CALL_OUTCOME_BY_LAST_DIGIT). */
export function callOutcomeFor(number: string): CallOutcome {
  return CALL_OUTCOME_BY_LAST_DIGIT[number.slice(-1)] ?? 'completed';
}

export type SmsOutcome = { status: 'sent' | 'failed' | 'failed-dnd'; detailedStatusCode: number; detailedStatus: string };

/** SMS outcome by the last digit of `To`; digits not listed → sent / DELIVERED_TO_HANDSET. */
export const SMS_OUTCOME_BY_LAST_DIGIT: Readonly<Record<string, SmsOutcome>> = Object.freeze({
  '7': { status: 'failed-dnd', detailedStatusCode: 23005, detailedStatus: 'FAILED_REJECTED_DND' },
  '8': { status: 'failed', detailedStatusCode: 23010, detailedStatus: 'FAILED_INVALID_DESTINATION_NUMBER' },
});
const SMS_DELIVERED: SmsOutcome = { status: 'sent', detailedStatusCode: 20005, detailedStatus: 'DELIVERED_TO_HANDSET' };

/** The outcome of an SMS to `number` (see SMS_OUTCOME_BY_LAST_DIGIT). */
export function smsOutcomeFor(number: string): SmsOutcome {
  return SMS_OUTCOME_BY_LAST_DIGIT[number.slice(-1)] ?? SMS_DELIVERED;
}

/** Intermediate SMS states (Exotel's status-code table). */
export const SMS_PROGRESS = [
  { status: 'queued', detailedStatusCode: 21010, detailedStatus: 'PENDING_TO_OPERATOR' },
  { status: 'sending', detailedStatusCode: 21015, detailedStatus: 'SENDING_TO_OPERATOR' },
  { status: 'submitted', detailedStatusCode: 21020, detailedStatus: 'PENDING_ON_OPERATOR' },
] as const;

/**
 * Call timeline in simulated seconds after the connect request (multiplied by timeScale at run time).
 * Two-number calls: ringing at 1 s; From answers at 3 s and To is dialled; To answers at 4 s
 * (in-progress, `answered` callback) and the call completes after min(talk, TimeLimit) more seconds
 * — so ~10 s by default; busy/failed end at 4 s; no-answer after min(TimeOut (default 30), 10) s of
 * ringing To. Flow calls have one leg: ringing at 1 s, answered at 3 s, busy at 3 s, failed at 1 s.
 * Duration, Price and EndTime appear in the details API `finalizeDelay` after the end, as on Exotel
 * where they are filled asynchronously.
 */
export const CALL_TIMELINE_SECONDS = Object.freeze({
  ringing: 1,
  firstLegAnswered: 3,
  secondLegAnswered: 4,
  talk: 6,
  busyOrFailed: 4,
  defaultTimeOut: 30,
  maxNoAnswerRing: 10,
  finalizeDelay: 2,
});

/** SMS timeline in simulated seconds: sending, submitted, then the terminal state (and its callback). */
export const SMS_TIMELINE_SECONDS = Object.freeze({ sending: 1, submitted: 2, terminal: 4 });

/** Price of a call: 1.500 per started minute of Duration (Exotel's sample: Duration 17 → "1.500"). */
export function callPrice(durationSeconds: number): string {
  return (Math.ceil(durationSeconds / 60) * 1.5).toFixed(3);
}

/** Price of an SMS: 0.200 per unit once sent. */
export function smsPrice(units: number): string {
  return (units * 0.2).toFixed(3);
}

/** SMS units: 160/153 GSM characters or 70/67 unicode characters per part (concatenated SMS). */
export function smsUnits(body: string, encoding: 'plain' | 'unicode'): number {
  const [single, part] = encoding === 'unicode' ? [70, 67] : [160, 153];
  const length = [...body].length;
  return length <= single ? 1 : Math.ceil(length / part);
}

// ───────────────────────────── numbers ─────────────────────────────

/** A phone number as the simulator understands it. */
export type ParsedNumber =
  | { kind: 'indian'; /** 10-digit national significant number */ nsn: string; /** "0" + nsn, how Exotel echoes it */ national: string; e164: string }
  | { kind: 'international'; e164: string };

/**
 * Reads a phone number the way the simulator accepts it: `+91XXXXXXXXXX`, `91XXXXXXXXXX`,
 * `0XXXXXXXXXX` or `XXXXXXXXXX` (Indian), or `+<8–15 digits>` (other countries). Spaces, dashes and
 * brackets are ignored. Returns null for anything else.
 */
export function parseNumber(raw: string): ParsedNumber | null {
  const compact = raw.trim().replace(/[\s\-()]/g, '');
  if (!/^\+?\d+$/.test(compact)) return null;
  const digits = compact.replace(/^\+/, '');
  let nsn: string | null = null;
  if (compact.startsWith('+')) {
    if (digits.startsWith('91') && digits.length === 12) nsn = digits.slice(2);
    else if (digits.length >= 8 && digits.length <= 15 && !digits.startsWith('91') && !digits.startsWith('0')) {
      return { kind: 'international', e164: compact };
    } else return null;
  } else if (digits.length === 12 && digits.startsWith('91')) nsn = digits.slice(2);
  else if (digits.length === 11 && digits.startsWith('0')) nsn = digits.slice(1);
  else if (digits.length === 10) nsn = digits;
  if (nsn === null || nsn.startsWith('0')) return null;
  return { kind: 'indian', nsn, national: `0${nsn}`, e164: `+91${nsn}` };
}

/** How the simulator echoes a number back (Exotel's samples: Indian numbers as 0 + 10 digits). */
export function echoNumber(parsed: ParsedNumber): string {
  return parsed.kind === 'indian' ? parsed.national : parsed.e164;
}

/** Telecom circles (Exotel's number-metadata codes). */
export const CIRCLES: ReadonlyArray<readonly [code: string, name: string]> = [
  ['AP', 'Andhra Pradesh Telecom Circle'], ['AS', 'Assam Telecom Circle'], ['BR', 'Bihar Telecom Circle'],
  ['CH', 'Chennai Metro Telecom Circle'], ['DL', 'Delhi Metro Telecom Circle'], ['GJ', 'Gujarat Telecom Circle'],
  ['HP', 'Himachal Pradesh Telecom Circle'], ['HR', 'Haryana Telecom Circle'], ['JK', 'Jammu & Kashmir Telecom Circle'],
  ['KL', 'Kerala Telecom Circle'], ['KA', 'Karnataka Telecom Circle'], ['KO', 'Kolkata Metro Telecom Circle'],
  ['MH', 'Maharashtra Telecom Circle'], ['MP', 'Madhya Pradesh Telecom Circle'], ['MU', 'Mumbai Metro Telecom Circle'],
  ['NE', 'North East Telecom Circle'], ['OR', 'Orissa Telecom Circle'], ['PB', 'Punjab Telecom Circle'],
  ['RJ', 'Rajasthan Telecom Circle'], ['TN', 'Tamil Nadu Telecom Circle'], ['UE', 'UP (East) Telecom Circle'],
  ['UW', 'UP (West) Telecom Circle'], ['WB', 'West Bengal Telecom Circle'],
];

/** Metro STD codes: a national number starting with one of these is a Landline in that circle. */
export const LANDLINE_STD_CODES: Readonly<Record<string, string>> = Object.freeze({
  '11': 'DL', '20': 'MH', '22': 'MU', '33': 'KO', '40': 'AP', '44': 'CH', '79': 'GJ', '80': 'KA',
});

/** Mobile operators (Exotel's operator codes). */
export const MOBILE_OPERATORS: ReadonlyArray<readonly [code: string, name: string]> = [
  ['A', 'Airtel'], ['VI', 'Vodafone Idea'], ['R', 'Reliance Jio'], ['B', 'BSNL'],
];

export interface NumberMetadataRecord {
  PhoneNumber: string;
  Circle: string;
  CircleName: string;
  Type: 'Mobile' | 'Landline';
  Operator: string;
  OperatorName: string;
  DND: 'Yes' | 'No';
}

/**
 * Number metadata, deterministic from the 10-digit national number (nsn):
 * - Landline when nsn starts with a metro STD code (LANDLINE_STD_CODES); circle from that code,
 *   operator BSNL (MTNL for Delhi/Mumbai), DND "No".
 * - Otherwise (nsn starting 6–9) Mobile; circle = CIRCLES[nsn digits 2–4 as a number mod 23];
 *   operator = MOBILE_OPERATORS[second-to-last digit mod 4]; DND "Yes" iff the last digit is 7.
 * - nsn starting 1–5 that is not a metro code: Landline, circle as for mobiles, operator BSNL.
 */
export function numberMetadata(nsn: string): NumberMetadataRecord {
  const phoneNumber = `+91${nsn}`;
  const circleByHash = CIRCLES[Number(nsn.slice(1, 4)) % CIRCLES.length] ?? CIRCLES[0]!;
  const std = LANDLINE_STD_CODES[nsn.slice(0, 2)];
  if (std !== undefined || /^[1-5]/.test(nsn)) {
    const circle = std !== undefined ? (CIRCLES.find(([code]) => code === std) ?? circleByHash) : circleByHash;
    const [operator, operatorName] = circle[0] === 'DL' || circle[0] === 'MU' ? ['MT', 'MTNL'] : ['B', 'BSNL'];
    return { PhoneNumber: phoneNumber, Circle: circle[0], CircleName: circle[1], Type: 'Landline', Operator: operator, OperatorName: operatorName, DND: 'No' };
  }
  const [operator, operatorName] = MOBILE_OPERATORS[Number(nsn.slice(-2, -1)) % MOBILE_OPERATORS.length] ?? MOBILE_OPERATORS[0]!;
  return {
    PhoneNumber: phoneNumber,
    Circle: circleByHash[0],
    CircleName: circleByHash[1],
    Type: 'Mobile',
    Operator: operator,
    OperatorName: operatorName,
    DND: nsn.endsWith('7') ? 'Yes' : 'No',
  };
}
