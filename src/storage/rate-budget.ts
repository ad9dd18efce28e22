/**
 * Rolling-window request budgets for one Exotel account (design §7: never exceed the account budget).
 *
 * Both implementations keep a sliding LOG: one time per request taken, dropped once it is `windowMs` old. A
 * request is allowed when fewer than `limit` entries remain. This is exact for any window position. A fixed
 * window (count per clock minute, as rate-limiter-flexible's limiters do) would let up to 2 × limit through
 * around a boundary (limit at 10:00:59.9 and limit again at 10:01:00.0), and Exotel counts per rolling
 * minute, so a fixed window could earn 429s; that is why this is hand-written rather than taken from
 * rate-limiter-flexible. The log costs O(limit) memory, which is ~200 entries per account.
 *
 * WHICH time is logged matters. Exotel counts a request when it ARRIVES; we can only know that it has
 * arrived once its answer (or failure) is back. Logging the time a request was SENT undercounts: a burst of
 * `limit` sent at t = 0 that arrives spread over [0, latency] has not left Exotel's window at t = window, yet
 * it had left ours, so the next burst earned 429s (bench figure 7: 202 in one window, 2 × 429). So the client
 * takes with `tryHold`: the entry is PENDING (in the window, whatever its age) from the take until
 * `settle()`, which re-stamps it with the settle time. Arrival ≤ settle, hence our window over settle times
 * bounds Exotel's over arrival times. Proof sketch: take any window (T − window, T] of arrivals at Exotel
 * and, of the requests arriving in it, the one taken last, at s (so s ≤ its arrival ≤ T). Every other one was
 * taken before s and, at s, was either pending or settled at c ≥ its arrival > T − window ≥ s − window: in our
 * window either way. The take at s succeeded, so they were fewer than `limit`. Only the order of real events
 * matters, so the clocks of Exotel, Redis and the replicas need not agree.
 *
 * A pending entry is stored with the time `now + maxHoldMs` (later than any settled entry, so the log can
 * still be read as "drop what is `windowMs` old"). If its process dies before settling, it still leaves the
 * window, as if the request had arrived `maxHoldMs` after the take (the caller's attempt timeout plus a
 * margin). For any entry the earliest it can leave the window is min(time, now) + windowMs (a pending one,
 * if it settled right now): that is the retry hint, a lower bound, so a waiter is never refused too early.
 * `tryTake` is the same with no hold: counted at now.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { RateBudget, RateBudgetHold } from './types.js';

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

function checkHold(maxHoldMs: number): void {
  if (!Number.isFinite(maxHoldMs) || maxHoldMs < 0) throw new RangeError(`rate budget maxHoldMs must be ≥ 0, got ${maxHoldMs}`);
}

/** Settles once: a second settle would move the entry later than the answer that proved the arrival. */
function once(settle: () => Promise<void>): RateBudgetHold['settle'] {
  let done = false;
  return async () => {
    if (done) return;
    done = true;
    await settle().catch(() => {
      // Left pending, the entry expires as if the request arrived maxHoldMs after its take: safe.
    });
  };
}

