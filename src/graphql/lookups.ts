/**
 * The shared lookups behind every request's loaders: one per process and account, with the lookups of
 * each client key kept apart so that each key spends its own share of the Exotel budget
 * (docs/rate-budget.md). The per-request DataLoaders in front keep their own dedup and caching; what they
 * miss in the entity cache comes here, so concurrent requests of a key share upstream requests:
 * - cold call Sids join one open bulk batch (a DataLoader with `maxBatchSize` = EXOTEL_BULK_BATCH_SIZE and
 *   a budget-aware `batchScheduleFn`). With budget to spare the batch leaves once no Sid has joined it for
 *   `windowMs` (never later than `maxWaitMs` after it opened). When the window's budget runs short, it stays
 *   open to fill, and leaves once it is full or `holdOpenMs` old and the budget queue gives it a slot: the
 *   scarce requests then carry up to `bulkBatchSize` Sids each instead of one or two;
 * - a batch of one Sid is a single call lookup: one request whatever the call (Exotel's bulk listing omits
 *   live and unknown calls, which would cost a second request);
 * - a call, SMS or number already being fetched for the key is never asked for twice, and "no such call"
 *   answers are remembered (EntityCache), so a repeated wrong Sid costs nothing.
 * Results are per key and per waiter: an unknown key is null, a failed lookup is an Error in its own slot
 * (one failing bulk request fails only its Sids). Nothing failed is remembered: a key leaves the in-flight
 * table as soon as its lookup settles (after its cache write, so a request reading the cache meanwhile
 * still joins instead of asking again).
 */
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import DataLoader from 'dataloader';
import type { EntityCache } from '../cache/entities.js';
import { ErrorCode, GatewayError } from '../errors.js';
import type { BudgetTicket, Call, ExotelApi, NumberMetadata, SmsMessage } from '../exotel/types.js';
import type { Logger } from '../logger.js';

/**
 * A batch leaves after its short window only while at least this share of the window's budget would be
 * left after it; below that, requests are scarce enough that filling a batch is worth a wait.
 */
export const SPARE_BUDGET_SHARE = 0.5;

/** Options of {@link createLookups}; one per Exotel account and process. */
export interface LookupsOptions {
  exotel: ExotelApi;
  cache: EntityCache;
  /** For cache write failures, which never fail a lookup. */
  logger: Logger;
  /** Sids per bulk call-details request (EXOTEL_BULK_BATCH_SIZE, ≤ 100). */
  bulkBatchSize: number;
  /** With budget to spare, a batch leaves once no Sid has joined it for this long, ms (EXOTEL_COALESCE_MS; 0: the same event-loop turn). */
  windowMs: number;
  /** With budget to spare, the longest a batch stays open while Sids keep joining, ms (EXOTEL_COALESCE_MAX_MS). */
  maxWaitMs: number;
  /** Short of budget, the longest a batch stays open to fill before it queues for budget, ms (EXOTEL_BATCH_HOLD_MS). */
  holdOpenMs: number;
  /** How long a request may queue for budget, ms (EXOTEL_RATE_QUEUE_MS): a batch holds open at most half of it. */
  queueDeadlineMs: number;
}

/** One client key's lookups; each answers in the order asked, one slot per key. */
export interface ClientLookups {
  /** Calls by Sid: bulk requests shared by the key's requests, singles for Sids the bulk answer lacks. */
  calls(sids: readonly string[]): Promise<Array<Call | null | Error>>;
  /** SMS by Sid, one request per SMS (Exotel has no bulk SMS details), shared while in flight. */
  sms(sids: readonly string[]): Promise<Array<SmsMessage | null | Error>>;
  /** Number metadata by E.164 number, shared while in flight; null when Exotel does not know it. */
  numbers(numbers: readonly string[]): Promise<Array<NumberMetadata | null | Error>>;
}

