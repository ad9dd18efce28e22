/**
 * ingest(update, deps): the one path every status takes into the gateway — webhook, poller, reconciler
 * and the gateway's own API answers alike. It deduplicates, keeps each call's state forward-only, updates
 * the cached object and appends to the event log; subscribers (on every replica) are fed by the log.
 *
 * It makes no upstream request: a webhook must be answered within milliseconds (Exotel waits 15 s at
 * most and retries only twice).
 */
import type { EntityCache } from '../cache/entities.js';
import type { Call, SmsMessage } from '../exotel/types.js';
import type { Logger } from '../logger.js';
import type { CallStateStore, DedupStore, EventLog, EventRecord, NewEvent, OpenItems } from '../storage/types.js';
import {
  assertNever,
  callStatusRank,
  isTerminalCall,
  isTerminalSms,
  openSets,
  smsStatusRank,
  type CallStatusUpdate,
  type IncomingCallUpdate,
  type LiveUpdate,
  type SmsStatusUpdate,
} from './updates.js';

export interface IngestDeps {
  accountSid: string;
  events: EventLog;
  dedup: DedupStore;
  callState: CallStateStore;
  openItems: OpenItems;
  entities: EntityCache;
  logger: Logger;
  now: () => number;
  /** How long a (Sid, status) claim blocks repeats; longer than Exotel's retries and the poller's life. */
  dedupTtlMs: number;
  /** How long a call's forward-only rank is kept. */
  stateTtlMs: number;
  /** When a call first seen by a callback (not created here) is due for the reconciler, from now. */
  unknownCallDueMs: number;
}

export type IngestResult =
  /** A forward change: stored and going out to subscribers. */
  | { outcome: 'published'; event: EventRecord }
  /** A repeat or a backwards status: kept in the history (forward=false), not published as a change. */
  | { outcome: 'recorded'; event: EventRecord; reason: 'duplicate' | 'backwards' }
  /** A repeat the gateway itself produced (poller/API): nothing new to keep. */
  | { outcome: 'ignored'; reason: 'duplicate' | 'backwards' };

/** Storing failed: the caller answers 503 so Exotel retries; the dedup claim has been released. */
export class IngestStorageError extends Error {
  constructor(cause: unknown) {
    super('the event could not be stored', { cause });
    this.name = 'IngestStorageError';
  }
}

/** Ingests one update; throws IngestStorageError when it could not be stored. */
export async function ingest(update: LiveUpdate, deps: IngestDeps): Promise<IngestResult> {
  switch (update.kind) {
    case 'call':
      return ingestCall(update, deps);
    case 'sms':
      return ingestSms(update, deps);
    case 'incoming':
      return ingestIncoming(update, deps);
    default:
      return assertNever(update);
  }
}

/** Background retries of a dedup release that failed (scale-out, issue #6): first delay, cap, give-up age. */
const RELEASE_RETRY = { firstDelayMs: 100, maxDelayMs: 5_000, giveUpAfterMs: 30 * 60_000 } as const;

/**
 * Forgets a dedup claim after a failed store, so Exotel's retry is not taken for a duplicate. When Redis
 * is down the release fails too and the claim would outlive the outage: it is then retried in the
 * background until it lands. Releasing is always safe: a retry whose change was in fact stored (a reply
 * lost in the crash) finds it in the call's history and is recorded, not published again.
 */
async function releaseClaim(deps: IngestDeps, key: string): Promise<void> {
  try {
    await deps.dedup.release(key);
    return;
  } catch {
    // retried below
  }
  const started = deps.now();
  let delayMs: number = RELEASE_RETRY.firstDelayMs;
  const retry = () => {
    const timer = setTimeout(() => {
      deps.dedup.release(key).then(
        () => deps.logger.info({ claim: key }, 'dedup claim of an unstored callback released after the storage outage'),
        () => {
          delayMs = Math.min(delayMs * 2, RELEASE_RETRY.maxDelayMs);
          if (deps.now() - started < RELEASE_RETRY.giveUpAfterMs) retry();
          else deps.logger.warn({ claim: key }, 'gave up releasing the dedup claim of an unstored callback');
        },
      );
    }, delayMs);
    timer.unref();
  };
  retry();
}

/** Runs a storage step; any failure becomes IngestStorageError after `undo`. */
async function stored<T>(step: () => Promise<T>, undo?: () => Promise<void>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    if (undo) await undo().catch(() => undefined);
    throw new IngestStorageError(err);
  }
}

