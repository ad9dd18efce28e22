/**
 * OpenItems (src/storage/types.ts): named sets of ids scored by a time. In memory, a Map per set; on
 * Redis, one ZSET per set so every replica (and the one holding the reconciler lease) sees the same list.
 */
import type { Redis } from 'ioredis';
import type { OpenItems } from './types.js';

/** The memory OpenItems, with synchronous writes the memory event log's atomic step uses. */
export interface MemoryOpenItems extends OpenItems {
  putNow(set: string, id: string, atMs: number, options?: { onlyIfAbsent?: boolean }): void;
  removeNow(set: string, id: string): void;
}

/** The Redis key of a set: the Redis event log's atomic step writes the same ZSETs. */
export function redisOpenItemsKey(keyPrefix: string, set: string): string {
  return `${keyPrefix}open:${set}`;
}

/** One process only: a Map of id → time per set. Queries sort, which is fine for the sizes one process holds. */
export function createMemoryOpenItems(): MemoryOpenItems {
  const sets = new Map<string, Map<string, number>>();
  const setOf = (name: string) => {
    let set = sets.get(name);
    if (!set) sets.set(name, (set = new Map()));
    return set;
  };
  const select = (name: string, keep: (atMs: number) => boolean, limit: number) =>
    [...(sets.get(name) ?? new Map<string, number>()).entries()]
      .filter(([, at]) => keep(at))
      .sort((a, b) => a[1] - b[1])
      .slice(0, limit)
      .map(([id]) => id);
  const putNow = (set: string, id: string, atMs: number, options?: { onlyIfAbsent?: boolean }) => {
    const s = setOf(set);
    if (!options?.onlyIfAbsent || !s.has(id)) s.set(id, atMs);
  };
  const removeNow = (set: string, id: string) => {
    sets.get(set)?.delete(id);
  };
  return {
    putNow,
    removeNow,
    async put(set, id, atMs, options) {
      putNow(set, id, atMs, options);
    },
    async remove(set, id) {
      removeNow(set, id);
    },
    async dueBy(set, atMs, limit) {
      return select(set, (at) => at <= atMs, limit);
    },
    async laterThan(set, atMs, limit) {
      return select(set, (at) => at >= atMs, limit);
    },
    async pruneBefore(set, atMs) {
      const s = sets.get(set);
      if (s) for (const [id, at] of s) if (at < atMs) s.delete(id);
    },
    async close() {
      sets.clear();
    },
  };
}

/** Redis: one ZSET per set under `keyPrefix`. The connection belongs to the caller (not closed here). */
export function createRedisOpenItems(redis: Redis, keyPrefix: string): OpenItems {
  const key = (set: string) => redisOpenItemsKey(keyPrefix, set);
  return {
    async put(set, id, atMs, options) {
      if (options?.onlyIfAbsent) await redis.zadd(key(set), 'NX', atMs, id);
      else await redis.zadd(key(set), atMs, id);
    },
    async remove(set, id) {
      await redis.zrem(key(set), id);
    },
    async dueBy(set, atMs, limit) {
      return redis.zrangebyscore(key(set), '-inf', atMs, 'LIMIT', 0, limit);
    },
    async laterThan(set, atMs, limit) {
      return redis.zrangebyscore(key(set), atMs, '+inf', 'LIMIT', 0, limit);
    },
    async pruneBefore(set, atMs) {
      await redis.zremrangebyscore(key(set), '-inf', `(${atMs}`);
    },
    async close() {},
  };
}
