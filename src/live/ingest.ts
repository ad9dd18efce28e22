/**
 * ingest(update, deps): the one path every status takes into the gateway — webhook, poller, reconciler
 * and the gateway's own API answers alike.
 *
 * One atomic storage step (EventLog.appendStatus: one Lua script on Redis, one synchronous function in
 * memory) deduplicates on (account, Sid, status), decides forward-only — a status of the same rank as one
 * already stored (two final statuses) is not forward: the first stored wins — appends to the event log,
 * and keeps the request reference and the open-item lists. Nothing is claimed without being stored, so a
 * replica dying at any point cannot block Exotel's retry on another. The cached object is updated after
 * the append (cache-updates.ts); subscribers on every replica are fed by the log.
 *
 * It makes no upstream request: a webhook must be answered within milliseconds (Exotel waits 15 s at
 * most and retries only twice).
 */
import type { EntityCache } from '../cache/entities.js';
import type { Call } from '../exotel/types.js';
import { assertNever } from '../assert-never.js';
import type { Logger } from '../logger.js';
import type { CallEventRecord, EventLog, EventRecord, NotForwardReason, StatusAppend, StatusAppendResult, StatusStepResult } from '../storage/types.js';
import { applyToCache, prefetchCached } from './cache-updates.js';
import { callStatusRank, isTerminalCall, isTerminalSms, openSets, smsStatusRank, type LiveUpdate } from './updates.js';

export interface IngestDeps {
  accountSid: string;
  events: EventLog;
  entities: EntityCache;
  logger: Logger;
  now: () => number;
  /** How long a call's (or SMS's) forward-only state and stored statuses are remembered: longer than Exotel's retries and the poller's life. */
  stateTtlMs: number;
  /** How long a request reference (which call or SMS a request created) is kept: as long as an idempotency key. */
  requestRefTtlMs: number;
  /** When a call first seen by a callback (not created here) is due for the reconciler, from now. */
  unknownCallDueMs: number;
}

export type IngestResult =
  /** A forward change: stored and going out to subscribers. */
  | { outcome: 'published'; event: EventRecord }
  /** A repeat, a backwards status or the loser of an equal-rank pair: kept in the history (forward=false), not published. */
  | { outcome: 'recorded'; event: EventRecord; reason: NotForwardReason }
  /** Not forward and made by the gateway itself (poller/API): nothing new to keep. */
  | { outcome: 'ignored'; reason: NotForwardReason };

/** Storing failed: the caller answers 503 so Exotel retries. Nothing of the update was stored. */
export class IngestStorageError extends Error {
  constructor(cause: unknown) {
    super('the event could not be stored', { cause });
    this.name = 'IngestStorageError';
  }
}

export interface IngestOptions {
  /**
   * False when the caller has already merged the cached object with the update and writes it itself
   * (the incoming-call flow): then ingest neither reads nor writes the cache, so no object is read or
   * written twice for one request.
   */
  updateCache?: boolean;
  /** A second update stored in the same atomic step, right after this one (an incoming call's announcement). */
  also?: LiveUpdate;
  /**
   * The second update is skipped, in the same step, when anything stored of the call (this update
   * included) said it is outgoing: how a request that names no direction announces its call.
   */
  alsoUnlessOutgoing?: boolean;
  /** Also answer the call's history as it is after the step, read in the same step (a call update). */
  withHistory?: boolean;
}

/** ingest()'s answer when the step carried a second update or read the history. */
export interface IngestStepResult {
  result: IngestResult;
  also?: IngestResult;
  history?: CallEventRecord[];
}

/** Ingests one update; throws IngestStorageError when it could not be stored. */
export async function ingest(update: LiveUpdate, deps: IngestDeps, options: IngestOptions = {}): Promise<IngestResult> {
  return (await ingestStep(update, deps, options)).result;
}

