/**
 * Storage shared by every replica (REDIS_URL). Three connections per process: commands (ioredis), the
 * event log's blocking reader (ioredis), and the cache (node-redis, which @keyv/redis requires). All fail
 * fast while Redis is down and reconnect by themselves (see redis-connection.ts).
 *
 * Keys, under `keyPrefix` (default "egg:"):
 *   events                 stream of every event (field "e" = JSON)
 *   events:floor           the first event kept after the stream last went over its count cap (stream-trim.ts)
 *   call:<account>:<sid>   list of "<id> <json>" per call, expiring with the event retention
 *   cache:<key>            keyv entries
 *   status:<kind>:<account>:<sid>   hash of a call's/SMS's forward-only state (status-step.ts)
 *   ref:<account>:<ref>    the Sid a request created, by its reference
 *   idem:<key>  lease:<name>  budget:<name>
 *   open:<set>  open-added:<set>   open items by due time, and when each entered its set (open-items.ts)
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import KeyvRedis from '@keyv/redis';
import { Keyv } from 'keyv';
import type { IdempotencyRecord, IdempotencyStore, Lease, RateBudget, Storage } from './types.js';
import { checkTtl, resolveStorageOptions, type StorageLogger, type StorageOptions } from './options.js';
import { createKeyvCache, type GuardedSet } from './cache.js';
import { createRedisEventLog, EVENT_LOG_DEFAULTS } from './redis-event-log.js';
import { createFallbackRateBudget, createMemoryRateBudget, createRedisRateBudget } from './rate-budget.js';
import { createRedisOpenItems } from './open-items.js';
import { createTakeBacks, type TakeBackLoss, type TakeBacks, type TakeBackTimings } from './take-backs.js';
import {
  closeIoRedis,
  closeNodeRedis,
  connectIoRedis,
  connectNodeRedis,
  createConnectionLog,
  createIoRedis,
  createNodeRedis,
  REDIS_DEFAULTS,
  withTimeout,
} from './redis-connection.js';

export interface RedisStorageOptions extends StorageOptions {
  /** redis:// or rediss:// URL; its password never reaches a log line. */
  redisUrl: string;
  /** Prefix of every key, so several deployments (or test runs) can share one Redis. */
  keyPrefix?: string;
  /** Every command but the event log's blocking read fails after this, ms (REDIS_COMMAND_TIMEOUT_MS). */
  commandTimeoutMs?: number;
  /** A cache command slower than this is given up, a read then being a miss, ms (REDIS_CACHE_TIMEOUT_MS). */
  cacheTimeoutMs?: number;
  /**
   * Replicas expected to share the account budget. While Redis is down each replica falls back to a
   * memory budget of limit / expectedReplicas, so the fleet stays under the account limit.
   */
  expectedReplicas?: number;
  /** How owed idempotency take-backs are retried and how many are kept (take-backs.ts); TAKE_BACK_DEFAULTS otherwise. */
  takeBackTimings?: Partial<TakeBackTimings>;
  /** Take-backs lost: one not kept (too many owed), or `count` still owed at close (metrics). */
  onTakeBackLost?: (reason: TakeBackLoss, count: number) => void;
}

