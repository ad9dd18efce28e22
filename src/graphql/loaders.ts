/**
 * Per-request DataLoaders (design §7): however a query asks for calls — callsBySid, many `call` aliases,
 * nested CallEvent.call — the loads of one tick become one cache read and then bulk call-details
 * requests of at most `bulkBatchSize` Sids. Results are per key: an unknown Sid is null, a failed
 * lookup is an Error in its own slot, and neither fails its neighbours. Failed loads are never cached.
 */
import DataLoader from 'dataloader';
import type { EntityCache } from '../cache/entities.js';
import { ErrorCode, GatewayError } from '../errors.js';
import type { Call, ExotelApi, NumberMetadata, SmsMessage } from '../exotel/types.js';
import type { Logger } from '../logger.js';

export interface Loaders {
  /** Calls by Sid; null for a Sid Exotel does not know. */
  call: DataLoader<string, Call | null>;
  /** SMS by Sid; null for a Sid Exotel does not know. */
  sms: DataLoader<string, SmsMessage | null>;
  /** Number metadata by E.164 number; null when Exotel does not know the number. */
  number: DataLoader<string, NumberMetadata | null>;
}

export interface LoaderDeps {
  exotel: ExotelApi;
  cache: EntityCache;
  /** Sids per bulk call-details request (EXOTEL_BULK_BATCH_SIZE, ≤ 100). */
  bulkBatchSize: number;
  logger: Logger;
  /** Most single lookups (live calls, SMS, numbers) in flight at once from one loader. */
  singleConcurrency?: number;
}

const DEFAULT_SINGLE_CONCURRENCY = 8;

/** The error a failed lookup leaves in its slot: always an Error, a GatewayError when it can be. */
function asError(err: unknown): Error {
  if (err instanceof Error) return err;
  return new GatewayError(ErrorCode.INTERNAL_SERVER_ERROR, 'lookup failed', { cause: err });
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
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
  const { exotel, cache, logger } = deps;
  const concurrency = deps.singleConcurrency ?? DEFAULT_SINGLE_CONCURRENCY;
  // A cache that fails (Redis down) must not fail lookups: treat it as all misses and say so once per batch.
  const cacheRead = async <T>(read: () => Promise<Array<T | undefined>>, size: number): Promise<Array<T | undefined>> => {
    try {
      return await read();
    } catch (err) {
      logger.warn({ err }, 'cache read failed; asking Exotel');
      return new Array<T | undefined>(size).fill(undefined);
    }
  };
  const cacheWrite = (write: Promise<void>) => write.catch((err: unknown) => logger.warn({ err }, 'cache write failed'));

  async function batchCalls(sids: readonly string[]): Promise<Array<Call | null | Error>> {
    const cached = await cacheRead(() => cache.getCalls(sids), sids.length);
    const found = new Map<string, Call | null | Error>();
    const misses = [...new Set(sids.filter((_, i) => cached[i] === undefined))];

    // Exotel bulk call details: ≤ 100 Sids per request; the chunks go out together.
    await Promise.all(
      chunks(misses, deps.bulkBatchSize).map(async (chunk) => {
        try {
          const page = await exotel.listCalls({ sids: chunk, pageSize: chunk.length, details: true });
          const asked = new Set(chunk);
          for (const call of page.calls) if (asked.has(call.sid)) found.set(call.sid, call);
        } catch (err) {
          for (const sid of chunk) found.set(sid, asError(err));
        }
      }),
    );
    // Bulk results never include calls still going on (Exotel), and unknown Sids are absent too:
    // only a single lookup tells them apart.
    const absent = misses.filter((sid) => !found.has(sid));
    await eachLimited(absent, concurrency, async (sid) => {
      try {
        found.set(sid, await exotel.getCall(sid, { details: true }));
      } catch (err) {
        found.set(sid, asError(err));
      }
    });
    await Promise.all([...found.values()].map((v) => (v && !(v instanceof Error) ? cacheWrite(cache.putCall(v)) : undefined)));
    return sids.map((sid, i) => cached[i] ?? found.get(sid) ?? null);
  }

  async function batchSms(sids: readonly string[]): Promise<Array<SmsMessage | null | Error>> {
    const cached = await cacheRead(() => cache.getSms(sids), sids.length);
    const found = new Map<string, SmsMessage | null | Error>();
    // Exotel has no bulk SMS details: one request per message.
    const misses = [...new Set(sids.filter((_, i) => cached[i] === undefined))];
    await eachLimited(misses, concurrency, async (sid) => {
      try {
        const sms = await exotel.getSms(sid);
        found.set(sid, sms);
        if (sms) await cacheWrite(cache.putSms(sms));
      } catch (err) {
        found.set(sid, asError(err));
      }
    });
    return sids.map((sid, i) => cached[i] ?? found.get(sid) ?? null);
  }

  async function batchNumbers(numbers: readonly string[]): Promise<Array<NumberMetadata | null | Error>> {
    // A cached null means "Exotel does not know this number" and is an answer, not a miss.
    const cached = await cacheRead(() => cache.getNumbers(numbers), numbers.length);
    const found = new Map<string, NumberMetadata | null | Error>();
    const misses = [...new Set(numbers.filter((_, i) => cached[i] === undefined))];
    await eachLimited(misses, concurrency, async (number) => {
      try {
        const metadata = await exotel.getNumberMetadata(number);
        found.set(number, metadata);
        await cacheWrite(cache.putNumber(number, metadata));
      } catch (err) {
        found.set(number, asError(err));
      }
    });
    return numbers.map((n, i) => {
      const hit = cached[i];
      return hit !== undefined ? hit : (found.get(n) ?? null);
    });
  }

  // maxBatchSize stays unbounded: the batch functions split into Exotel-sized requests themselves, and
  // one large batch lets the cache answer every hit with a single read.
  const loaders: Loaders = {
    call: new DataLoader(uncachedErrors(batchCalls, () => loaders.call)),
    sms: new DataLoader(uncachedErrors(batchSms, () => loaders.sms)),
    number: new DataLoader(uncachedErrors(batchNumbers, () => loaders.number)),
  };
  return loaders;
}
