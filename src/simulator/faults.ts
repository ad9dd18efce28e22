/**
 * Faults on demand: the simulator misbehaves the way Exotel can, so the gateway's retries, timeouts,
 * backoff and callback dedup/ordering can be tested against real HTTP. Controlled in-process through
 * `sim.faults` or, for a separate process, through `POST /__sim/faults` with the same JSON.
 */
import type { UpstreamRequestEvent } from '../exotel/types.js';
import { formApplies } from './answer-forms.js';
import { echoNumber, parseNumber } from './rules.js';

/** Names of the simulated Exotel endpoints (the client's own names, so counts line up). */
export type SimEndpoint = UpstreamRequestEvent['endpoint'];

/** How many times a fault applies: a number of matching requests/callbacks, or 'all' until cleared. */
export type FaultCount = number | 'all';

/** Faults on requests to the simulator. `endpoint` limits them to one endpoint; `count` defaults to 1. */
export type RequestFault =
  /** Answer 500/502/503 (default 500) with a RestException. */
  | { kind: 'error'; status?: 500 | 502 | 503; count?: FaultCount; endpoint?: SimEndpoint }
  /** Wait `delayMs` (real milliseconds) before answering normally — makes client timeouts fire. */
  | { kind: 'slow'; delayMs: number; count?: FaultCount; endpoint?: SimEndpoint }
  /**
   * Process the request at once (a connect places its call), then wait `delayMs` before answering: the
   * client's timeout fires with the work done — Exotel's answer lost on the way back.
   */
  | { kind: 'slow-answer'; delayMs: number; count?: FaultCount; endpoint?: SimEndpoint }
  /** Answer 429; `retryAfterSeconds` null sends no Retry-After header (default 1). */
  | { kind: 'rate-limit'; retryAfterSeconds?: number | null; count?: FaultCount; endpoint?: SimEndpoint }
  /** Answer 403 "Insufficient balance" (or 402 plan/usage limit). */
  | { kind: 'insufficient-balance'; status?: 402 | 403; count?: FaultCount; endpoint?: SimEndpoint }
  /** Destroy the socket without an answer. */
  | { kind: 'drop-connection'; count?: FaultCount; endpoint?: SimEndpoint }
  /**
   * Process the request, then leave the last `drop` (default 1) messages out of a bulk SMS answer — the
   * messages were sent, but Exotel's answer does not say so.
   */
  | { kind: 'truncate-bulk'; drop?: number; count?: FaultCount; endpoint?: SimEndpoint }
  /**
   * Answer `status` with a RestException carrying Exotel's numeric `code` (e.g. 503 + 35008 on connect,
   * 403 + 340030 on SMS), as JSON or as Exotel's XML (`<TwilioResponse><RestException>…`). Nothing is
   * processed. `message` defaults to Exotel's words for known codes.
   */
  | { kind: 'exotel-error'; status: number; code?: number; message?: string; format?: 'json' | 'xml'; count?: FaultCount; endpoint?: SimEndpoint }
  /**
   * Process the request normally, but answer in another form Exotel really uses (docs/exotel-fidelity.md): `legacy-sms` (SMS answers with the string "null" for empty values and a string
   * DetailedStatusCode), `bulk-sms-short` (a bulk SMS answer `{"SMSMessages": [{Sid, Status, To}]}`),
   * `call-strings` (call details with Duration and Price as strings). Answers the form does not concern
   * are left as they are.
   */
  | { kind: 'answer-form'; form: AnswerForm; count?: FaultCount; endpoint?: SimEndpoint };

/** The other answer forms the simulator can use on demand (the `answer-form` fault). */
export type AnswerForm = 'legacy-sms' | 'bulk-sms-short' | 'call-strings';
const ANSWER_FORMS: ReadonlySet<string> = new Set<AnswerForm>(['legacy-sms', 'bulk-sms-short', 'call-strings']);