/* Creates the record or returns the existing one, atomically. KEYS[1]; ARGV = json, ttl ms. nil = created. */
const BEGIN = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
return redis.call('GET', KEYS[1])
`;

/* Takes back a begin that timed out. KEYS[1]; ARGV[1] = the exact pending record that begin would have written. */
const UNBEGIN = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/* Acquire or renew. KEYS[1] = lease; ARGV = holder, ttl ms. Returns 1 when held by `holder` afterwards. */
const ACQUIRE = `
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`;

/* Release only our own lease. KEYS[1]; ARGV[1] = holder. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

interface RedisWithScripts extends Redis {
  eggBegin(key: string, json: string, ttlMs: number): Promise<string | null>;
  eggUnbegin(key: string, json: string): Promise<number>;
  eggAcquire(key: string, holder: string, ttlMs: number): Promise<number>;
  eggRelease(key: string, holder: string): Promise<number>;
}

function withScripts(redis: Redis): RedisWithScripts {
  // defineCommand sends EVALSHA and falls back to EVAL once, so script text rarely crosses the wire.
  redis.defineCommand('eggBegin', { numberOfKeys: 1, lua: BEGIN });
  redis.defineCommand('eggUnbegin', { numberOfKeys: 1, lua: UNBEGIN });
  redis.defineCommand('eggAcquire', { numberOfKeys: 1, lua: ACQUIRE });
  redis.defineCommand('eggRelease', { numberOfKeys: 1, lua: RELEASE });
  return redis as RedisWithScripts;
}

/** Redis PX takes whole milliseconds. */
const px = (ttlMs: number) => Math.max(1, Math.ceil(ttlMs));

/*
 * Cache.setUnlessNewer on a keyv entry. KEYS[1] = the entry; ARGV = keyv's serialised entry ({"value",
 * "expires"}), ttl ms, the guarded field of the value, then the values that make the held entry newer.
 * Returns 1 when stored, 0 when the held entry is newer.
 */
const SET_UNLESS_NEWER = `
local held = redis.call('GET', KEYS[1])
if held then
  local ok, entry = pcall(cjson.decode, held)
  if ok and type(entry) == 'table' and type(entry.value) == 'table' then
    local field = entry.value[ARGV[3]]
    if type(field) == 'string' then
      for i = 4, #ARGV do
        if ARGV[i] == field then return 0 end
      end
    end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`;
const SET_UNLESS_NEWER_SHA = createHash('sha1').update(SET_UNLESS_NEWER).digest('hex');

/**
 * Builds the Redis Storage. Resolves even when Redis is down (every call then fails fast and ping() is
 * false until Redis is back), so the gateway can start and report not-ready instead of crashing.
 */
export async function createRedisStorage(options: RedisStorageOptions): Promise<Storage> {
  const resolved = resolveStorageOptions(options);
  const { logger, clock } = resolved;
  const keyPrefix = options.keyPrefix ?? REDIS_DEFAULTS.keyPrefix;
  const expectedReplicas = options.expectedReplicas ?? 1;
  if (!(Number.isSafeInteger(expectedReplicas) && expectedReplicas >= 1)) throw new RangeError(`expectedReplicas must be a positive integer, got ${expectedReplicas}`);

  const commandTimeoutMs = options.commandTimeoutMs ?? REDIS_DEFAULTS.commandTimeoutMs;
  const cacheTimeoutMs = options.cacheTimeoutMs ?? REDIS_DEFAULTS.cacheTimeoutMs;
  // The three connections' outages and recoveries are logged as one.
  const connections = createConnectionLog(options.redisUrl, logger);
  const command = withScripts(createIoRedis(options.redisUrl, 'command', connections, { commandTimeoutMs }));
  const blocking = createIoRedis(options.redisUrl, 'events', connections, { commandTimeoutMs: EVENT_LOG_DEFAULTS.blockMs + commandTimeoutMs });
  const cacheClient = createNodeRedis(options.redisUrl, 'cache', connections);
  await Promise.all([connectIoRedis(command), connectIoRedis(blocking), connectNodeRedis(cacheClient)]);

  const keyvStore = new KeyvRedis(cacheClient, { namespace: `${keyPrefix}cache`, keyPrefixSeparator: ':', throwOnErrors: true });
  const keyv = new Keyv(keyvStore, { namespace: `${keyPrefix}cache`, useKeyPrefix: false, throwOnErrors: true });
  /** The entry keyv.set would write for `key` (its key and serialisation), unless the held one is newer; one command. */
  const setUnlessNewer: GuardedSet = async (key, value, ttlMs, guard) => {
    const entry = await keyv.serialize!({ value, expires: Date.now() + ttlMs });
    const script = { keys: [keyvStore.createKeyPrefix(key, `${keyPrefix}cache`)], arguments: [entry, String(px(ttlMs)), guard.field, ...guard.newer] };
    let stored: unknown;
    try {
      stored = await cacheClient.evalSha(SET_UNLESS_NEWER_SHA, script);
    } catch (err) {
      // Redis has not seen the script yet (or was restarted): sent whole once, EVALSHA from then on.
      if (!(err instanceof Error && err.message.startsWith('NOSCRIPT'))) throw err;
      stored = await cacheClient.eval(SET_UNLESS_NEWER, script);
    }
    return stored === 1;
  };
  const events = createRedisEventLog({ redis: command, blocking, keyPrefix, options: resolved });
  await events.start();

  const budgets = new Map<string, RateBudget>();
  let closing: Promise<void> | undefined;
  const takeBacks = createTakeBacks(async (k, json) => (await command.eggUnbegin(k, json)) === 1, {
    clock,
    logger,
    ...(options.takeBackTimings ? { timings: options.takeBackTimings } : {}),
    ...(options.onTakeBackLost ? { onLost: options.onTakeBackLost } : {}),
  });

  return {
    kind: 'redis',
    cache: createKeyvCache(keyv, logger, { opTimeoutMs: cacheTimeoutMs, closing: () => closing !== undefined, setUnlessNewer }),
    events,
    idempotency: createRedisIdempotency(command, keyPrefix, clock, takeBacks),
    lease: createRedisLease(command, keyPrefix),
    openItems: createRedisOpenItems(command, keyPrefix, clock),
    rateBudget(name, limit, windowMs) {
      const key = `${name}\u0000${limit}\u0000${windowMs}`;
      let budget = budgets.get(key);
      if (!budget) {
        const perReplica = Math.max(1, Math.floor(limit / expectedReplicas));
        budget = createFallbackRateBudget(
          createRedisRateBudget({ redis: command, key: `${keyPrefix}budget:${name}`, limit, windowMs, clock: { now: clock } }),
          // This replica's part of what the fleet had left when Redis was last heard from, not a fresh window.
          (lastKnown) =>
            createMemoryRateBudget({
              limit: perReplica,
              windowMs,
              clock: { now: clock },
              ...(lastKnown ? { startingUse: { used: perReplica - Math.min(perReplica, Math.floor(lastKnown.remaining / expectedReplicas)), atMs: lastKnown.atMs } } : {}),
            }),
          { onSwitch: budgetSwitchLogger(logger, name), clock: { now: clock }, claimScale: perReplica / limit, primaryTimeoutMs: REDIS_DEFAULTS.budgetTimeoutMs },
        );
        budgets.set(key, budget);
      }
      return budget;
    },
    async ping() {
      if (closing) return false;
      try {
        return (await withTimeout(command.ping(), REDIS_DEFAULTS.pingTimeoutMs, 'redis PING')) === 'PONG';
      } catch {
        return false;
      }
    },
    close() {
      // Fixed order: the owed take-backs' last try, then stop the reader (its blocked XREAD), then the
      // cache client, then commands. Each is bounded on a stalled Redis: the take-backs and the command
      // connection's QUIT by the command timeout, the cache client by the cache timeout.
      closing ??= (async () => {
        await takeBacks.close();
        await events.close();
        await closeNodeRedis(cacheClient, cacheTimeoutMs);
        await closeIoRedis(command);
      })();
      return closing;
    },
  };
}

function budgetSwitchLogger(logger: StorageLogger, name: string) {
  return (using: 'primary' | 'fallback', err?: unknown) => {
    if (using === 'fallback') logger.warn({ err, budget: name }, 'rate budget: Redis unavailable, using this replica\'s share in memory');
    else logger.info({ budget: name }, 'rate budget: back on Redis');
  };
}

/**
 * Records as JSON; begin is one script (create or read back) so two racing begins cannot both win. A begin
 * that fails is taken back (see below); what cannot be taken back at once is owed to `takeBacks`.
 */
export function createRedisIdempotency(redis: RedisWithScripts, keyPrefix: string, clock: () => number, takeBacks: TakeBacks): IdempotencyStore {
  const key = (k: string) => `${keyPrefix}idem:${k}`;
  return {
    async begin(k, fingerprint, ttlMs, ref) {
      checkTtl(ttlMs);
      // `owner` makes this attempt's record its own, so only this attempt can take it back.
      const pending: IdempotencyRecord = { state: 'pending', fingerprint, startedAt: clock(), owner: randomBytes(9).toString('base64url'), ...(ref !== undefined ? { ref } : {}) };
      const json = JSON.stringify(pending);
      let existing: string | null;
      try {
        existing = await redis.eggBegin(key(k), json, px(ttlMs));
      } catch (err) {
        // A begin that timed out may still be on its way to a stalled Redis and run once it resumes, or
        // may have run with its answer lost. The caller sends nothing and tells the client the key is free,
        // so take the record back: sent right after on the same connection, Redis runs this after the
        // begin, if that runs at all. If it gets no answer (the connection is lost, Redis unreachable), it
        // is owed and retried until it gets one: comparing the whole record (its random owner) means it
        // only ever removes this attempt's own pending record, never one that moved on or another's.
        const expiresAtMs = pending.startedAt + ttlMs;
        redis.eggUnbegin(key(k), json).catch(() => takeBacks.owe(key(k), json, expiresAtMs));
        throw err;
      }
      return existing === null ? { created: true } : { created: false, record: JSON.parse(existing) as IdempotencyRecord };
    },
    async finish(k, record, ttlMs) {
      checkTtl(ttlMs);
      await redis.set(key(k), JSON.stringify(record), 'PX', px(ttlMs));
    },
    async abandon(k) {
      await redis.del(key(k));
    },
  };
}

/** A lease per name holding this instance's random holder id; renew and release only touch our own. */
export function createRedisLease(redis: RedisWithScripts, keyPrefix: string, holderId = randomBytes(12).toString('hex')): Lease {
  const key = (name: string) => `${keyPrefix}lease:${name}`;
  return {
    async acquire(name, ttlMs) {
      checkTtl(ttlMs);
      return (await redis.eggAcquire(key(name), holderId, px(ttlMs))) === 1;
    },
    async release(name) {
      await redis.eggRelease(key(name), holderId);
    },
  };
}