/** A budget for one process: a sliding log of request times in memory. */
export function createMemoryRateBudget(options: MemoryRateBudgetOptions): RateBudget {
  const { limit, windowMs } = options;
  checkLimits(limit, windowMs);
  const clock = options.clock ?? systemClock;
  // Unordered (settling moves an entry back in time); a pending entry's `at` is its take + maxHoldMs.
  let log: Array<{ at: number }> = [];
  const prune = (now: number) => {
    if (log.some((e) => e.at <= now - windowMs)) log = log.filter((e) => e.at > now - windowMs);
  };
  /** When the first entry can leave the window: a pending one no sooner than if it settled now. */
  const firstLeavesAt = (now: number) => log.reduce((min, e) => Math.min(min, e.at, now), Infinity) + windowMs;
  const take = (holdMs: number): { ok: true; entry: { at: number } } | { ok: false; retryAfterMs: number } => {
    const now = clock.now();
    prune(now);
    if (log.length < limit) {
      const entry = { at: now + holdMs };
      log.push(entry);
      return { ok: true, entry };
    }
    return { ok: false, retryAfterMs: Math.max(1, firstLeavesAt(now) - now) };
  };
  return {
    async tryTake() {
      const answer = take(0);
      return answer.ok ? { ok: true } : answer;
    },
    async tryHold(maxHoldMs) {
      checkHold(maxHoldMs);
      const answer = take(maxHoldMs);
      if (!answer.ok) return answer;
      const { entry } = answer;
      return {
        ok: true,
        settle: once(async () => {
          entry.at = clock.now();
        }),
      };
    },
    async status() {
      const now = clock.now();
      prune(now);
      return { limit, remaining: limit - log.length, resetsAtMs: log.length > 0 ? firstLeavesAt(now) : now };
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
 * One atomic script for take, status and settle. The clock is Redis TIME, not the caller's, so replicas
 * whose clocks disagree still share one timeline (and TIME before a write is fine: Redis ≥ 5 replicates
 * scripts by effects). Members are unique per take so two takes in the same millisecond both count.
 * A take scores its member now + holdMs (pending, see the top of the file); settle re-scores it with now, XX
 * so that an entry already dropped is not brought back. The key lives as long as its latest entry needs.
 * KEYS[1] = log; ARGV = windowMs, limit, member, mode ("take" | "status" | "settle"), holdMs.
 * Returns {taken 0|1, retryAfterMs, count, nowMs, firstLeavesAtMs|-1}.
 */
const SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
if ARGV[4] == 'settle' then
  redis.call('ZADD', KEYS[1], 'XX', now, ARGV[3])
  return {0, 0, 0, now, -1}
end
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local taken = 0
if ARGV[4] == 'take' and count < limit then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[5]), ARGV[3])
  count = count + 1
  taken = 1
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(last[2]) - now + window))
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[2] == nil then
  return {taken, 0, count, now, -1}
end
local leaves = math.min(tonumber(first[2]), now) + window
local retry = leaves - now
if retry < 1 then retry = 1 end
return {taken, retry, count, now, leaves}
`;

type ScriptReply = [number, number, number, number, number];
type ScriptMode = 'take' | 'status' | 'settle';

interface RedisWithBudget extends Redis {
  eggRateBudget(key: string, windowMs: number, limit: number, member: string, mode: ScriptMode, holdMs: number): Promise<ScriptReply>;
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
  const run = (mode: ScriptMode, member: string, holdMs = 0) => r.eggRateBudget(key, windowMs, limit, member, mode, Math.ceil(holdMs));
  const take = async (holdMs: number) => {
    const member = `${prefix}:${++seq}`;
    const [taken, retryAfterMs] = await run('take', member, holdMs);
    return taken === 1 ? ({ ok: true, member } as const) : ({ ok: false, retryAfterMs: Math.max(1, retryAfterMs) } as const);
  };
  return {
    async tryTake() {
      const answer = await take(0);
      return answer.ok ? { ok: true } : answer;
    },
    async tryHold(maxHoldMs) {
      checkHold(maxHoldMs);
      const answer = await take(maxHoldMs);
      if (!answer.ok) return answer;
      const { member } = answer;
      return {
        ok: true,
        settle: once(async () => {
          await run('settle', member);
        }),
      };
    },
    async status() {
      const [, , count, now, leaves] = await run('status', '');
      return { limit, remaining: Math.max(0, limit - count), resetsAtMs: leaves >= 0 ? leaves : now };
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
    // The hold settles on whichever budget gave it. A primary that answers after its timeout keeps a pending
    // entry that nobody settles: it expires after maxHoldMs + window, which errs on the safe side.
    tryHold: (maxHoldMs) => viaPrimary(() => primary.tryHold(maxHoldMs), () => fallback.tryHold(maxHoldMs)),
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
