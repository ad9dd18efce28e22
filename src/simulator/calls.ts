/** Simulated calls: their state, their wire shape, and their lifecycle on the scheduler. */
import type { WireCall, WireCallStatus, WireDirection } from '../exotel/types.js';
import type { CallbackContentType, CallbackSender } from './callbacks.js';
import { formatIst } from './ist.js';
import { CALL_TIMELINE_SECONDS as T, callOutcomeFor, callPrice, type CallOutcome } from './rules.js';
import type { Scheduler } from './scheduler.js';

type LegStatus = 'ringing' | 'in-progress' | 'completed' | 'busy' | 'no-answer' | 'failed' | 'canceled' | null;

export interface LegState {
  status: LegStatus;
  onCallSeconds: number | null;
}

/** Everything the simulator knows about one call. */
export interface CallRecord {
  sid: string;
  accountSid: string;
  from: string;
  /** "" for a call connected to a flow. */
  to: string;
  callerId: string;
  flowId: string | null;
  direction: WireDirection;
  status: WireCallStatus;
  createdAtMs: number;
  updatedAtMs: number;
  startedAtMs: number;
  endedAtMs: number | null;
  /** Duration/Price/EndTime are published (Exotel fills them in a while after the end). */
  finalized: boolean;
  durationSeconds: number | null;
  conversationSeconds: number | null;
  price: string | null;
  answeredBy: string | null;
  record: boolean;
  recordingUrl: string | null;
  customField: string | null;
  callType: string;
  timeLimitSeconds: number | null;
  timeOutSeconds: number | null;
  legs: LegState[];
  statusCallback: { url: string; events: Array<'terminal' | 'answered'>; contentType: CallbackContentType } | null;
}

export const TERMINAL_WIRE_STATUSES: ReadonlySet<WireCallStatus> = new Set(['completed', 'failed', 'busy', 'no-answer', 'canceled']);

/** Path of a call resource (Uri field). */
export function callUri(accountSid: string, sid: string): string {
  return `/v1/Accounts/${accountSid}/Calls/${sid}.json`;
}

/** The call as Exotel's JSON shows it; `details` adds the Details block with Legs. */
export function toWireCall(call: CallRecord, options: { details?: boolean; recordingUrlValidityMinutes?: number | null } = {}): WireCall {
  const recordingUrl =
    call.recordingUrl && options.recordingUrlValidityMinutes ? `${call.recordingUrl}?validity=${options.recordingUrlValidityMinutes}` : call.recordingUrl;
  const wire: WireCall = {
    Sid: call.sid,
    // Real call details write empty text fields as "" and Duration/Price as JSON numbers (docs/exotel-fidelity.md,
    // "Values"); both stay null until Exotel fills them in after the end.
    ParentCallSid: '',
    DateCreated: formatIst(call.createdAtMs),
    DateUpdated: formatIst(call.updatedAtMs),
    AccountSid: call.accountSid,
    To: call.to,
    From: call.from,
    PhoneNumberSid: call.callerId,
    Status: call.status,
    StartTime: formatIst(call.startedAtMs),
    EndTime: call.finalized && call.endedAtMs !== null ? formatIst(call.endedAtMs) : null,
    Duration: call.finalized && call.durationSeconds !== null ? call.durationSeconds : null,
    Price: call.finalized && call.price !== null ? Number(call.price) : null,
    Direction: call.direction,
    AnsweredBy: call.answeredBy,
    ForwardedFrom: '',
    CallerName: '',
    Uri: callUri(call.accountSid, call.sid),
    RecordingUrl: recordingUrl ?? '',
    CustomField: call.customField,
  };
  if (options.details) {
    wire.Details = {
      ConversationDuration: call.conversationSeconds ?? 0,
      Leg1Status: call.legs[0]?.status ?? null,
      Leg2Status: call.legs[1]?.status ?? null,
      Legs: call.legs.map((leg, i) => ({ Leg: { Id: i + 1, OnCallDuration: leg.onCallSeconds ?? 0, Status: leg.status } })),
    };
  }
  return wire;
}

