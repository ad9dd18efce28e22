/**
 * One process-wide coalescer of cold Exotel lookups (issue #8, figure 2), shared by every request's
 * loaders. The per-request DataLoaders keep their own dedup and caching; what they miss in the entity
 * cache comes here, so concurrent requests share upstream requests:
 * - call Sids from every request join one open batch, which goes out as bulk call-details requests of
 *   at most `bulkBatchSize` Sids once it is full or no Sid has joined it for `windowMs` (never later
 *   than `maxWaitMs` after it opened);
 * - a call, SMS or number already being fetched is never asked for twice: later askers wait for the
 *   same answer, so two requests for the same live call make one `getCall`.
 * Results are per key and per waiter, as in the loaders: an unknown key is null, a failed lookup is an
 * Error in its own slot (one failing bulk request fails only its Sids), and a waiter that gives up
 * (`signal`) stops waiting without cancelling what others wait for. Nothing failed is remembered: a key
 * leaves the in-flight table as soon as its lookup settles (after its cache write, so a request reading
 * the cache meanwhile still joins instead of asking again).
 */
import type { EntityCache } from '../cache/entities.js';
import { ErrorCode, GatewayError } from '../errors.js';
import type { Call, ExotelApi, NumberMetadata, SmsMessage } from '../exotel/types.js';
import type { Logger } from '../logger.js';

/** Options of {@link createLookupCoalescer}; one coalescer per Exotel account and process. */
export interface CoalescerOptions {
  exotel: ExotelApi;
  cache: EntityCache;
  /** For cache write failures, which never fail a lookup. */
  logger: Logger;
  /** Sids per bulk call-details request (EXOTEL_BULK_BATCH_SIZE, ≤ 100). */
  bulkBatchSize: number;
  /**
   * A call batch closes once no Sid has joined it for this long, ms (EXOTEL_COALESCE_MS). 0: only the
   * lookups of the same event-loop turn share a batch.
   */
  windowMs: number;
  /** The longest a call batch stays open however busy it is, ms (EXOTEL_COALESCE_MAX_MS). */
  maxWaitMs: number;
  /** Most single lookups (live calls, SMS, numbers) in flight at once, for the whole process. */
  singleConcurrency?: number;
}

/** Per-waiter options. */
export interface WaitOptions {
  /** Stops this waiter only (its promise rejects); the shared upstream request carries on for the others. */
  signal?: AbortSignal;
}

/** The shared lookups; each answers in the order asked, one slot per key. */
export interface LookupCoalescer {
  /** Calls by Sid: bulk requests shared across callers, singles for Sids the bulk answer lacks. */
  calls(sids: readonly string[], options?: WaitOptions): Promise<Array<Call | null | Error>>;
  /** SMS by Sid, one request per SMS (Exotel has no bulk SMS details), shared while in flight. */
  sms(sids: readonly string[], options?: WaitOptions): Promise<Array<SmsMessage | null | Error>>;
  /** Number metadata by E.164 number, shared while in flight; null when Exotel does not know it. */
  numbers(numbers: readonly string[], options?: WaitOptions): Promise<Array<NumberMetadata | null | Error>>;
}

/** Process-wide, so it is larger than one request's fair share used to be (8); the rate budget still rules. */
const DEFAULT_SINGLE_CONCURRENCY = 16;

/** The error a failed lookup leaves in its slot: always an Error, a GatewayError when it can be. */
export function asError(err: unknown): Error {
  if (err instanceof Error) return err;
  return new GatewayError(ErrorCode.INTERNAL_SERVER_ERROR, 'lookup failed', { cause: err });
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(err: Error): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Runs at most `limit` functions at once; a finishing one hands its place straight to the next in line. */
function createLimiter(limit: number) {
  let active = 0;
  const queue: Array<() => void> = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    if (active < limit) active++;
    else await new Promise<void>((resolve) => queue.push(resolve));
    try {
      return await fn();
    } finally {
      const next = queue.shift();
      if (next) next();
      else active--;
    }
  };
}

