/**
 * Take-backs of idempotency begins that this replica still owes (redis.ts). A begin whose answer never came
 * may still have written its pending record, and the caller has told the client the key is free; the
 * compare-and-delete sent right after it usually lands, but not when the connection was lost or Redis
 * cannot be reached. Left alone, the record would read as "in progress", then as an unknown outcome, for
 * the key's whole lifetime although nothing was sent. So the take-back is retried in the background, with
 * capped backoff, until Redis answers it or the record would have expired by itself.
 *
 * Retrying is always safe: the take-back removes only the exact record its own begin would have written,
 * and that attempt never sends anything to Exotel (its request was refused). A record another request
 * wrote, or finished after sending, differs from it and stays.
 *
 * A take-back not kept (too many owed) or still owed at close is lost: its key reads as in progress until it
 * expires. Each is counted (onLost); during a long outage the refusals are logged as one outage
 * (outage-log.ts): the first at warn, each further one at info with its key, and their count at warn once a
 * take-back is answered again or at close.
 */
import { createOutageLog } from '../outage-log.js';
import type { StorageLogger } from './options.js';

export const TAKE_BACK_DEFAULTS = {
  /** Delay before the first retry, ms; doubled after each failure. */
  firstDelayMs: 100,
  /** Longest delay between retries, ms: a client told to retry in 5 s (STORAGE_RETRY_AFTER_SECONDS) finds the key free soon after Redis is back. */
  maxDelayMs: 5_000,
  /** Take-backs owed at most; past this one is not kept (its key then frees itself when it expires). */
  maxOwed: 1_000,
} as const;

export type TakeBackTimings = { -readonly [K in keyof typeof TAKE_BACK_DEFAULTS]: number };

/** The compare-and-delete: resolves with whether it removed the record. */
export type TakeBack = (key: string, record: string) => Promise<boolean>;

/** Why a take-back was lost: too many were owed, or storage closed before Redis answered it. */
export type TakeBackLoss = 'overflow' | 'shutdown';

export interface TakeBacks {
  /** Retries `takeBack(key, record)` in the background until Redis answers it, or until `expiresAtMs` (epoch ms). */
  owe(key: string, record: string, expiresAtMs: number): void;
  /** How many are owed now. */
  size(): number;
  /** Stops the retries: each one still owed is tried once more (in parallel), then dropped. Part of storage close. */
  close(): Promise<void>;
}

interface Owed {
  key: string;
  record: string;
  expiresAtMs: number;
  delayMs: number;
  timer?: NodeJS.Timeout;
  attempt?: Promise<boolean>;
}

export function createTakeBacks(
  takeBack: TakeBack,
  options: {
    clock: () => number;
    logger: StorageLogger;
    timings?: Partial<TakeBackTimings>;
    /** Take-backs lost (metrics): one not kept, or `count` still owed at close. */
    onLost?: (reason: TakeBackLoss, count: number) => void;
  },
): TakeBacks {
  const { clock, logger, onLost } = options;
  const t = { ...TAKE_BACK_DEFAULTS, ...options.timings };
  const refused = createOutageLog(logger, {
    level: 'warn',
    repeatLevel: 'info',
    until: 'a take-back is answered again, then counted in one warn line',
    recoveredLevel: 'warn',
    recoveredMessage: 'idempotency take-backs not kept while Redis could not be reached: their keys read as in progress until they expire; each is logged with its key',
  });
  // By record: each begin's record is unique (its random owner), so one begin is owed at most once.
  const owed = new Map<string, Owed>();
  let closed = false;

  /** One try; true once Redis has answered it (removed or not), and the take-back is no longer owed. */
  const attempt = (o: Owed): Promise<boolean> =>
    (o.attempt ??= takeBack(o.key, o.record).then(
      (removed) => {
        owed.delete(o.record);
        refused.recovered();
        logger.info({ key: o.key, removed }, 'idempotency take-back done');
        return true;
      },
      () => false,
    ).finally(() => (o.attempt = undefined)));

  const schedule = (o: Owed) => {
    if (closed) return;
    if (clock() + o.delayMs >= o.expiresAtMs) {
      // Whatever it would have removed is gone by then anyway.
      owed.delete(o.record);
      logger.info({ key: o.key }, 'idempotency take-back dropped: the record it owed expires by itself');
      return;
    }
    o.timer = setTimeout(() => {
      o.timer = undefined;
      void attempt(o).then((answered) => {
        if (answered) return;
        o.delayMs = Math.min(o.delayMs * 2, t.maxDelayMs);
        schedule(o);
      });
    }, o.delayMs);
    // Owed take-backs never keep a process alive; close() is what ends them.
    o.timer.unref();
  };

  return {
    owe(key, record, expiresAtMs) {
      if (owed.has(record)) return;
      if (closed) {
        onLost?.('shutdown', 1);
        refused.failed({ key }, 'idempotency take-back not kept: storage is closing; the key reads as in progress until it expires');
        return;
      }
      if (owed.size >= t.maxOwed) {
        onLost?.('overflow', 1);
        refused.failed({ key, owed: owed.size }, 'idempotency take-back not kept: too many owed; the key reads as in progress until it expires');
        return;
      }
      const o: Owed = { key, record, expiresAtMs, delayMs: t.firstDelayMs };
      owed.set(record, o);
      schedule(o);
    },
    size: () => owed.size,
    async close() {
      closed = true;
      const last = [...owed.values()];
      for (const o of last) clearTimeout(o.timer);
      await Promise.all(last.map((o) => attempt(o)));
      refused.recovered();
      if (owed.size > 0) {
        onLost?.('shutdown', owed.size);
        logger.warn({ owed: owed.size }, 'idempotency take-backs still owed at shutdown; their keys read as in progress until they expire');
        owed.clear();
      }
    },
  };
}
