/**
 * Rolling-window request budgets for one Exotel account (design §7: never exceed the account budget).
 *
 * Both implementations keep a sliding LOG: the time of every request taken in the last `windowMs`. A request
 * is allowed when fewer than `limit` entries remain in the window. This is exact for any window position.
 * A fixed window (count per clock minute, as rate-limiter-flexible's limiters do) would let up to 2 × limit
 * through around a boundary (limit at 10:00:59.9 and limit again at 10:01:00.0), and Exotel counts per
 * rolling minute, so a fixed window could earn 429s; that is why this is hand-written rather than taken
 * from rate-limiter-flexible. The log costs O(limit) memory, which is ~200 entries per account.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { RateBudget } from './types.js';

/** Time source for the memory budget; tests inject one. */
export interface BudgetClock {
  now(): number;
}

const systemClock: BudgetClock = { now: () => Date.now() };

export interface MemoryRateBudgetOptions {
  /** Most requests in any window of `windowMs`. */
  limit: number;
  /** Length of the rolling window, ms (60 000 for Exotel's per-minute limits). */
  windowMs: number;
  clock?: BudgetClock;
}

function checkLimits(limit: number, windowMs: number): void {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`rate budget limit must be a positive integer, got ${limit}`);
  if (!Number.isFinite(windowMs) || windowMs <= 0) throw new RangeError(`rate budget windowMs must be positive, got ${windowMs}`);
}

/** A budget for one process: a sliding log of request times in memory. */
export function createMemoryRateBudget(options: MemoryRateBudgetOptions): RateBudget {
  const { limit, windowMs } = options;
  checkLimits(limit, windowMs);
  const clock = options.clock ?? systemClock;
  // Oldest first; entries at or before now - windowMs have left the window.
  const log: number[] = [];
  const prune = (now: number) => {
    let drop = 0;
    while (drop < log.length && log[drop]! <= now - windowMs) drop++;
    if (drop > 0) log.splice(0, drop);
  };
  return {
    async tryTake() {
      const now = clock.now();
      prune(now);
      if (log.length < limit) {
        log.push(now);
        return { ok: true };
      }
      return { ok: false, retryAfterMs: Math.max(1, log[0]! + windowMs - now) };
    },
    async status() {
      const now = clock.now();
      prune(now);
      return { limit, remaining: limit - log.length, resetsAtMs: log.length > 0 ? log[0]! + windowMs : now };
    },
  };
}

export interface RedisRateBudgetOptions {
  redis: Redis;
  /** The ZSET holding this budget's log, e.g. "egg:budget:<accountSid>". */
  key: string;
  limit: number;
  windowMs: number;
}

/*
 * One atomic script for take and status. The clock is Redis TIME, not the caller's, so replicas whose
 * clocks disagree still share one timeline (and TIME before a write is fine: Redis ≥ 5 replicates scripts
 * by effects). Members are unique per take so two takes in the same millisecond both count.
 * KEYS[1] = log; ARGV = windowMs, limit, member, take ("1" takes, "0" only reads).
 * Returns {taken 0|1, retryAfterMs, count, nowMs, oldestMs|-1}.
 */
const SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if ARGV[4] == '1' and count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  count = count + 1
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {1, 0, count, now, tonumber(first[2])}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if oldest[2] == nil then
  return {0, 0, count, now, -1}
end
local retry = tonumber(oldest[2]) + window - now
if retry < 1 then retry = 1 end
return {0, retry, count, now, tonumber(oldest[2])}
`;

type ScriptReply = [number, number, number, number, number];

interface RedisWithBudget extends Redis {
  eggRateBudget(key: string, windowMs: number, limit: number, member: string, take: string): Promise<ScriptReply>;
}

/** A budget shared by every replica: a Redis ZSET of request times, checked and taken in one Lua script. */
export function createRedisRateBudget(options: RedisRateBudgetOptions): RateBudget {
  const { redis, key, limit, windowMs } = options;
  checkLimits(limit, windowMs);
  if (!(redis as unknown as Partial<RedisWithBudget>).eggRateBudget) {
    // defineCommand sends EVALSHA and falls back to EVAL once, so the script text crosses the wire rarely.
    redis.defineCommand('eggRateBudget', { numberOfKeys: 1, lua: SCRIPT });
  }
  const r = redis as unknown as RedisWithBudget;
  const prefix = randomBytes(6).toString('hex');
  let seq = 0;
  const run = (take: boolean) => r.eggRateBudget(key, windowMs, limit, `${prefix}:${++seq}`, take ? '1' : '0');
  return {
    async tryTake() {
      const [taken, retryAfterMs] = await run(true);
      return taken === 1 ? { ok: true } : { ok: false, retryAfterMs: Math.max(1, retryAfterMs) };
    },
    async status() {
      const [, , count, now, oldest] = await run(false);
      return { limit, remaining: Math.max(0, limit - count), resetsAtMs: oldest >= 0 ? oldest + windowMs : now };
    },
  };
}

export interface FallbackRateBudgetOptions {
  /** After the primary fails, how long to use only the fallback before asking the primary again, ms. */
  probeIntervalMs?: number;
  /** A primary call slower than this counts as failed, ms (a stalled Redis must not stall every request). */
  primaryTimeoutMs?: number;
  /** Told about each switch, for logs and metrics. */
  onSwitch?: (using: 'primary' | 'fallback', error?: unknown) => void;
  clock?: BudgetClock;
}

const FALLBACK_DEFAULTS = { probeIntervalMs: 1_000, primaryTimeoutMs: 500 } as const;

/**
 * Uses `primary` (Redis) while it answers and `fallback` (a per-replica memory budget) while it does not,
 * going back to the primary as soon as a probe succeeds. Build the fallback with
 * `limit / expectedReplicas` (rounded down, at least 1) so a fleet that lost Redis still stays under the
 * account limit; with one replica that is the full limit. Takes spent on the fallback are not copied to the
 * primary, so right after Redis returns a window may briefly hold up to limit + fallback limit; that is the
 * price of staying available, and Exotel's own 429 (honoured by the client) is the last line.
 */
export function createFallbackRateBudget(primary: RateBudget, fallback: RateBudget, options: FallbackRateBudgetOptions = {}): RateBudget {
  const probeIntervalMs = options.probeIntervalMs ?? FALLBACK_DEFAULTS.probeIntervalMs;
  const primaryTimeoutMs = options.primaryTimeoutMs ?? FALLBACK_DEFAULTS.primaryTimeoutMs;
  const clock = options.clock ?? systemClock;
  let usingFallbackUntil = 0;
  let onFallback = false;

  async function viaPrimary<T>(call: () => Promise<T>, fallbackCall: () => Promise<T>): Promise<T> {
    if (onFallback && clock.now() < usingFallbackUntil) return fallbackCall();
    try {
      const result = await withTimeout(call(), primaryTimeoutMs);
      if (onFallback) {
        onFallback = false;
        options.onSwitch?.('primary');
      }
      return result;
    } catch (error) {
      usingFallbackUntil = clock.now() + probeIntervalMs;
      if (!onFallback) {
        onFallback = true;
        options.onSwitch?.('fallback', error);
      }
      return fallbackCall();
    }
  }

  return {
    tryTake: () => viaPrimary(() => primary.tryTake(), () => fallback.tryTake()),
    status: () => viaPrimary(() => primary.status(), () => fallback.status()),
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`rate budget backend did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