/** Status callback fields; extended ones only when StatusCallbackEvents were given (Exotel). */
export function callbackFields(call: CallRecord, eventType: 'answered' | 'terminal'): Record<string, unknown> {
  const base: Record<string, unknown> = {
    CallSid: call.sid,
    Status: call.status,
    RecordingUrl: call.recordingUrl ?? '',
    DateUpdated: formatIst(call.updatedAtMs),
  };
  if (!call.statusCallback || call.statusCallback.events.length === 0) return base;
  return {
    ...base,
    EventType: eventType,
    DateCreated: formatIst(call.createdAtMs),
    To: call.to,
    From: call.from,
    PhoneNumberSid: call.callerId,
    StartTime: formatIst(call.startedAtMs),
    EndTime: call.endedAtMs !== null ? formatIst(call.endedAtMs) : '',
    ConversationDuration: call.conversationSeconds ?? 0,
    Direction: call.direction,
    CallType: call.callType,
    CustomField: call.customField ?? '',
    Legs: call.legs.map((leg) => ({ OnCallDuration: leg.onCallSeconds ?? 0, Status: leg.status ?? '' })),
  };
}

/** One planned transition: at `at` simulated seconds after creation, apply `change`. */
interface Step {
  at: number;
  change: (call: CallRecord) => void;
  /** Post an `answered` callback after this step. */
  answered?: boolean;
  terminal?: boolean;
}

/**
 * The transitions of a new call, from CALL_TIMELINE_SECONDS and the outcome rule (rules.ts).
 * Durations are simulated seconds, so at timeScale 0.01 a call still reports Duration "7".
 */
export function planCall(call: CallRecord): Step[] {
  const outcome: CallOutcome = callOutcomeFor(call.to !== '' ? call.to : call.from);
  const twoLegs = call.to !== '';
  const ringFor = Math.min(call.timeOutSeconds ?? T.defaultTimeOut, T.maxNoAnswerRing);
  const talk = Math.min(T.talk, call.timeLimitSeconds ?? Infinity);
  const leg1 = (status: LegStatus, onCall: number | null = null) => (c: CallRecord) => {
    c.legs[0] = { status, onCallSeconds: onCall };
  };
  const leg2 = (status: LegStatus, onCall: number | null = null) => (c: CallRecord) => {
    c.legs[1] = { status, onCallSeconds: onCall };
  };
  const end = (status: CallOutcome, durationSeconds: number, conversationSeconds: number, ...legChanges: Array<(c: CallRecord) => void>) => (c: CallRecord) => {
    c.status = status;
    // Exotel says "human" even on busy and unanswered calls (docs/exotel-fidelity.md).
    c.answeredBy ??= 'human';
    c.durationSeconds = durationSeconds;
    c.conversationSeconds = conversationSeconds;
    c.price = callPrice(status === 'completed' ? durationSeconds : 0);
    legChanges.forEach((change) => change(c));
  };
  const ringing: Step = { at: T.ringing, change: (c) => { c.status = 'ringing'; leg1('ringing')(c); } };

  if (!twoLegs) {
    switch (outcome) {
      case 'failed':
        return [{ at: T.ringing, terminal: true, change: end('failed', 0, 0, leg1('failed', 0)) }];
      case 'busy':
        return [ringing, { at: T.firstLegAnswered, terminal: true, change: end('busy', 0, 0, leg1('busy', 0)) }];
      case 'no-answer':
        return [ringing, { at: T.ringing + ringFor, terminal: true, change: end('no-answer', 0, 0, leg1('no-answer', 0)) }];
      case 'completed':
        return [
          ringing,
          { at: T.firstLegAnswered, answered: true, change: (c) => { c.status = 'in-progress'; c.answeredBy = 'human'; leg1('in-progress')(c); } },
          { at: T.firstLegAnswered + talk, terminal: true, change: end('completed', talk, talk, leg1('completed', talk)) },
        ];
    }
  }
  const fromAnswered: Step = { at: T.firstLegAnswered, change: (c) => { leg1('in-progress')(c); leg2('ringing')(c); } };
  const leg1Time = (at: number) => at - T.firstLegAnswered;
  switch (outcome) {
    case 'busy':
    case 'failed': {
      const d = leg1Time(T.busyOrFailed);
      return [ringing, fromAnswered, { at: T.busyOrFailed, terminal: true, change: end(outcome, d, 0, leg1('completed', d), leg2(outcome, 0)) }];
    }
    case 'no-answer': {
      const at = T.firstLegAnswered + ringFor;
      return [ringing, fromAnswered, { at, terminal: true, change: end('no-answer', leg1Time(at), 0, leg1('completed', leg1Time(at)), leg2('no-answer', 0)) }];
    }
    case 'completed': {
      const at = T.secondLegAnswered + talk;
      const d = leg1Time(at);
      return [
        ringing,
        fromAnswered,
        { at: T.secondLegAnswered, answered: true, change: (c) => { c.status = 'in-progress'; c.answeredBy = 'human'; leg2('in-progress')(c); } },
        { at, terminal: true, change: end('completed', d, talk, leg1('completed', d), leg2('completed', talk)) },
      ];
    }
  }
}