/** Which callbacks a callback fault applies to (all given fields must match). */
export interface CallbackMatch {
  kind?: 'call' | 'sms';
  /** Call callbacks only: 'answered' or 'terminal'. */
  eventType?: 'answered' | 'terminal';
  /** CallSid or SmsSid. */
  sid?: string;
}

/** Faults on the status callbacks the simulator posts. `count` defaults to 1. */
export type CallbackFault =
  /** Do not send the matching callbacks at all (not even retries). */
  | { kind: 'drop-callbacks'; count?: FaultCount; match?: CallbackMatch }
  /** Send each matching callback `times` times (default 2). */
  | { kind: 'duplicate-callbacks'; times?: number; count?: FaultCount; match?: CallbackMatch }
  /** Hold the next `count` (≥ 2) matching callbacks, then send them all in reverse order. */
  | { kind: 'reorder-callbacks'; count: number; match?: CallbackMatch }
  /** Send matching callbacks `delayMs` real milliseconds late. */
  | { kind: 'delay-callbacks'; delayMs: number; count?: FaultCount; match?: CallbackMatch };

/** Phases a live call can be held at: its lifecycle stops there until the hold is released. */
export type HoldPhase = 'queued' | 'ringing' | 'in-progress';

/** Which calls a hold applies to (all given fields must match; none given = every call). */
export interface CallHoldMatch {
  /** CallSid. */
  sid?: string;
  /** The dialled number, in any spelling the simulator accepts ("+919812345670", "09812345670"). */
  to?: string;
}

/**
 * Faults on call lifecycles. A hold has no count: it lasts until `releaseCalls` (or `clear`) removes it,
 * so a test can wait for what the gateway makes of a phase before the call moves on.
 */
export type CallFault =
  /** Matching calls that are at phase `at` (or reach it) go no further until released. */
  { kind: 'hold-calls'; at: HoldPhase; match?: CallHoldMatch };

/** What `releaseCalls` removes: holds at `at` (any phase when omitted) with exactly these match fields. */
export interface CallHoldFilter extends CallHoldMatch {
  at?: HoldPhase;
}

export type Fault = RequestFault | CallbackFault | CallFault;

/** A fault with what is left of it, as `list()` shows it. */
export type ActiveFault = Fault & { remaining: FaultCount };

/** What a callback fault decides for one callback. */
export type CallbackPlan =
  | { action: 'send'; copies: number; delayMs: number }
  | { action: 'drop' }
  | { action: 'hold'; fault: ActiveFault };

/** `sim.faults`: inject, inspect and clear faults. */
export interface FaultControls {
  /** Adds a fault; faults apply in the order added, one fault per request/callback. */
  inject(fault: Fault): void;
  /** Active faults with their remaining counts. */
  list(): ActiveFault[];
  /** Removes every fault, releases held (reorder) callbacks in reverse order and lets held calls go on. */
  clear(): void;
  /** Next `count` requests (optionally to one endpoint) answer `status` (default 500). */
  failNext(count?: number, status?: 500 | 502 | 503, endpoint?: SimEndpoint): void;
  /** Next `count` requests answer after `delayMs`. */
  slowNext(count: number, delayMs: number, endpoint?: SimEndpoint): void;
  /** Next `count` requests answer 429 (Retry-After `retryAfterSeconds`, or none when null). */
  rateLimitNext(count?: number, retryAfterSeconds?: number | null, endpoint?: SimEndpoint): void;
  /** Next `count` matching callbacks are not sent ('all' until cleared). */
  dropCallbacks(count?: FaultCount, match?: CallbackMatch): void;
  /** Next `count` matching callbacks are each sent `times` times. */
  duplicateCallbacks(times?: number, count?: FaultCount, match?: CallbackMatch): void;
  /** Next `count` matching callbacks are held and then released in reverse order. */
  reorderCallbacks(count: number, match?: CallbackMatch): void;
  /** Matching calls stop at phase `at` until released (see CallFault). */
  holdCalls(at: HoldPhase, match?: CallHoldMatch): void;
  /** Removes the holds that `filter` selects (all when omitted); calls no other hold keeps go on. */
  releaseCalls(filter?: CallHoldFilter): void;
}