/** ingest() with what the step also stored and read (IngestOptions.also, withHistory). */
export async function ingestStep(update: LiveUpdate, deps: IngestDeps, options: IngestOptions = {}): Promise<IngestStepResult> {
  const updateCache = options.updateCache ?? true;
  // The cached object is read while the step runs (another connection on Redis): one round trip less.
  const cached = updateCache ? prefetchCached(update, deps) : undefined;
  let stored: StatusAppendResult;
  try {
    stored = await deps.events.appendStatus({
      ...statusAppend(update, deps),
      ...(options.also ? { also: { ...statusAppend(options.also, deps), ...(options.alsoUnlessOutgoing ? { unlessMarked: OUTGOING_MARK } : {}) } } : {}),
      ...(options.withHistory ? { withHistory: true } : {}),
    });
  } catch (err) {
    throw new IngestStorageError(err);
  }
  // The second update's cache needs no update of its own: the caller that joins two updates writes the cache.
  const also = stored.also ? outcomeOf(stored.also) : undefined;
  const extra = { ...(also ? { also } : {}), ...(stored.history ? { history: stored.history } : {}) };
  if (stored.forward && cached) await applyToCache(update, await cached, deps);
  return { result: outcomeOf(stored), ...extra };
}

function outcomeOf(step: StatusStepResult): IngestResult {
  if (step.forward) return { outcome: 'published', event: step.event };
  // Repeats the gateway made itself (poller, API) carry no news; repeats from Exotel are history.
  return step.event ? { outcome: 'recorded', event: step.event, reason: step.reason } : { outcome: 'ignored', reason: step.reason };
}

/**
 * The mark a call's state keeps once an update of it says it is outgoing (placed by the API, or dialled
 * out by a flow), whatever the source: a flow request that names no direction is then not announced.
 */
const OUTGOING_MARK = 'outgoing';

const isOutgoing = (direction: Call['direction'] | undefined) => direction === 'OUTBOUND_API' || direction === 'OUTBOUND_DIAL';

/** What the atomic step stores for an update: the event, its rank, and the bookkeeping that goes with it. */
function statusAppend(update: LiveUpdate, deps: IngestDeps): StatusAppend {
  const { accountSid } = deps;
  const sets = openSets(accountSid);
  const common = {
    keepNotForward: update.source === 'WEBHOOK',
    stateTtlMs: deps.stateTtlMs,
  };
  const ref = (requestRef: string | undefined) => (requestRef ? { requestRef: { ref: requestRef, ttlMs: deps.requestRefTtlMs } } : {});
  switch (update.kind) {
    case 'call':
      return {
        ...common,
        ...ref(update.requestRef),
        event: {
          kind: 'call',
          accountSid,
          callSid: update.callSid,
          status: update.status,
          at: update.at,
          source: update.source,
          data: { call: update.fields, ...(update.eventType ? { eventType: update.eventType } : {}) },
        },
        rank: callStatusRank(update.status),
        ...(isOutgoing(update.fields.direction) ? { mark: OUTGOING_MARK } : {}),
        // A call placed outside the gateway (a flow in Exotel's dashboard) is first seen here.
        open: isTerminalCall(update.status)
          ? { remove: [sets.calls, sets.watchedCalls] }
          : { add: { set: sets.calls, atMs: deps.now() + deps.unknownCallDueMs } },
      };
    case 'sms':
      return {
        ...common,
        ...ref(update.requestRef),
        event: { kind: 'sms', accountSid, smsSid: update.smsSid, status: update.status, at: update.at, source: update.source, data: { sms: update.fields } },
        rank: smsStatusRank(update.status),
        ...(isTerminalSms(update.status) ? { open: { remove: [sets.sms] } } : {}),
      };
    case 'incoming':
      // A flow may pass through several Passthru steps; the incoming call is announced once.
      return {
        ...common,
        event: { kind: 'incoming', accountSid, callSid: update.callSid, at: update.at, source: update.source, data: { call: update.call, ...update.extra } },
        rank: 0,
        open: { add: { set: sets.calls, atMs: deps.now() + deps.unknownCallDueMs } },
      };
    default:
      return assertNever(update);
  }
}