export interface CallLifecycleDeps {
  scheduler: Scheduler;
  callbacks: CallbackSender;
  /** Called after every change (tests wait on it). */
  onChange: (call: CallRecord) => void;
  /** Where recordings live (RecordingUrl of recorded, answered calls). */
  recordingUrl: (call: CallRecord) => string;
  /** True while a hold fault keeps the call at its current phase (faults.ts, 'hold-calls'). */
  isHeld: (call: CallRecord) => boolean;
  /** Parks `resume` until holds are released; it then checks `isHeld` again itself. */
  park: (resume: () => void) => void;
}

/**
 * Runs the lifecycle of a freshly created call. Steps are chained (each waits the gap since the previous
 * one) rather than all scheduled up front, so a held call picks up where it stopped, with the same gaps.
 */
export function runCallLifecycle(call: CallRecord, deps: CallLifecycleDeps): void {
  const { scheduler, callbacks } = deps;
  const post = (eventType: 'answered' | 'terminal'): void => {
    const cb = call.statusCallback;
    if (!cb) return;
    // Exotel sends only answered (when subscribed) and terminal events, never ringing/in-progress.
    if (eventType === 'answered' && !cb.events.includes('answered')) return;
    callbacks.send({ kind: 'call', sid: call.sid, eventType, url: cb.url, contentType: cb.contentType, fields: callbackFields(call, eventType) });
  };
  const apply = (step: Step): void => {
    step.change(call);
    call.updatedAtMs = Date.now();
    if (step.terminal) {
      call.endedAtMs = call.updatedAtMs;
      if (call.record && call.status === 'completed') call.recordingUrl = deps.recordingUrl(call);
    }
    deps.onChange(call);
    if (step.answered) post('answered');
    if (step.terminal) {
      post('terminal');
      scheduler.afterSim(T.finalizeDelay, () => {
        call.finalized = true;
        call.updatedAtMs = Date.now();
        deps.onChange(call);
      });
    }
  };
  const steps = planCall(call);
  const runFrom = (index: number, previousAt: number): void => {
    const step = steps[index];
    if (!step) return;
    const due = (): void => {
      // Checked when the step is due, so a hold added while the call already sits at its phase works too.
      if (deps.isHeld(call)) return deps.park(due);
      apply(step);
      runFrom(index + 1, step.at);
    };
    scheduler.afterSim(step.at - previousAt, due);
  };
  runFrom(0, 0);
}
