/**
 * The Cache interface over keyv 5, for both backends. keyv reports store failures as 'error' events and
 * by default swallows them; here they are always listened to and logged, and the cache stays
 * best-effort: a failed get is a miss, a failed set or delete is logged and otherwise ignored, so a
 * Redis outage slows requests down (everything goes upstream) instead of failing them.
 */
import type { Keyv } from 'keyv';
import { LRUCache } from 'lru-cache';
import type { Cache, CacheGuard } from './types.js';
import { checkTtl, type StorageLogger } from './options.js';
import { withTimeout } from './with-timeout.js';
import { createOutageLog } from '../outage-log.js';

export interface KeyvCacheOptions {
  /** An operation the store has not answered by then is given up like a failed one (a read is a miss), ms. */
  opTimeoutMs?: number;
  /** True once the store's owner began closing it: what fails then fails because of the close. */
  closing?: () => boolean;
  /** The backend's own atomic step for Cache.setUnlessNewer. */
  setUnlessNewer: GuardedSet;
}

/**
 * A backend's Cache.setUnlessNewer on the keyv store underneath, as one atomic step: the entry it writes is
 * what keyv.set would write for `key`, so keyv reads it back as its own. True when stored.
 */
export type GuardedSet = (key: string, value: unknown, ttlMs: number, guard: CacheGuard) => Promise<boolean>;

/** True when a keyv entry (`{ value, expires }`) holds an object that `guard` calls newer. */
export function isNewerEntry(entry: unknown, guard: CacheGuard): boolean {
  const value = (entry as { value?: unknown } | null | undefined)?.value;
  if (value === null || typeof value !== 'object') return false;
  const field = (value as Record<string, unknown>)[guard.field];
  return typeof field === 'string' && guard.newer.includes(field);
}

/**
 * Wraps a keyv instance (created with throwOnErrors so failures reach us) as a Cache with per-key counters.
 * With `opTimeoutMs`, an operation the store has not answered by then is given up like a failed one (a
 * read is a miss): a stalled Redis must not hang requests, and node-redis bounds only commands not yet sent.
 * `setUnlessNewer` is the backend's own atomic step (GuardedSet).
 */
export function createKeyvCache(keyv: Keyv, logger: StorageLogger, options: KeyvCacheOptions): Cache {
  const { opTimeoutMs, closing } = options;
  const bounded = <T>(op: Promise<T>): Promise<T> => (opTimeoutMs === undefined ? op : withTimeout(op, opTimeoutMs, 'cache'));
  // keyv reports every failed operation: during an outage that is every cache read and write. Warn once,
  // then debug until the cache answers again, which is logged once at info with the outage's count: a stalled
  // Redis (up, not answering) drops no connection, so the connection log says nothing of its end.
  const outage = createOutageLog(logger, { level: 'warn', until: 'the cache answers again', recoveredMessage: 'cache backend answers again' });
  const storeFailed = (err: unknown) => {
    // Closing drops a cache connection that does not answer (closeNodeRedis), failing the commands still
    // waiting on it: the gateway's own doing, not an outage.
    if (closing?.()) logger.debug({ err }, 'cache backend error after storage began closing (its own close fails what still waits)');
    else outage.failed({ err }, 'cache backend error');
  };
  keyv.on('error', storeFailed);
  const answered = outage.recovered;
  const stats = { hits: 0, misses: 0 };
  const count = (value: unknown) => {
    if (value === undefined) stats.misses += 1;
    else stats.hits += 1;
  };
  return {
    stats,
    async get<T>(key: string): Promise<T | undefined> {
      try {
        const value = (await bounded(keyv.get<T>(key))) ?? undefined;
        answered();
        count(value);
        return value;
      } catch (err) {
        stats.misses += 1;
        logger.debug({ err, op: 'get' }, 'cache get failed; counted as a miss');
        return undefined;
      }
    },
    async getMany<T>(keys: string[]): Promise<Array<T | undefined>> {
      if (keys.length === 0) return [];
      try {
        const values = (await bounded(keyv.getMany<T>(keys))) as Array<T | undefined | null>;
        answered();
        // keyv counts one hit per batch; the gateway wants one per key.
        return keys.map((_, i) => {
          const value = values[i] ?? undefined;
          count(value);
          return value;
        });
      } catch (err) {
        stats.misses += keys.length;
        logger.debug({ err, op: 'getMany' }, 'cache getMany failed; counted as misses');
        return keys.map(() => undefined);
      }
    },
    async set<T>(key: string, value: T, ttlMs: number): Promise<void> {
      checkTtl(ttlMs);
      if (value === undefined) throw new TypeError(`cache value for "${key}" is undefined; use delete()`);
      try {
        // Redis PX takes whole milliseconds.
        await bounded(keyv.set(key, value, Math.ceil(ttlMs)));
        answered();
      } catch (err) {
        logger.debug({ err, op: 'set' }, 'cache set failed; value not cached');
      }
    },
    async setUnlessNewer<T>(key: string, value: T, ttlMs: number, guard: CacheGuard): Promise<boolean> {
      checkTtl(ttlMs);
      if (value === undefined) throw new TypeError(`cache value for "${key}" is undefined; use delete()`);
      try {
        // Reported as keyv reports its own store's failures (this step goes to the store itself).
        const step = options.setUnlessNewer(key, value, Math.ceil(ttlMs), guard).catch((err: unknown) => {
          storeFailed(err);
          throw err;
        });
        const stored = await bounded(step);
        answered();
        return stored;
      } catch (err) {
        logger.debug({ err, op: 'setUnlessNewer' }, 'cache set failed; value not cached');
        return false;
      }
    },
    async delete(key: string): Promise<void> {
      try {
        await bounded(keyv.delete(key));
        answered();
      } catch (err) {
        // A stale entry outlives a failed delete only until its TTL.
        logger.debug({ err, op: 'delete' }, 'cache delete failed');
      }
    },
  };
}