/**
 * Waits for every key's promise and turns each outcome into its slot; a signal ends only this wait.
 * Rejections are always observed here (allSettled), so a key whose only waiter left is no unhandled rejection.
 */
async function settleAll<T>(promises: Array<Promise<T>>, signal: AbortSignal | undefined): Promise<Array<T | Error>> {
  const all = Promise.allSettled(promises);
  const outcomes = signal
    ? await new Promise<Array<PromiseSettledResult<T>>>((resolve, reject) => {
        const onAbort = () => reject(asError(signal.reason));
        signal.addEventListener('abort', onAbort, { once: true });
        all.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
      })
    : await all;
  return outcomes.map((o) => (o.status === 'fulfilled' ? o.value : asError(o.reason)));
}

/** Builds the coalescer; one per account and process (the context factory holds it). */
export function createLookupCoalescer(options: CoalescerOptions): LookupCoalescer {
  const { exotel, cache, logger, bulkBatchSize, windowMs, maxWaitMs } = options;
  const single = createLimiter(options.singleConcurrency ?? DEFAULT_SINGLE_CONCURRENCY);
  const cacheWrite = (write: Promise<void>) => write.catch((err: unknown) => logger.warn({ err }, 'cache write failed'));

  // Keys being looked up right now, whatever stage they are in (open batch, bulk request, single lookup).
  const callsInFlight = new Map<string, Promise<Call | null>>();
  const smsInFlight = new Map<string, Promise<SmsMessage | null>>();
  const numbersInFlight = new Map<string, Promise<NumberMetadata | null>>();

  // The open call batch: insertion order is the order Sids joined, so full chunks go out oldest first.
  const open = new Map<string, Deferred<Call | null>>();
  let openedAt = 0;
  let lastJoinAt = 0;
  let timer: NodeJS.Timeout | NodeJS.Immediate | undefined;

  function cancelTimer(): void {
    if (timer === undefined) return;
    if (windowMs === 0) clearImmediate(timer as NodeJS.Immediate);
    else clearTimeout(timer as NodeJS.Timeout);
    timer = undefined;
  }

  /** Leaves the table only if the entry is still this lookup's (a newer one may have replaced it). */
  function release<T>(table: Map<string, Promise<T>>, key: string, promise: Promise<T>): void {
    if (table.get(key) === promise) table.delete(key);
  }

  function settleCall(sid: string, slot: Deferred<Call | null>, outcome: Call | null | Error): void {
    if (outcome instanceof Error) {
      slot.reject(outcome);
      release(callsInFlight, sid, slot.promise);
      return;
    }
    // Waiters are answered first; the entry stays until the cache holds the call (see the module doc).
    slot.resolve(outcome);
    // "No such call" is remembered for a minute, so a client repeating a wrong Sid spends no budget.
    if (outcome === null) void cacheWrite(cache.putUnknownCall(sid)).finally(() => release(callsInFlight, sid, slot.promise));
    else void cacheWrite(cache.putCall(outcome)).finally(() => release(callsInFlight, sid, slot.promise));
  }

  async function sendBulk(batch: Array<[string, Deferred<Call | null>]>): Promise<void> {
    const sids = batch.map(([sid]) => sid);
    let calls: Call[];
    try {
      calls = (await exotel.listCalls({ sids, pageSize: sids.length, details: true })).calls;
    } catch (err) {
      const error = asError(err);
      for (const [sid, slot] of batch) settleCall(sid, slot, error);
      return;
    }
    const bySid = new Map(calls.map((call) => [call.sid, call]));
    for (const [sid, slot] of batch) {
      const call = bySid.get(sid);
      if (call) {
        settleCall(sid, slot, call);
        continue;
      }
      // Bulk results never include calls still going on (Exotel), and unknown Sids are absent too:
      // only a single lookup tells them apart. The Sid stays in flight, so other askers join this one.
      single(() => exotel.getCall(sid, { details: true })).then(
        (found) => settleCall(sid, slot, found),
        (err: unknown) => settleCall(sid, slot, asError(err)),
      );
    }
  }

  function sendChunks(entries: Array<[string, Deferred<Call | null>]>): void {
    for (let i = 0; i < entries.length; i += bulkBatchSize) void sendBulk(entries.slice(i, i + bulkBatchSize));
  }

  function flush(): void {
    cancelTimer();
    const entries = [...open];
    open.clear();
    sendChunks(entries);
  }

  /** Fires when the window may be over: closes the batch, or waits on while Sids keep joining (capped). */
  function onTimer(): void {
    timer = undefined;
    const now = Date.now();
    const wait = Math.min(lastJoinAt + windowMs, openedAt + maxWaitMs) - now;
    if (wait > 0) {
      timer = setTimeout(onTimer, wait);
      timer.unref();
    } else flush();
  }

  function afterJoin(): void {
    // A full batch cannot gain anything by waiting.
    if (open.size >= bulkBatchSize) {
      const entries = [...open];
      const full = entries.length - (entries.length % bulkBatchSize);
      for (const [sid] of entries.slice(0, full)) open.delete(sid);
      sendChunks(entries.slice(0, full));
    }
    if (open.size === 0) {
      cancelTimer();
      return;
    }
    lastJoinAt = Date.now();
    if (timer !== undefined) return;
    openedAt = lastJoinAt;
    if (windowMs === 0) timer = setImmediate(flush);
    else {
      timer = setTimeout(onTimer, windowMs);
      timer.unref();
    }
  }

  function joinCall(sid: string): Promise<Call | null> {
    const existing = callsInFlight.get(sid);
    if (existing) return existing;
    const slot = deferred<Call | null>();
    callsInFlight.set(sid, slot.promise);
    open.set(sid, slot);
    return slot.promise;
  }

  /** One lookup per key at a time: a key in flight is joined, not asked again. */
  function joinSingle<T>(table: Map<string, Promise<T>>, key: string, fetch: () => Promise<T>, store: (value: T) => Promise<void> | undefined): Promise<T> {
    const existing = table.get(key);
    if (existing) return existing;
    const promise = single(fetch);
    table.set(key, promise);
    promise.then(
      async (value) => {
        const write = store(value);
        if (write) await cacheWrite(write);
        release(table, key, promise);
      },
      () => release(table, key, promise),
    );
    return promise;
  }

  function aborted(signal: AbortSignal | undefined): Error | undefined {
    return signal?.aborted ? asError(signal.reason) : undefined;
  }

  return {
    async calls(sids, waitOptions = {}) {
      const gaveUp = aborted(waitOptions.signal);
      if (gaveUp) throw gaveUp;
      const unknown = await cache.areUnknownCalls(sids).catch(() => sids.map(() => false));
      const promises = sids.map((sid, i) => (unknown[i] ? Promise.resolve(null) : joinCall(sid)));
      afterJoin();
      return settleAll(promises, waitOptions.signal);
    },
    async sms(sids, waitOptions = {}) {
      const gaveUp = aborted(waitOptions.signal);
      if (gaveUp) throw gaveUp;
      const promises = sids.map((sid) =>
        joinSingle(smsInFlight, sid, () => exotel.getSms(sid), (sms) => (sms ? cache.putSms(sms) : undefined)),
      );
      return settleAll(promises, waitOptions.signal);
    },
    async numbers(numbers, waitOptions = {}) {
      const gaveUp = aborted(waitOptions.signal);
      if (gaveUp) throw gaveUp;
      // null is cached too: "Exotel does not know this number" is an answer.
      const promises = numbers.map((number) =>
        joinSingle(numbersInFlight, number, () => exotel.getNumberMetadata(number), (metadata) => cache.putNumber(number, metadata)),
      );
      return settleAll(promises, waitOptions.signal);
    },
  };
}
