/**
 * The simulator's in-memory account: calls, SMS and ExoPhones, plus the seeded history a newcomer's
 * first query finds. The history is deterministic (seeded PRNG); only its anchor is "now".
 */
import type { WireDirection, WireExoPhone } from '../exotel/types.js';
import type { CallRecord, LegState } from './calls.js';
import { createPrng } from './prng.js';
import { CALL_OUTCOME_BY_LAST_DIGIT, callOutcomeFor, callPrice, smsOutcomeFor, smsPrice, smsUnits, type CallOutcome } from './rules.js';
import type { SmsRecord } from './sms.js';

/** Seed of the history PRNG: the same on every start, so demos and docs can rely on the data. */
export const HISTORY_SEED = 0x3e07e1;

/** The account's ExoPhones (virtual numbers); CallerId/From of the seeded history. */
export const SEEDED_EXOPHONES: readonly WireExoPhone[] = Object.freeze([
  { sid: '08039591111', phone_number: '+918039591111', friendly_name: 'Bengaluru support line', capabilities: { voice: true, sms: true }, country: 'IN', region: 'KA' },
  { sid: '02248901234', phone_number: '+912248901234', friendly_name: 'Mumbai sales line', capabilities: { voice: true, sms: false }, country: 'IN', region: 'MU' },
  { sid: '01140845678', phone_number: '+911140845678', friendly_name: 'Delhi collections', capabilities: { voice: true, sms: true }, country: 'IN', region: 'DL' },
  { sid: '09513886360', phone_number: '+919513886360', friendly_name: 'OTP sender', capabilities: { voice: false, sms: true }, country: 'IN', region: 'KA' },
]);

export interface SimState {
  accountSid: string;
  calls: Map<string, CallRecord>;
  sms: Map<string, SmsRecord>;
  exoPhones: WireExoPhone[];
}

/** Input for a call record built by hand (tests, seeding). */
export interface CallRecordInput {
  sid: string;
  accountSid: string;
  from: string;
  to: string;
  callerId: string;
  direction: WireDirection;
  createdAtMs: number;
  /** Given: a finished call with these numbers. */
  outcome?: CallOutcome;
  talkSeconds?: number;
  customField?: string | null;
  recordingUrl?: string | null;
}

/** A finished (terminal, finalized) call, with legs consistent with its outcome. */
export function finishedCall(input: CallRecordInput & { outcome: CallOutcome }): CallRecord {
  const talk = input.outcome === 'completed' ? (input.talkSeconds ?? 30) : 0;
  const ringSeconds = input.outcome === 'no-answer' ? 30 : 1;
  const leg1Seconds = input.outcome === 'completed' ? talk + 2 : input.direction === 'inbound' ? 0 : ringSeconds;
  const legs: LegState[] =
    input.direction === 'inbound'
      ? [{ status: input.outcome, onCallSeconds: input.outcome === 'completed' ? talk : 0 }]
      : [
          { status: 'completed', onCallSeconds: leg1Seconds },
          { status: input.outcome, onCallSeconds: talk },
        ];
  const duration = input.direction === 'inbound' ? talk : leg1Seconds;
  const endedAtMs = input.createdAtMs + (duration + 3) * 1000;
  return {
    sid: input.sid,
    accountSid: input.accountSid,
    from: input.from,
    to: input.to,
    callerId: input.callerId,
    flowId: null,
    direction: input.direction,
    status: input.outcome,
    createdAtMs: input.createdAtMs,
    updatedAtMs: endedAtMs + 60_000,
    startedAtMs: input.createdAtMs,
    endedAtMs,
    finalized: true,
    durationSeconds: duration,
    conversationSeconds: talk,
    price: callPrice(input.outcome === 'completed' ? duration : 0),
    // Real call details say "human" on every ended call, busy and unanswered ones too (docs/exotel-fidelity.md).
    answeredBy: 'human',
    record: input.recordingUrl != null,
    recordingUrl: input.recordingUrl ?? null,
    customField: input.customField ?? null,
    callType: 'trans',
    timeLimitSeconds: null,
    timeOutSeconds: null,
    legs,
    statusCallback: null,
  };
}

/** A 10-digit mobile number ending in `lastDigit`. */
function mobileNsn(prng: ReturnType<typeof createPrng>, lastDigit: string): string {
  return `${prng.pick(['9', '8', '7'])}${String(prng.int(0, 99_999_999)).padStart(8, '0')}${lastDigit}`;
}