/** Freezes a structured clone all the way down: what the cache hands out can be shared, never changed. */
function frozenCopy<T>(value: T): T {
  const copy = structuredClone(value);
  const freeze = (v: unknown): void => {
    if (v === null || typeof v !== 'object' || Object.isFrozen(v)) return;
    Object.freeze(v);
    for (const child of Object.values(v)) freeze(child);
  };
  freeze(copy);
  return copy;
}

/**
 * A keyv store for one process: lru-cache capped at `maxEntries` (least recently used evicted first) so the
 * cache cannot grow without bound, with expiry on the injected clock.
 *
 * Keyv runs it without serialisation (memory.ts): a warm lookup would otherwise JSON.parse the whole value
 * every time. Values are stored as a frozen copy instead, so every reader shares one object and none can
 * change it for the others.
 */
export class LruTtlStore {
  /** keyv sets these on its store. */
  namespace: string | undefined;
  readonly opts = {};
  private readonly entries: LRUCache<string, {}>;

  constructor(maxEntries: number, clock: () => number) {
    if (!(Number.isSafeInteger(maxEntries) && maxEntries > 0)) throw new RangeError(`maxEntries must be a positive integer, got ${maxEntries}`);
    // ttlResolution 0: the clock is read on every check (tests move it by hand).
    this.entries = new LRUCache<string, {}>({ max: maxEntries, ttlResolution: 0, perf: { now: clock } });
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: string): unknown {
    return this.entries.get(key);
  }

  set(key: string, value: unknown, ttlMs?: number): boolean {
    this.entries.set(key, frozenCopy(value) as {}, ttlMs ? { ttl: ttlMs } : {});
    return true;
  }

  /**
   * GuardedSet for a Keyv over this store without key prefix or serialisation: the entry keyv would write,
   * unless the one held is newer. Synchronous, so no other write comes between the look and the write.
   */
  setUnlessNewer(key: string, value: unknown, ttlMs: number, guard: CacheGuard): boolean {
    const held = this.entries.get(key) as { expires?: unknown } | undefined;
    // keyv's own expiry, on its own clock (an entry past it reads as absent).
    const live = held !== undefined && !(typeof held.expires === 'number' && Date.now() > held.expires);
    if (live && isNewerEntry(held, guard)) return false;
    return this.set(key, { value, expires: Date.now() + ttlMs }, ttlMs);
  }

  delete(key: string): boolean {
    return this.entries.delete(key);
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  clear(): void {
    this.entries.clear();
  }
}
