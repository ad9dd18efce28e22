/**
 * The typed updates the live pipeline ingests, whatever brought them (a webhook, the poller, the
 * reconciler, the gateway's own API calls), and the small pure rules shared by its modules.
 */
import type { Call, CallStatus, IsoDateTime, SmsMessage, SmsStatus } from '../exotel/types.js';
import { TERMINAL_CALL_STATUSES, TERMINAL_SMS_STATUSES, callStatusRank, smsStatusRank } from '../exotel/types.js';
import { assertNever } from '../assert-never.js';
import type { EventRecord, EventSource } from '../storage/types.js';

/** A call reached `status`; `fields` are whatever else was learned about the call with it. */
export interface CallStatusUpdate {
  kind: 'call';
  callSid: string;
  status: CallStatus;
  at: IsoDateTime;
  source: EventSource;
  fields: Partial<Call>;
  /** Exotel's EventType of a callback (`answered`, `terminal`), when it sent one. */
  eventType?: string;
  /** The reference of the gateway request that placed the call (callback-urls.ts), when known. */
  requestRef?: string;
}

/** An SMS reached `status`. */
export interface SmsStatusUpdate {
  kind: 'sms';
  smsSid: string;
  status: SmsStatus;
  at: IsoDateTime;
  source: EventSource;
  fields: Partial<SmsMessage>;
  /** The reference of the gateway request that sent the SMS, when its callback URL carried one. */
  requestRef?: string;
}

/** A Passthru applet announced a call in an incoming-call flow. */
export interface IncomingCallUpdate {
  kind: 'incoming';
  callSid: string;
  at: IsoDateTime;
  source: EventSource;
  call: Call;
  /** The Passthru's other parameters (flow_id, DialWhomNumber, …) kept for history. */
  extra: Record<string, string>;
}

export type LiveUpdate = CallStatusUpdate | SmsStatusUpdate | IncomingCallUpdate;

/** True for a status no call leaves. */
export function isTerminalCall(status: CallStatus): boolean {
  return TERMINAL_CALL_STATUSES.has(status);
}

/** True for a final SMS status. */
export function isTerminalSms(status: SmsStatus): boolean {
  return TERMINAL_SMS_STATUSES.has(status);
}

export { callStatusRank, smsStatusRank };

/**
 * Orders two event ids ("ms-seq", Redis stream ids; the memory log uses the same shape). Negative when
 * `a` comes first. Ids of another shape compare as strings so nothing throws on a client's bad `after`.
 */
export function compareEventIds(a: string, b: string): number {
  const pa = /^(\d+)-(\d+)$/.exec(a);
  const pb = /^(\d+)-(\d+)$/.exec(b);
  if (!pa || !pb) return a < b ? -1 : a > b ? 1 : 0;
  const ms = BigInt(pa[1]!) - BigInt(pb[1]!);
  if (ms !== 0n) return ms < 0n ? -1 : 1;
  const seq = BigInt(pa[2]!) - BigInt(pb[2]!);
  return seq === 0n ? 0 : seq < 0n ? -1 : 1;
}

/** Topic names of the in-process fan-out; one event reaches every topic it belongs to. */
export const topics = {
  call: (sid: string) => `call:${sid}`,
  allCalls: 'calls',
  /**
   * The same events as `allCalls`, by call: how callEvents filtered by call Sids finds its events without
   * being offered everyone's. Not `call:` (the poller watches the calls that topic names).
   */
  callEvents: (sid: string) => `call-events:${sid}`,
  sms: (sid: string) => `sms:${sid}`,
  incoming: 'incoming',
};

/** The topics an event belongs to. */
export function topicsOf(event: EventRecord): string[] {
  switch (event.kind) {
    case 'call':
      return [topics.call(event.callSid), topics.allCalls, topics.callEvents(event.callSid)];
    case 'sms':
      return [topics.sms(event.smsSid)];
    case 'incoming':
      return [topics.incoming];
    default:
      return assertNever(event);
  }
}

/** Names of the OpenItems sets of one account. */
export function openSets(accountSid: string) {
  return {
    /** Calls not yet terminal, scored by when the reconciler should look at them. */
    calls: `calls:${accountSid}`,
    /** SMS not yet final, scored likewise. */
    sms: `sms:${accountSid}`,
    /** Calls with live subscribers somewhere in the fleet, scored by when that mark expires. */
    watchedCalls: `watched-calls:${accountSid}`,
    /**
     * Connects whose outcome is unknown (the answer was lost), as "<request reference> <request time ms>",
     * scored by when the reconciler should look for the call in Exotel's call records.
     */
    unknownCalls: `unknown-calls:${accountSid}`,
  };
}
