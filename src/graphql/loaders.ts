/**
 * Per-request DataLoaders (docs/rate-budget.md): however a query asks for calls — callsBySid, many `call` aliases,
 * nested CallEvent.call — the loads of one tick become one cache read, and the misses go to the client
 * key's shared lookups (lookups.ts), which share bulk call-details requests of at most `bulkBatchSize`
 * Sids, and single lookups, with the key's other requests in flight. Results are per key: an
 * unknown Sid is null, a failed lookup is an Error in its own slot, and neither fails its neighbours.
 * Failed loads are never cached.
 *
 * A call's status history is memoised the same way: `Call.events` and `Call.flow` of one call, or the same
 * call asked for twice, read the event log once per request.
 */
import DataLoader from 'dataloader';
import type { EntityCache } from '../cache/entities.js';
import type { Call, NumberMetadata, SmsMessage } from '../exotel/types.js';
import type { Logger } from '../logger.js';
import type { CallEventRecord, EventLog } from '../storage/types.js';
import type { ClientLookups } from './lookups.js';

export interface Loaders {
  /** Calls by Sid; null for a Sid Exotel does not know. */
  call: DataLoader<string, Call | null>;
  /** SMS by Sid; null for a Sid Exotel does not know. */
  sms: DataLoader<string, SmsMessage | null>;
  /** Number metadata by E.164 number; null when Exotel does not know the number. */
  number: DataLoader<string, NumberMetadata | null>;
  /**
   * A call's status history from the event log, by account and call Sid. A failed read rejects with the
   * storage's own error (the resolvers say what could not be read) and is not kept.
   */
  callHistory: DataLoader<CallHistoryKey, CallEventRecord[], string>;
}

export interface CallHistoryKey {
  accountSid: string;
  sid: string;
}

export interface LoaderDeps {
  cache: EntityCache;
  logger: Logger;
  /** The asking client key's shared lookups (the context factory's): where cache misses go. */
  lookups: ClientLookups;
  /** Where call histories are read. */
  events: Pick<EventLog, 'callHistory'>;
}

/**
 * Wraps a batch function so that keys whose result is an Error are cleared from the loader's cache:
 * the waiting callers still get the error, the next load of that key tries again.
 */
function uncachedErrors<K, V>(batch: (keys: readonly K[]) => Promise<Array<V | Error>>, loader: () => DataLoader<K, V>) {
  return async (keys: readonly K[]) => {
    const results = await batch(keys);
    results.forEach((r, i) => {
      if (r instanceof Error) loader().clear(keys[i]!);
    });
    return results;
  };
}

/** Builds a fresh set of loaders; one per HTTP request or graphql-ws operation, never shared. */
export function createLoaders(deps: LoaderDeps): Loaders {
  // deps.logger is read only when something is logged: the request's child logger is made lazily (context.ts).
  const { cache, lookups, events } = deps;
  // A cache that fails (Redis down) must not fail lookups: treat it as all misses and say so once per batch.
  const cacheRead = async <T>(read: () => Promise<Array<T | undefined>>, size: number): Promise<Array<T | undefined>> => {
    try {
      return await read();
    } catch (err) {
      deps.logger.warn({ err }, 'cache read failed; asking Exotel');
      return new Array<T | undefined>(size).fill(undefined);
    }
  };

  /**
   * One cache read for the whole batch, then the distinct misses to the shared lookups; every key gets the
   * cached value, the fetched one (null when unknown, an Error when its lookup failed) or null.
   */
  async function batch<V>(
    keys: readonly string[],
    read: (keys: readonly string[]) => Promise<Array<V | undefined>>,
    fetch: (misses: readonly string[]) => Promise<Array<V | Error>>,
  ): Promise<Array<V | Error>> {
    const cached = await cacheRead(() => read(keys), keys.length);
    const misses = [...new Set(keys.filter((_, i) => cached[i] === undefined))];
    const fetched = misses.length > 0 ? await fetch(misses) : [];
    const found = new Map(misses.map((key, i) => [key, fetched[i]]));
    return keys.map((key, i) => {
      // A cached null means "Exotel does not know this number" and is an answer, not a miss.
      const hit = cached[i];
      return hit !== undefined ? hit : (found.get(key) ?? (null as V));
    });
  }

  const batchCalls = (sids: readonly string[]) => batch<Call | null>(sids, (k) => cache.getCalls(k), (m) => lookups.calls(m));
  const batchSms = (sids: readonly string[]) => batch<SmsMessage | null>(sids, (k) => cache.getSms(k), (m) => lookups.sms(m));
  const batchNumbers = (numbers: readonly string[]) => batch<NumberMetadata | null>(numbers, (k) => cache.getNumbers(k), (m) => lookups.numbers(m));

  // maxBatchSize stays unbounded: the shared lookups split into Exotel-sized requests themselves, and one large
  // batch lets the cache answer every hit with a single read.
  const loaders: Loaders = {
    call: new DataLoader(uncachedErrors(batchCalls, () => loaders.call)),
    sms: new DataLoader(uncachedErrors(batchSms, () => loaders.sms)),
    number: new DataLoader(uncachedErrors(batchNumbers, () => loaders.number)),
    callHistory: createCallHistoryLoader(events),
  };
  return loaders;
}

/**
 * Forgets everything the loaders hold. A subscription keeps one set of loaders for its whole life: each
 * event is resolved with fresh data, and a subscription open for days keeps nothing of its earlier events.
 */
export function clearLoaders(loaders: Partial<Loaders>): void {
  for (const loader of Object.values(loaders)) loader.clearAll();
}

/** The call-history loader of {@link Loaders}, over `events`. */
export function createCallHistoryLoader(events: Pick<EventLog, 'callHistory'>): Loaders['callHistory'] {
  // The event log reads one history at a time: the loader is here for its memo, so it does not batch.
  const read = (keys: readonly CallHistoryKey[]) =>
    Promise.all(keys.map(({ accountSid, sid }) => events.callHistory(accountSid, sid).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))))));
  const loader: Loaders['callHistory'] = new DataLoader(uncachedErrors(read, () => loader), { batch: false, cacheKeyFn: ({ accountSid, sid }) => `${accountSid}/${sid}` });
  return loader;
}