const REQUEST_KINDS = new Set(['error', 'slow', 'slow-answer', 'rate-limit', 'insufficient-balance', 'drop-connection', 'truncate-bulk', 'exotel-error', 'answer-form']);
const CALLBACK_KINDS = new Set(['drop-callbacks', 'duplicate-callbacks', 'reorder-callbacks', 'delay-callbacks']);
const HOLD_PHASES: ReadonlySet<string> = new Set<HoldPhase>(['queued', 'ringing', 'in-progress']);

function isRequestFault(fault: Fault): fault is RequestFault {
  return REQUEST_KINDS.has(fault.kind);
}

function isCallbackFault(fault: Fault): fault is CallbackFault {
  return CALLBACK_KINDS.has(fault.kind);
}

function isCallFault(fault: Fault): fault is CallFault {
  return fault.kind === 'hold-calls';
}

/** A number as the simulator stores it (calls.ts echoes `To` this way), or null when it is none. */
function canonicalNumber(raw: string): string | null {
  const parsed = parseNumber(raw);
  return parsed ? echoNumber(parsed) : null;
}

/** Validates a hold's match or a release filter; returns an error message or null. */
function checkHoldFields(f: Record<string, unknown>): string | null {
  if (f.sid !== undefined && (typeof f.sid !== 'string' || f.sid === '')) return 'match.sid must be a non-empty string';
  if (f.to !== undefined && (typeof f.to !== 'string' || canonicalNumber(f.to) === null)) return 'match.to must be a phone number';
  return null;
}

/** Validates a `releaseCalls` filter from JSON (admin route); returns an error message or null. */
export function checkHoldFilter(value: unknown): string | null {
  if (value === undefined) return null;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'releaseCalls must be an object';
  const f = value as Record<string, unknown>;
  if (f.at !== undefined && !HOLD_PHASES.has(f.at as string)) return "at must be 'queued', 'ringing' or 'in-progress'";
  return checkHoldFields(f);
}

/** Validates a fault from JSON (admin route); returns an error message or null. */
export function checkFault(value: unknown): string | null {
  if (typeof value !== 'object' || value === null) return 'a fault must be an object';
  const f = value as Record<string, unknown>;
  const count = f.count;
  if (count !== undefined && count !== 'all' && !(Number.isInteger(count) && (count as number) > 0)) return "count must be a positive integer or 'all'";
  switch (f.kind) {
    case 'error':
      return f.status === undefined || [500, 502, 503].includes(f.status as number) ? null : 'status must be 500, 502 or 503';
    case 'slow':
    case 'slow-answer':
    case 'delay-callbacks':
      return Number.isFinite(f.delayMs) && (f.delayMs as number) >= 0 ? null : 'delayMs must be a number ≥ 0';
    case 'rate-limit':
      return f.retryAfterSeconds === undefined || f.retryAfterSeconds === null || (Number.isInteger(f.retryAfterSeconds) && (f.retryAfterSeconds as number) >= 0)
        ? null
        : 'retryAfterSeconds must be an integer ≥ 0 or null';
    case 'insufficient-balance':
      return f.status === undefined || f.status === 402 || f.status === 403 ? null : 'status must be 402 or 403';
    case 'drop-connection':
    case 'drop-callbacks':
      return null;
    case 'exotel-error':
      if (!(Number.isInteger(f.status) && (f.status as number) >= 400 && (f.status as number) <= 599)) return 'status must be an HTTP error status (400–599)';
      if (f.code !== undefined && !(Number.isInteger(f.code) && (f.code as number) >= 0)) return 'code must be a whole number';
      if (f.message !== undefined && (typeof f.message !== 'string' || f.message.length > 500)) return 'message must be a string of at most 500 characters';
      return f.format === undefined || f.format === 'json' || f.format === 'xml' ? null : "format must be 'json' or 'xml'";
    case 'answer-form':
      return ANSWER_FORMS.has(f.form as string) ? null : `form must be one of ${[...ANSWER_FORMS].join(', ')}`;
    case 'truncate-bulk':
      return f.drop === undefined || (Number.isInteger(f.drop) && (f.drop as number) >= 1) ? null : 'drop must be an integer ≥ 1';
    case 'duplicate-callbacks':
      return f.times === undefined || (Number.isInteger(f.times) && (f.times as number) >= 1) ? null : 'times must be an integer ≥ 1';
    case 'reorder-callbacks':
      return Number.isInteger(f.count) && (f.count as number) >= 2 ? null : 'count must be an integer ≥ 2';
    case 'hold-calls': {
      if (count !== undefined) return 'hold-calls takes no count: a hold lasts until released';
      if (!HOLD_PHASES.has(f.at as string)) return "at must be 'queued', 'ringing' or 'in-progress'";
      if (f.match === undefined) return null;
      if (typeof f.match !== 'object' || f.match === null || Array.isArray(f.match)) return 'match must be an object';
      return checkHoldFields(f.match as Record<string, unknown>);
    }
    default:
      return `unknown fault kind ${JSON.stringify(f.kind)}`;
  }
}