async function ingestCall(update: CallStatusUpdate, deps: IngestDeps): Promise<IngestResult> {
  const { callSid, status } = update;
  const { accountSid } = deps;
  const claimKey = `cb:call:${accountSid}:${callSid}:${status}`;
  const release = () => releaseClaim(deps, claimKey);
  // A claim whose reply was lost in a crash may have been taken: release it too.
  const first = await stored(() => deps.dedup.claim(claimKey, deps.dedupTtlMs), release);

  let forward = false;
  let reason: 'duplicate' | 'backwards' = 'duplicate';
  if (!first && update.source === 'WEBHOOK') {
    // Claimed before, but is it stored? A delivery that claimed and then lost Redis answered 503 and its
    // claim is released only once Redis is back; until then this retry must get 503 too, not a 200 that
    // records the change as a mere duplicate (it would never be published). Same while the first
    // delivery is still in flight on another replica.
    const history = await stored(() => deps.events.callHistory(accountSid, callSid));
    if (!history.some((e) => e.status === status)) throw new IngestStorageError(new Error('an earlier delivery of this callback is not stored yet'));
  }
  if (first) {
    const rank = callStatusRank(status);
    const { moved, previous } = await stored(() => deps.callState.advance(`call:${accountSid}:${callSid}`, rank, deps.stateTtlMs), release);
    forward = moved;
    reason = 'backwards';
    if (!moved && previous === rank) {
      // Same rank without a stored forward event of that rank: an earlier attempt advanced the state but
      // failed to append (and answered 503). This is Exotel's retry of it, so it is the change itself.
      const history = await stored(() => deps.events.callHistory(accountSid, callSid), release);
      forward = !history.some((e) => e.forward && callStatusRank(e.status) === rank);
    }
  }

  // Repeats the gateway made itself (poller, API) carry no news; repeats from Exotel are history.
  if (!forward && update.source !== 'WEBHOOK') return { outcome: 'ignored', reason };

  if (forward) await updateCachedCall(update, deps);
  const event: NewEvent = {
    kind: 'call',
    accountSid,
    callSid,
    status,
    at: update.at,
    source: update.source,
    forward,
    data: { call: update.fields, ...(update.eventType ? { eventType: update.eventType } : {}) },
  };
  const record = await stored(() => deps.events.append(event), forward || first ? release : undefined);

  if (forward) await trackOpenCall(update, deps);
  return forward ? { outcome: 'published', event: record } : { outcome: 'recorded', event: record, reason };
}

/** Merges what the update says into the cached call, so a query right after sees the new state. */
async function updateCachedCall(update: CallStatusUpdate, deps: IngestDeps): Promise<void> {
  try {
    const [cached] = await deps.entities.getCalls([update.callSid]);
    const next = cached
      ? { ...cached, ...update.fields, status: update.status, dateUpdated: update.fields.dateUpdated ?? update.at }
      : completeCall(update.fields, deps.accountSid);
    if (next) await deps.entities.putCall({ ...next, sid: update.callSid, status: update.status });
    // Nothing to cache from this callback, yet it proves the call exists: drop any "no such call" memory
    // (a cached call is read before that memory, so the write above already answers lookups).
    else await deps.entities.forgetUnknownCall(update.callSid);
  } catch (err) {
    // The cache is an optimisation: the event itself must still be stored and published.
    deps.logger.warn({ err, callSid: update.callSid }, 'could not update the cached call');
  }
}

/** A whole Call from an update's fields when they carry enough (an API or poll answer), else undefined. */
function completeCall(fields: Partial<Call>, accountSid: string): Call | undefined {
  if (!fields.sid || fields.from === undefined || fields.to === undefined || !fields.dateCreated || !fields.status) return undefined;
  return {
    parentCallSid: null,
    accountSid,
    phoneNumberSid: null,
    direction: null,
    startTime: null,
    endTime: null,
    durationSeconds: null,
    price: null,
    recordingUrl: null,
    answeredBy: null,
    customField: null,
    conversationDurationSeconds: null,
    legs: null,
    dateUpdated: fields.dateCreated,
    ...fields,
  } as Call;
}

async function trackOpenCall(update: CallStatusUpdate, deps: IngestDeps): Promise<void> {
  const sets = openSets(deps.accountSid);
  try {
    if (isTerminalCall(update.status)) {
      await deps.openItems.remove(sets.calls, update.callSid);
      await deps.openItems.remove(sets.watchedCalls, update.callSid);
    } else {
      // A call placed outside the gateway (a flow in Exotel's dashboard) is first seen here.
      await deps.openItems.put(sets.calls, update.callSid, deps.now() + deps.unknownCallDueMs, { onlyIfAbsent: true });
    }
  } catch (err) {
    deps.logger.warn({ err, callSid: update.callSid }, 'could not update the open-call list');
  }
}

