/**
 * Storage for one process (the default without REDIS_URL): every interface of types.ts in memory,
 * bounded by TTLs, the event retention and the cache's LRU cap.
 */
import { randomBytes } from 'node:crypto';
import { Keyv } from 'keyv';
import type { IdempotencyRecord, IdempotencyStore, Lease, RateBudget, Storage } from './types.js';
import { checkTtl, resolveStorageOptions, STORAGE_DEFAULTS, type StorageOptions } from './options.js';
import { createKeyvCache, LruTtlStore } from './cache.js';
import { createMemoryEventLog } from './memory-event-log.js';
import { createExpiringMap } from './expiring-map.js';
import { createMemoryRateBudget } from './rate-budget.js';
import { createMemoryOpenItems } from './open-items.js';

export interface MemoryStorageOptions extends StorageOptions {
  /** Most cache entries kept before the least recently used is evicted. */
  cacheMaxEntries?: number;
}

/** Builds the in-memory Storage. */
export function createMemoryStorage(options: MemoryStorageOptions = {}): Storage {
  const resolved = resolveStorageOptions(options);
  const { clock } = resolved;
  const store = new LruTtlStore(options.cacheMaxEntries ?? STORAGE_DEFAULTS.memoryCacheMaxEntries, clock);
  const keyv = new Keyv({
    store,
    // The store keeps frozen objects (see LruTtlStore): nothing to parse on a hit.
    serialize: undefined,
    deserialize: undefined,
    // The store is this process's own: keys need no namespace, and the guarded set writes them as they are.
    useKeyPrefix: false,
    throwOnErrors: true,
  });
  const openItems = createMemoryOpenItems(clock);
  const events = createMemoryEventLog(resolved, openItems);
  const budgets = new Map<string, RateBudget>();
  let closed = false;

  return {
    kind: 'memory',
    cache: createKeyvCache(keyv, resolved.logger, { setUnlessNewer: async (key, value, ttlMs, guard) => store.setUnlessNewer(key, value, ttlMs, guard) }),
    events,
    idempotency: createMemoryIdempotency(clock),
    lease: createMemoryLease(clock),
    openItems,
    rateBudget(name, limit, windowMs) {
      // One budget per name and shape: callers may ask on every request and must share the same log.
      const key = `${name}\u0000${limit}\u0000${windowMs}`;
      let budget = budgets.get(key);
      if (!budget) {
        budget = createMemoryRateBudget({ limit, windowMs, clock: { now: clock } });
        budgets.set(key, budget);
      }
      return budget;
    },
    async ping() {
      return !closed;
    },
    async close() {
      if (closed) return;
      closed = true;
      await events.close();
      await openItems.close();
      await keyv.clear();
    },
  };
}

/** Idempotency records in a Map with expiry, stored as JSON text so a reader gets the shape Redis gives. */
export function createMemoryIdempotency(clock: () => number): IdempotencyStore {
  const records = createExpiringMap<string>(clock);
  return {
    async begin(key, fingerprint, ttlMs, ref) {
      checkTtl(ttlMs);
      const existing = records.get(key);
      if (existing !== undefined) return { created: false, record: JSON.parse(existing) as IdempotencyRecord };
      const pending: IdempotencyRecord = { state: 'pending', fingerprint, startedAt: clock(), ...(ref !== undefined ? { ref } : {}) };
      records.set(key, JSON.stringify(pending), { ttl: ttlMs });
      return { created: true };
    },
    async finish(key, record, ttlMs) {
      checkTtl(ttlMs);
      records.set(key, JSON.stringify(record), { ttl: ttlMs });
    },
    async abandon(key) {
      records.delete(key);
    },
  };
}

/** One process is the only holder there is: the lease is always granted, and expires like the Redis one. */
export function createMemoryLease(clock: () => number, holderId = randomBytes(8).toString('hex')): Lease {
  const leases = createExpiringMap<string>(clock);
  return {
    async acquire(name, ttlMs) {
      checkTtl(ttlMs);
      const holder = leases.get(name);
      if (holder !== undefined && holder !== holderId) return false;
      leases.set(name, holderId, { ttl: ttlMs });
      return true;
    },
    async release(name) {
      if (leases.get(name) === holderId) leases.delete(name);
    },
  };
}