/** The lookups of every client key of one account. */
export interface Lookups {
  /** The lookups that spend `client`'s share of the budget (made on first use, then kept). */
  forClient(client: string): ClientLookups;
}

/** The error a failed lookup leaves in its slot: always an Error, a GatewayError when it can be. */
export function asError(err: unknown): Error {
  if (err instanceof Error) return err;
  return new GatewayError(ErrorCode.INTERNAL_SERVER_ERROR, 'lookup failed', { cause: err });
}

/** Every key's outcome as its slot; rejections are always observed here, so none goes unhandled. */
async function slotsOf<T>(promises: Array<Promise<T>>): Promise<Array<T | Error>> {
  const outcomes = await Promise.allSettled(promises);
  return outcomes.map((o) => (o.status === 'fulfilled' ? o.value : asError(o.reason)));
}

/** The bulk batch currently taking Sids. */
interface OpenBatch {
  openedAt: number;
  lastJoinAt: number;
  size: number;
  full: Promise<void>;
  markFull(): void;
}

/** Builds the lookups; one per account and process (the context factory holds it). */
export function createLookups(options: LookupsOptions): Lookups {
  const clients = new Map<string, ClientLookups>();
  return {
    forClient(client) {
      let lookups = clients.get(client);
      if (!lookups) clients.set(client, (lookups = createClientLookups(options, client)));
      return lookups;
    },
  };
}

