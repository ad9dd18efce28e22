/**
 * The cached Call/SmsMessage after a forward status: the one place the live pipeline writes the entity
 * cache, right after the event is stored (ingest.ts). A query right after a published change sees it.
 *
 * The cache is an optimisation: the event is stored and published whatever happens here. A failed
 * update is retried in the background from the same update (the event's content), a few times; until
 * then a stale live entry lasts at most its short TTL.
 */
import type { Call, SmsMessage } from '../exotel/types.js';
import { UNSET_CALL_FIELDS } from '../exotel/types.js';
import type { IngestDeps } from './ingest.js';
import type { CallStatusUpdate, IncomingCallUpdate, LiveUpdate, SmsStatusUpdate } from './updates.js';

type Deps = Pick<IngestDeps, 'accountSid' | 'entities' | 'logger'>;

/** What is cached for the update's Sid, read while the event is being stored (one cache read); never rejects. */
export type Prefetched = { cached: Call | SmsMessage | undefined; unknownCall: boolean } | { failed: unknown };

export function prefetchCached(update: LiveUpdate, deps: Deps): Promise<Prefetched> {
  const read =
    update.kind === 'sms'
      ? deps.entities.getSms([update.smsSid]).then(([cached]) => ({ cached, unknownCall: false }))
      : deps.entities.getCallAndUnknown(update.callSid).then(({ call, unknown }) => ({ cached: call, unknownCall: unknown }));
  return read.catch((failed: unknown) => ({ failed }));
}

/** Background retries of a failed cache update: delays, ms. */
const RETRY_DELAYS_MS = [200, 1_000, 5_000] as const;

/** Merges the forward update into the cached object. Never rejects. */
export async function applyToCache(update: LiveUpdate, prefetched: Prefetched, deps: Deps): Promise<void> {
  try {
    if ('failed' in prefetched) throw prefetched.failed;
    await apply(update, prefetched, deps);
  } catch (err) {
    deps.logger.warn({ err, kind: update.kind }, 'could not update the cached object after a stored status; retrying in the background');
    retry(update, deps, 0);
  }
}

function retry(update: LiveUpdate, deps: Deps, attempt: number): void {
  const delay = RETRY_DELAYS_MS[attempt];
  if (delay === undefined) {
    deps.logger.warn({ kind: update.kind }, 'gave up updating the cached object; it refreshes when its entry expires');
    return;
  }
  setTimeout(() => {
    prefetchCached(update, deps)
      .then((prefetched) => {
        if ('failed' in prefetched) throw prefetched.failed;
        return apply(update, prefetched, deps);
      })
      .catch(() => retry(update, deps, attempt + 1));
  }, delay).unref();
}

async function apply(update: LiveUpdate, { cached, unknownCall }: { cached: Call | SmsMessage | undefined; unknownCall: boolean }, deps: Deps): Promise<void> {
  switch (update.kind) {
    case 'call':
      return applyCall(update, cached as Call | undefined, unknownCall, deps);
    case 'sms':
      return applySms(update, cached as SmsMessage | undefined, deps);
    case 'incoming':
      return applyIncoming(update, cached as Call | undefined, deps);
  }
}

async function applyCall(update: CallStatusUpdate, cached: Call | undefined, unknownCall: boolean, deps: Deps): Promise<void> {
  const next = cached
    ? { ...cached, ...update.fields, status: update.status, dateUpdated: update.fields.dateUpdated ?? update.at }
    : completeCall(update.fields, deps.accountSid);
  if (next) await deps.entities.putCall({ ...next, sid: update.callSid, status: update.status });
  // Nothing to cache from this callback, yet it proves the call exists: drop the "no such call" memory
  // if there is one (a cached call is read before that memory, so the write above already answers lookups).
  else if (unknownCall) await deps.entities.forgetUnknownCall(update.callSid);
}

async function applySms(update: SmsStatusUpdate, cached: SmsMessage | undefined, deps: Deps): Promise<void> {
  const next = cached ? { ...cached, ...update.fields, status: update.status } : completeSms(update.fields, deps.accountSid);
  if (next) await deps.entities.putSms({ ...next, sid: update.smsSid, status: update.status });
}

async function applyIncoming(update: IncomingCallUpdate, cached: Call | undefined, deps: Deps): Promise<void> {
  if (!cached) await deps.entities.putCall(update.call);
}

/** A whole Call from an update's fields when they carry enough (an API or poll answer), else undefined. */
function completeCall(fields: Partial<Call>, accountSid: string): Call | undefined {
  if (!fields.sid || fields.from === undefined || fields.to === undefined || !fields.dateCreated || !fields.status) return undefined;
  return { ...UNSET_CALL_FIELDS, accountSid, dateUpdated: fields.dateCreated, ...fields } as Call;
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
