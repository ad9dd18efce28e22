/**
 * Keys that expire on the storage's clock, for the in-memory backend (dedup claims, call states,
 * idempotency records, leases): lru-cache with a TTL per entry. Expired entries are dropped when read and
 * by lru-cache's own timers, so the map is bounded by its TTLs, as the Redis keys it stands in for are.
 */
import { LRUCache } from 'lru-cache';

export type ExpiringMap<V extends {}> = LRUCache<string, V>;

export function createExpiringMap<V extends {}>(clock: () => number): ExpiringMap<V> {
  // Every set() names its own ttl; this default is never used. ttlResolution 0: the clock is read on every check.
  return new LRUCache<string, V>({ ttl: 60_000, ttlAutopurge: true, ttlResolution: 0, perf: { now: clock } });
}