function createClientLookups(options: LookupsOptions, client: string): ClientLookups {
  const { exotel, cache, logger, bulkBatchSize, windowMs, maxWaitMs, holdOpenMs, queueDeadlineMs } = options;
  const cacheWrite = (write: Promise<unknown>) => write.catch((err: unknown) => logger.warn({ err }, 'cache write failed'));

  // Keys being looked up right now, whatever stage they are in (open batch, bulk request, single lookup).
  const callsInFlight = new Map<string, Promise<Call | null>>();
  const smsInFlight = new Map<string, Promise<SmsMessage | null>>();
  const numbersInFlight = new Map<string, Promise<NumberMetadata | null>>();

  let open: OpenBatch | undefined;
  // The budget a batch was given, handed to its batch function: DataLoader calls it synchronously from the
  // dispatch callback, so the hand-over cannot reach another batch.
  let handedOver: BudgetTicket | Error | undefined;

  /** With budget to spare: once no Sid has joined for `windowMs`, capped at `maxWaitMs` from the start, or full. */
  async function windowClosed(batch: OpenBatch): Promise<void> {
    if (windowMs === 0) return void (await nextTurn());
    for (;;) {
      const waitMs = Math.min(batch.lastJoinAt + windowMs, batch.openedAt + maxWaitMs) - Date.now();
      if (waitMs <= 0 || batch.size >= bulkBatchSize) return;
      await Promise.race([sleep(waitMs), batch.full]);
    }
  }

  /** When a batch may leave, with the budget for its request: the one wait for budget of the lookups. */
  async function budgetForBatch(batch: OpenBatch): Promise<BudgetTicket> {
    await windowClosed(batch);
    const spare = await exotel.trySpareBudget(client, SPARE_BUDGET_SHARE);
    if (spare) return spare;
    // Short of budget: stay open to fill (at most half the queue deadline), then queue — still open, still
    // filling — for up to the queue deadline, as any request would, until the budget lets it go.
    const holdMs = batch.openedAt + Math.min(holdOpenMs, queueDeadlineMs / 2) - Date.now();
    if (holdMs > 0 && batch.size < bulkBatchSize) await Promise.race([sleep(holdMs), batch.full]);
    return exotel.waitForBudget({ client });
  }

  const bulk = new DataLoader<string, Call | null>((sids) => sendBatch(sids), {
    // Shared by the key's requests: results are never kept here (the entity cache and the in-flight table do that).
    cache: false,
    // Exotel bulk call details: ≤ 100 Sids per request.
    maxBatchSize: bulkBatchSize,
    batchScheduleFn: (dispatch) => {
      let markFull!: () => void;
      const full = new Promise<void>((resolve) => (markFull = resolve));
      const batch: OpenBatch = { openedAt: Date.now(), lastJoinAt: Date.now(), size: 0, full, markFull };
      open = batch;
      budgetForBatch(batch).then(
        (ticket) => {
          handedOver = ticket;
          dispatch();
        },
        (err: unknown) => {
          handedOver = asError(err);
          dispatch();
        },
      );
    },
  });

  async function sendBatch(sids: readonly string[]): Promise<Array<Call | null | Error>> {
    const ticket = handedOver;
    handedOver = undefined;
    if (ticket instanceof Error || ticket === undefined) return sids.map(() => ticket ?? asError('no budget was handed to the batch'));
    if (sids.length === 1) {
      try {
        return [await exotel.getCall(sids[0]!, { details: true, client, ticket })];
      } catch (err) {
        return [asError(err)];
      }
    }
    let calls: Call[];
    try {
      calls = (await exotel.listCalls({ sids: [...sids], pageSize: sids.length, details: true }, { client, ticket })).calls;
    } catch (err) {
      const error = asError(err);
      return sids.map(() => error);
    }
    const bySid = new Map(calls.map((call) => [call.sid, call]));
    // Bulk results never include calls still going on (Exotel), and unknown Sids are absent too: only a
    // single lookup tells them apart. The Sid stays in flight meanwhile, so other askers join this one.
    return slotsOf(sids.map(async (sid) => bySid.get(sid) ?? exotel.getCall(sid, { details: true, client })));
  }

  /** Leaves the table only if the entry is still this lookup's (a newer one may have replaced it). */
  function release<T>(table: Map<string, Promise<T>>, key: string, promise: Promise<T>): void {
    if (table.get(key) === promise) table.delete(key);
  }

  function joinCall(sid: string): Promise<Call | null> {
    const existing = callsInFlight.get(sid);
    if (existing) return existing;
    const promise = bulk.load(sid);
    callsInFlight.set(sid, promise);
    // bulk.load has just put the Sid in the open batch (scheduling a new one when the last was full or gone).
    const batch = open!;
    batch.lastJoinAt = Date.now();
    if (++batch.size >= bulkBatchSize) batch.markFull();
    // Waiters are answered first; the entry stays until the cache holds the answer (see the module doc).
    // "No such call" is remembered for a minute, so a client repeating a wrong Sid spends no budget.
    promise.then(
      (call) => void cacheWrite(call ? cache.putCall(call) : cache.putUnknownCall(sid)).finally(() => release(callsInFlight, sid, promise)),
      () => release(callsInFlight, sid, promise),
    );
    return promise;
  }

  /** One lookup per key at a time: a key in flight is joined, not asked again. */
  function joinSingle<T>(table: Map<string, Promise<T>>, key: string, fetch: () => Promise<T>, store: (value: T) => Promise<unknown> | undefined): Promise<T> {
    const existing = table.get(key);
    if (existing) return existing;
    const promise = fetch();
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

  return {
    async calls(sids) {
      const unknown = await cache.areUnknownCalls(sids).catch(() => sids.map(() => false));
      return slotsOf(sids.map((sid, i) => (unknown[i] ? Promise.resolve(null) : joinCall(sid))));
    },
    async sms(sids) {
      return slotsOf(
        sids.map((sid) => joinSingle(smsInFlight, sid, () => exotel.getSms(sid, { client }), (sms) => (sms ? cache.putSms(sms) : undefined))),
      );
    },
    async numbers(numbers) {
      // null is cached too: "Exotel does not know this number" is an answer.
      return slotsOf(
        numbers.map((number) =>
          joinSingle(numbersInFlight, number, () => exotel.getNumberMetadata(number, { client }), (metadata) => cache.putNumber(number, metadata)),
        ),
      );
    },
  };
}