async function ingestSms(update: SmsStatusUpdate, deps: IngestDeps): Promise<IngestResult> {
  const { smsSid, status } = update;
  const { accountSid } = deps;
  const claimKey = `cb:sms:${accountSid}:${smsSid}:${status}`;
  const release = () => releaseClaim(deps, claimKey);
  const first = await stored(() => deps.dedup.claim(claimKey, deps.dedupTtlMs), release);
  const rank = smsStatusRank(status);
  // The event log keeps no per-SMS history, so the highest rank actually stored is kept beside the
  // forward-only state: it tells Exotel's retry of an unstored change from a real repeat (as for calls).
  const storedKey = `sms-stored:${accountSid}:${smsSid}`;
  const storedRank = async () => (await stored(() => deps.callState.get(storedKey), first ? release : undefined)) ?? -1;
  if (!first && update.source === 'WEBHOOK' && (await storedRank()) < rank) {
    // Claimed before but not stored (a delivery that lost storage, or one still in flight): 503 again.
    throw new IngestStorageError(new Error('an earlier delivery of this callback is not stored yet'));
  }
  let forward = false;
  if (first) {
    const { moved, previous } = await stored(() => deps.callState.advance(`sms:${accountSid}:${smsSid}`, rank, deps.stateTtlMs), release);
    // Same rank but nothing of that rank stored: an earlier attempt advanced the state, failed to append
    // and answered 503. This is its retry, so it is the change itself.
    forward = moved || (previous === rank && (await storedRank()) < rank);
  }
  if (!forward && update.source !== 'WEBHOOK') return { outcome: 'ignored', reason: first ? 'backwards' : 'duplicate' };

  if (forward) {
    try {
      const [cached] = await deps.entities.getSms([smsSid]);
      const next = cached ? { ...cached, ...update.fields, status } : completeSms(update.fields, accountSid);
      if (next) await deps.entities.putSms({ ...next, sid: smsSid, status });
    } catch (err) {
      deps.logger.warn({ err, smsSid }, 'could not update the cached SMS');
    }
  }
  const record = await stored(
    () => deps.events.append({ kind: 'sms', accountSid, smsSid, status, at: update.at, source: update.source, forward, data: { sms: update.fields } }),
    first ? release : undefined,
  );
  if (forward) {
    await deps.callState.advance(storedKey, rank, deps.stateTtlMs).catch((err: unknown) => deps.logger.warn({ err, smsSid }, 'could not note the stored SMS status'));
  }
  if (forward && isTerminalSms(status)) {
    await deps.openItems.remove(openSets(accountSid).sms, smsSid).catch((err: unknown) => deps.logger.warn({ err, smsSid }, 'could not update the open-SMS list'));
  }
  return forward ? { outcome: 'published', event: record } : { outcome: 'recorded', event: record, reason: first ? 'backwards' : 'duplicate' };
}

function completeSms(fields: Partial<SmsMessage>, accountSid: string): SmsMessage | undefined {
  if (!fields.sid || fields.from === undefined || fields.to === undefined || !fields.dateCreated || !fields.status) return undefined;
  return {
    accountSid,
    body: null,
    detailedStatus: null,
    detailedStatusCode: null,
    price: null,
    dateSent: null,
    dateUpdated: fields.dateCreated,
    ...fields,
  } as SmsMessage;
}

async function ingestIncoming(update: IncomingCallUpdate, deps: IngestDeps): Promise<IngestResult> {
  const { callSid } = update;
  const { accountSid } = deps;
  // A flow may pass through several Passthru steps; the incoming call is announced once.
  const claimKey = `cb:incoming:${accountSid}:${callSid}`;
  const release = () => releaseClaim(deps, claimKey);
  const first = await stored(() => deps.dedup.claim(claimKey, deps.dedupTtlMs), release);
  if (first) {
    try {
      const [cached] = await deps.entities.getCalls([callSid]);
      if (!cached) await deps.entities.putCall(update.call);
    } catch (err) {
      deps.logger.warn({ err, callSid }, 'could not cache the incoming call');
    }
  }
  const record = await stored(
    () =>
      deps.events.append({
        kind: 'incoming',
        accountSid,
        callSid,
        at: update.at,
        source: update.source,
        forward: first,
        data: { call: update.call, ...update.extra },
      }),
    first ? release : undefined,
  );
  if (first) {
    await deps.openItems
      .put(openSets(accountSid).calls, callSid, deps.now() + deps.unknownCallDueMs, { onlyIfAbsent: true })
      .catch((err: unknown) => deps.logger.warn({ err, callSid }, 'could not update the open-call list'));
  }
  return first ? { outcome: 'published', event: record } : { outcome: 'recorded', event: record, reason: 'duplicate' };
}
