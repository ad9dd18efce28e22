/** Options shared by every storage backend, with their defaults declared once. */
import type { Logger } from 'pino';

/** The few logger methods storage uses; a pino logger fits. */
export type StorageLogger = Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;

export interface StorageOptions {
  /** How long the event log keeps events for replay, ms. */
  eventRetentionMs?: number;
  /** Most events the event log keeps, whatever their age (Redis trims approximately, never below this). */
  eventRetentionCount?: number;
  /** Epoch-ms clock; tests inject one to move time without sleeping. */
  clock?: () => number;
  logger?: StorageLogger;
}

/** StorageOptions with every default filled in. */
export interface ResolvedStorageOptions {
  eventRetentionMs: number;
  eventRetentionCount: number;
  clock: () => number;
  logger: StorageLogger;
}

export const STORAGE_DEFAULTS = {
  // EVENT_RETENTION_HOURS defaults to 24 (the README's configuration table).
  eventRetentionMs: 24 * 60 * 60 * 1000,
  eventRetentionCount: 100_000,
  /** Most entries the in-memory cache holds before evicting the least recently used. */
  memoryCacheMaxEntries: 100_000,
  /** Page size of EventLog.readAfter when the caller gives none. */
  readLimit: 1000,
} as const;

const noop = () => {};
/** Used when no logger is given: storage never writes to stdout on its own. */
export const silentLogger: StorageLogger = { debug: noop, info: noop, warn: noop, error: noop };

/** Fills in defaults and rejects nonsense (a zero or negative retention would silently drop every event). */
export function resolveStorageOptions(options: StorageOptions = {}): ResolvedStorageOptions {
  const eventRetentionMs = options.eventRetentionMs ?? STORAGE_DEFAULTS.eventRetentionMs;
  const eventRetentionCount = options.eventRetentionCount ?? STORAGE_DEFAULTS.eventRetentionCount;
  if (!(Number.isFinite(eventRetentionMs) && eventRetentionMs > 0)) {
    throw new RangeError(`eventRetentionMs must be a positive number of ms, got ${String(eventRetentionMs)}`);
  }
  if (!(Number.isSafeInteger(eventRetentionCount) && eventRetentionCount > 0)) {
    throw new RangeError(`eventRetentionCount must be a positive integer, got ${String(eventRetentionCount)}`);
  }
  return {
    eventRetentionMs,
    eventRetentionCount,
    clock: options.clock ?? Date.now,
    logger: options.logger ?? silentLogger,
  };
}

/** Throws a RangeError naming the value unless `ttlMs` is a positive finite number of ms. */
export function checkTtl(ttlMs: number, what = 'ttlMs'): void {
  if (!(Number.isFinite(ttlMs) && ttlMs > 0)) throw new RangeError(`${what} must be a positive number of ms, got ${String(ttlMs)}`);
}

/** Throws a RangeError naming the value unless `rank` is a non-negative integer (call-state ranks). */
export function checkRank(rank: number): void {
  if (!(Number.isSafeInteger(rank) && rank >= 0)) throw new RangeError(`rank must be a non-negative integer, got ${String(rank)}`);
}

/** The page size readAfter uses: the default, or the caller's limit if it is a positive integer. */
export function checkLimit(limit: number | undefined): number {
  if (limit === undefined) return STORAGE_DEFAULTS.readLimit;
  if (!(Number.isSafeInteger(limit) && limit > 0)) throw new RangeError(`limit must be a positive integer, got ${String(limit)}`);
  return limit;
}