/**
 * Seeds `callCount` finished calls over the past 7 days (≈65 % completed, 12 % busy, 15 % no-answer,
 * 8 % failed; 70 % outbound-api, 20 % inbound, 10 % outbound-dial) among 30 customers and 5 agents,
 * consistent with the outcome rule for outbound calls; 12 SMS over the past 3 days; the ExoPhones.
 */
export function seedState(state: SimState, options: { callCount: number; nowMs: number; recordingBase: string }): void {
  const prng = createPrng(HISTORY_SEED);
  const answeringDigits = ['0', '4', '5', '6', '7', '8', '9'];
  const digitFor = (outcome: CallOutcome): string =>
    outcome === 'completed' ? prng.pick(answeringDigits) : (Object.keys(CALL_OUTCOME_BY_LAST_DIGIT).find((d) => CALL_OUTCOME_BY_LAST_DIGIT[d] === outcome) ?? '0');
  const agents = Array.from({ length: 5 }, () => `0${mobileNsn(prng, prng.pick(answeringDigits))}`);
  const customers = new Map<CallOutcome, string[]>();
  for (const outcome of ['completed', 'busy', 'no-answer', 'failed'] as const) {
    customers.set(outcome, Array.from({ length: outcome === 'completed' ? 15 : 5 }, () => `0${mobileNsn(prng, digitFor(outcome))}`));
  }
  const voicePhones = state.exoPhones.filter((p) => (p.capabilities as Record<string, boolean> | undefined)?.voice !== false);
  const sevenDaysMs = 7 * 24 * 3600 * 1000;
  for (let i = 0; i < options.callCount; i++) {
    const r = prng.next();
    const outcome: CallOutcome = r < 0.65 ? 'completed' : r < 0.77 ? 'busy' : r < 0.92 ? 'no-answer' : 'failed';
    const d = prng.next();
    const direction: WireDirection = d < 0.7 ? 'outbound-api' : d < 0.9 ? 'inbound' : 'outbound-dial';
    const customer = prng.pick(customers.get(outcome) ?? []);
    const exoPhone = prng.pick(voicePhones).sid;
    const talk = prng.int(8, 600);
    const sid = prng.sid();
    const createdAtMs = options.nowMs - prng.int(10 * 60, sevenDaysMs / 1000) * 1000;
    const recorded = outcome === 'completed' && prng.next() < 0.5;
    const call = finishedCall({
      sid,
      accountSid: state.accountSid,
      from: direction === 'inbound' ? customer : prng.pick(agents),
      to: direction === 'inbound' ? exoPhone : customer,
      callerId: exoPhone,
      direction,
      createdAtMs,
      outcome,
      talkSeconds: talk,
      customField: prng.next() < 0.3 ? `order-${prng.int(1000, 9999)}` : null,
      recordingUrl: recorded ? `${options.recordingBase}/${sid}.mp3` : null,
    });
    state.calls.set(sid, call);
  }
  const smsPhones = state.exoPhones.filter((p) => (p.capabilities as Record<string, boolean> | undefined)?.sms !== false);
  const bodies = ['Your OTP is 482913', 'Your order has shipped', 'Your appointment is confirmed for tomorrow 10:00', 'Payment of Rs 499 received'];
  for (let i = 0; i < 12; i++) {
    const to = `0${mobileNsn(prng, String(prng.int(0, 9)))}`;
    const body = prng.pick(bodies);
    const outcome = smsOutcomeFor(to);
    const createdAtMs = options.nowMs - prng.int(60, 3 * 24 * 3600) * 1000;
    const units = smsUnits(body, 'plain');
    const sid = prng.sid();
    state.sms.set(sid, {
      sid,
      accountSid: state.accountSid,
      from: `${prng.pick(smsPhones).sid}/EXOSIM`,
      to,
      body,
      encodingType: 'plain',
      units,
      status: outcome.status,
      detailedStatusCode: outcome.detailedStatusCode,
      detailedStatus: outcome.detailedStatus,
      createdAtMs,
      updatedAtMs: createdAtMs + 4000,
      sentAtMs: outcome.status === 'sent' ? createdAtMs + 4000 : null,
      price: outcome.status === 'sent' ? smsPrice(units) : null,
      customId: null,
      customField: null,
      statusCallback: null,
    });
  }
}

/** Sanity: the seeded outbound calls obey the outcome rule (used by tests). */
export function obeysOutcomeRule(call: CallRecord): boolean {
  return call.direction === 'inbound' || callOutcomeFor(call.to) === call.status;
}