export interface FaultEngine {
  controls: FaultControls;
  /** The request fault for this request, consumed; undefined when none applies. */
  takeRequestFault(endpoint: SimEndpoint): RequestFault | undefined;
  /** What to do with one callback. */
  planCallback(info: Required<Pick<CallbackMatch, 'kind' | 'sid'>> & { eventType?: 'answered' | 'terminal' }): CallbackPlan;
  /** Called when a reorder fault holds enough callbacks, or on clear(): `release` sends them. */
  onRelease(listener: (fault: ActiveFault) => void): void;
  /** True while a hold keeps this call at its current phase. */
  holdsCall(call: { sid: string; to: string; status: string }): boolean;
  /** Called after holds are removed (releaseCalls, clear): held calls check again whether they may go on. */
  onCallsReleased(listener: () => void): void;
}

export function createFaultEngine(): FaultEngine {
  let active: ActiveFault[] = [];
  const releaseListeners: Array<(fault: ActiveFault) => void> = [];
  const callReleaseListeners: Array<() => void> = [];
  const callsReleased = (): void => callReleaseListeners.forEach((listener) => listener());

  const consume = (fault: ActiveFault): void => {
    if (fault.remaining === 'all') return;
    fault.remaining -= 1;
    if (fault.remaining <= 0 && fault.kind !== 'reorder-callbacks') active = active.filter((f) => f !== fault);
  };

  const matches = (match: CallbackMatch | undefined, info: { kind: string; sid: string; eventType?: string }): boolean =>
    match === undefined ||
    ((match.kind === undefined || match.kind === info.kind) &&
      (match.sid === undefined || match.sid === info.sid) &&
      (match.eventType === undefined || match.eventType === info.eventType));

  const inject = (fault: Fault): void => {
    const problem = checkFault(fault);
    if (problem) throw new TypeError(`bad fault: ${problem}`);
    const remaining: FaultCount = isCallFault(fault) ? 'all' : (fault.count ?? 1);
    active.push({ ...fault, remaining } as ActiveFault);
  };

  const sameNumber = (a: string | undefined, b: string | undefined): boolean =>
    a === undefined || (b !== undefined && canonicalNumber(a) === canonicalNumber(b));

  const controls: FaultControls = {
    inject,
    list: () => active.map((f) => ({ ...f })),
    clear: () => {
      const held = active.filter((f) => f.kind === 'reorder-callbacks');
      const heldCalls = active.some(isCallFault);
      active = [];
      for (const fault of held) for (const listener of releaseListeners) listener(fault);
      if (heldCalls) callsReleased();
    },
    failNext: (count = 1, status = 500, endpoint) => inject({ kind: 'error', status, count, ...(endpoint ? { endpoint } : {}) }),
    slowNext: (count, delayMs, endpoint) => inject({ kind: 'slow', delayMs, count, ...(endpoint ? { endpoint } : {}) }),
    rateLimitNext: (count = 1, retryAfterSeconds = 1, endpoint) =>
      inject({ kind: 'rate-limit', retryAfterSeconds, count, ...(endpoint ? { endpoint } : {}) }),
    dropCallbacks: (count = 1, match) => inject({ kind: 'drop-callbacks', count, ...(match ? { match } : {}) }),
    duplicateCallbacks: (times = 2, count = 1, match) => inject({ kind: 'duplicate-callbacks', times, count, ...(match ? { match } : {}) }),
    reorderCallbacks: (count, match) => inject({ kind: 'reorder-callbacks', count, ...(match ? { match } : {}) }),
    holdCalls: (at, match) => inject({ kind: 'hold-calls', at, ...(match ? { match } : {}) }),
    releaseCalls: (filter = {}) => {
      const problem = checkHoldFilter(filter);
      if (problem) throw new TypeError(`bad release filter: ${problem}`);
      const selected = (f: ActiveFault): boolean =>
        isCallFault(f) &&
        (filter.at === undefined || filter.at === f.at) &&
        (filter.sid === undefined || filter.sid === f.match?.sid) &&
        (filter.to === undefined || (f.match?.to !== undefined && sameNumber(filter.to, f.match.to)));
      const before = active.length;
      active = active.filter((f) => !selected(f));
      if (active.length < before) callsReleased();
    },
  };

  return {
    controls,
    takeRequestFault(endpoint) {
      // An answer-form fault waits for an endpoint whose answers it concerns.
      const fault = active.find(
        (f): f is ActiveFault & RequestFault =>
          isRequestFault(f) && (f.endpoint === undefined || f.endpoint === endpoint) && (f.kind !== 'answer-form' || formApplies(f.form, endpoint)),
      );
      if (!fault) return undefined;
      consume(fault);
      const { remaining: _remaining, ...plain } = fault;
      return plain as RequestFault;
    },
    planCallback(info) {
      const fault = active.find((f): f is ActiveFault & CallbackFault => isCallbackFault(f) && matches(f.match, info));
      if (!fault) return { action: 'send', copies: 1, delayMs: 0 };
      switch (fault.kind) {
        case 'drop-callbacks':
          consume(fault);
          return { action: 'drop' };
        case 'duplicate-callbacks':
          consume(fault);
          return { action: 'send', copies: fault.times ?? 2, delayMs: 0 };
        case 'delay-callbacks':
          consume(fault);
          return { action: 'send', copies: 1, delayMs: fault.delayMs };
        case 'reorder-callbacks': {
          consume(fault);
          if (fault.remaining !== 'all' && fault.remaining <= 0) {
            active = active.filter((f) => f !== fault);
            // Release after the caller has queued this callback too.
            queueMicrotask(() => releaseListeners.forEach((listener) => listener(fault)));
          }
          return { action: 'hold', fault };
        }
        default:
          // Unreachable: only callback faults are picked above, and each kind has its case.
          return { action: 'send', copies: 1, delayMs: 0 };
      }
    },
    onRelease(listener) {
      releaseListeners.push(listener);
    },
    holdsCall(call) {
      return active.some(
        (f) => isCallFault(f) && f.at === call.status && (f.match?.sid === undefined || f.match.sid === call.sid) && sameNumber(f.match?.to, call.to),
      );
    },
    onCallsReleased(listener) {
      callReleaseListeners.push(listener);
    },
  };
}
