/**
 * OpenItems (src/storage/types.ts): named sets of ids scored by a time, each id with the time it was added.
 * In memory, a Map per set; on Redis, one ZSET per set (the score) and one hash per set (the added times),
 * so every replica (and the one holding the reconciler lease) sees the same list.
 */
import type { Redis } from 'ioredis';
import type { OpenItemPutOptions, OpenItems } from './types.js';

/** The memory OpenItems, with synchronous writes the memory event log's atomic step uses. */
export interface MemoryOpenItems extends OpenItems {
  putNow(set: string, id: string, atMs: number, options?: OpenItemPutOptions): void;
  removeNow(set: string, id: string): void;
}

/** The Redis key of a set: the Redis event log's atomic step writes the same ZSETs. */
export function redisOpenItemsKey(keyPrefix: string, set: string): string {
  return `${keyPrefix}open:${set}`;
}

/** The Redis key of a set's added times (id → epoch ms): the atomic step keeps it with the set. */
export function redisOpenAddedKey(keyPrefix: string, set: string): string {
  return `${keyPrefix}open-added:${set}`;
}

/** One process only: a Map of id → times per set. Queries sort, which is fine for the sizes one process holds. */
export function createMemoryOpenItems(clock: () => number = Date.now): MemoryOpenItems {
  const sets = new Map<string, Map<string, { at: number; added: number }>>();
  const setOf = (name: string) => {
    let set = sets.get(name);
    if (!set) sets.set(name, (set = new Map()));
    return set;
  };
  const select = (name: string, keep: (atMs: number) => boolean, limit: number) =>
    [...(sets.get(name) ?? new Map<string, { at: number }>()).entries()]
      .filter(([, item]) => keep(item.at))
      .sort((a, b) => a[1].at - b[1].at)
      .slice(0, limit)
      .map(([id]) => id);
  const putNow = (set: string, id: string, atMs: number, options?: OpenItemPutOptions) => {
    const s = setOf(set);
    const item = s.get(id);
    if (!item) {
      if (!options?.onlyIfPresent) s.set(id, { at: atMs, added: clock() });
    } else if (!options?.onlyIfAbsent) item.at = atMs;
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
    async addedAt(set, id) {
      return sets.get(set)?.get(id)?.added;
    },
    async pruneBefore(set, atMs) {
      const s = sets.get(set);
      if (s) for (const [id, item] of s) if (item.at < atMs) s.delete(id);
    },
    async close() {
      sets.clear();
    },
  };
}

/*
 * Every script: KEYS[1] the set's ZSET, KEYS[2] its added-times hash. The ZSET and the hash change together,
 * and an id's added time is written whenever the id enters the ZSET (ZADD counts it as added), so a time
 * left behind by an earlier removal never passes for a new entry's.
 */

/* ARGV = score, id, now, "NX" (only if absent), "XX" (only if present) or "". */
const PUT = `
local added
if ARGV[4] == '' then
  added = redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
else
  added = redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1], ARGV[2])
end
if added == 1 then redis.call('HSET', KEYS[2], ARGV[2], ARGV[3]) end
`;

/* ARGV = id. */
const REMOVE = `
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
`;

/* ARGV = id, now. The added time, nil when the id is not in the set; an id without one (written by an
 * earlier version of the gateway) is taken as added now. */
const ADDED_AT = `
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return false end
local added = redis.call('HGET', KEYS[2], ARGV[1])
if added then return added end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return ARGV[2]
`;

/* ARGV = the time before which every id goes. In slices, as Lua's unpack has a bounded stack. */
const PRUNE = `
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
for i = 1, #ids, 1000 do
  local slice = {unpack(ids, i, math.min(i + 999, #ids))}
  redis.call('ZREM', KEYS[1], unpack(slice))
  redis.call('HDEL', KEYS[2], unpack(slice))
end
return #ids
`;

interface RedisWithOpenItems extends Redis {
  eggOpenPut(set: string, added: string, score: number, id: string, now: number, only: '' | 'NX' | 'XX'): Promise<null>;
  eggOpenRemove(set: string, added: string, id: string): Promise<null>;
  eggOpenAddedAt(set: string, added: string, id: string, now: number): Promise<string | null>;
  eggOpenPrune(set: string, added: string, before: number): Promise<number>;
}

/**
 * Redis: one ZSET and one hash per set under `keyPrefix`; `clock` gives the added times. The connection
 * belongs to the caller (not closed here).
 */
export function createRedisOpenItems(redis: Redis, keyPrefix: string, clock: () => number = Date.now): OpenItems {
  // defineCommand sends EVALSHA (EVAL once when Redis has not seen the script).
  const scripts = { eggOpenPut: PUT, eggOpenRemove: REMOVE, eggOpenAddedAt: ADDED_AT, eggOpenPrune: PRUNE };
  for (const [name, lua] of Object.entries(scripts)) {
    if (!(redis as unknown as Record<string, unknown>)[name]) redis.defineCommand(name, { numberOfKeys: 2, lua });
  }
  const r = redis as RedisWithOpenItems;
  const key = (set: string) => redisOpenItemsKey(keyPrefix, set);
  const addedKey = (set: string) => redisOpenAddedKey(keyPrefix, set);
  const now = () => Math.round(clock());
  return {
    async put(set, id, atMs, options) {
      await r.eggOpenPut(key(set), addedKey(set), atMs, id, now(), options?.onlyIfAbsent ? 'NX' : options?.onlyIfPresent ? 'XX' : '');
    },
    async remove(set, id) {
      await r.eggOpenRemove(key(set), addedKey(set), id);
    },
    async dueBy(set, atMs, limit) {
      return redis.zrangebyscore(key(set), '-inf', atMs, 'LIMIT', 0, limit);
    },
    async laterThan(set, atMs, limit) {
      return redis.zrangebyscore(key(set), atMs, '+inf', 'LIMIT', 0, limit);
    },
    async addedAt(set, id) {
      const added = await r.eggOpenAddedAt(key(set), addedKey(set), id, now());
      return added === null ? undefined : Number(added);
    },
    async pruneBefore(set, atMs) {
      await r.eggOpenPrune(key(set), addedKey(set), atMs);
    },
    async close() {},
  };
}
