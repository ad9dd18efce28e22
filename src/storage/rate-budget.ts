/**
 * Rolling-window request budgets for one Exotel account (never exceed the account budget: docs/rate-budget.md).
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
 * it had left ours, so the next burst earned 429s (Exotel saw more than `limit` in one window). So the client
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
import { withTimeout } from './with-timeout.js';
import type { BudgetClaim, BudgetGrant, BudgetRefusal, RateBudget, RateBudgetHold } from './types.js';

/** Time source for the memory budget; tests inject one. */
export interface BudgetClock {
  now(): number;
}

const systemClock: BudgetClock = { now: () => Date.now() };

/** The fleet's use of the window as last seen on the shared budget: where a fallback budget starts from. */
export interface KnownUse {
  /** Requests in the window when it was last read. */
  used: number;
  /** When that was, epoch ms. */
  atMs: number;
}

export interface MemoryRateBudgetOptions {
  /** Most requests in any window of `windowMs`. */
  limit: number;
  /** Length of the rolling window, ms (60 000 for Exotel's per-minute limits). */
  windowMs: number;
  clock?: BudgetClock;
  /**
   * Requests already spent elsewhere when this budget starts (a fallback taking over from Redis): counted
   * as if taken at `atMs`, so they leave the window no earlier than the real ones did.
   */
  startingUse?: KnownUse;
}

function checkLimits(limit: number, windowMs: number): void {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`rate budget limit must be a positive integer, got ${limit}`);
  if (!Number.isFinite(windowMs) || windowMs <= 0) throw new RangeError(`rate budget windowMs must be positive, got ${windowMs}`);
}

function checkHold(maxHoldMs: number): void {
  if (!Number.isFinite(maxHoldMs) || maxHoldMs < 0) throw new RangeError(`rate budget maxHoldMs must be ≥ 0, got ${maxHoldMs}`);
}

function checkClaim(claim: BudgetClaim | undefined): void {
  if (!claim) return;
  if (!/^[^\s\u0000]{1,200}$/.test(claim.client)) throw new RangeError(`rate budget client must be a name without spaces, got ${JSON.stringify(claim.client)}`);
  if (!(claim.share >= 0) || !(claim.reserve >= 0)) throw new RangeError(`rate budget share and reserve must be ≥ 0, got ${claim.share} and ${claim.reserve}`);
}

/**
 * How many of a client's `used` requests must leave the window before it may take again: enough to bring it
 * under its share, or enough of the window's `count` to give the reserve back, whichever is fewer.
 */
function overShareWaits(claim: BudgetClaim, used: number, count: number, limit: number): { own: number; all: number } {
  return { own: Math.floor(used - claim.share) + 1, all: Math.ceil(claim.reserve) + 1 + count - limit };
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
  let log: Array<{ at: number; client: string | undefined }> = [];
  if (options.startingUse) {
    const { used, atMs } = options.startingUse;
    for (let i = 0; i < Math.min(limit, used); i++) log.push({ at: atMs, client: undefined });
  }
  const prune = (now: number) => {
    if (log.some((e) => e.at <= now - windowMs)) log = log.filter((e) => e.at > now - windowMs);
  };
  /** When the n-th entry (1-based, earliest first) can leave the window: a pending one no sooner than if it settled now. */
  const nthLeavesAt = (entries: typeof log, n: number, now: number) => {
    const times = entries.map((e) => Math.min(e.at, now)).sort((a, b) => a - b);
    return (times[Math.max(0, Math.min(n, times.length) - 1)] ?? now) + windowMs;
  };
  const refuse = (at: number, now: number, reason: BudgetRefusal['reason']): BudgetRefusal => ({ ok: false, retryAfterMs: Math.max(1, at - now), reason });
  const take = (holdMs: number, claim: BudgetClaim | undefined) => {
    const now = clock.now();
    prune(now);
    if (log.length >= limit) return refuse(nthLeavesAt(log, 1, now), now, 'exhausted');
    const mine = claim ? log.filter((e) => e.client === claim.client) : [];
    if (claim && mine.length >= claim.share && limit - log.length - 1 < claim.reserve) {
      const waits = overShareWaits(claim, mine.length, log.length, limit);
      return refuse(Math.min(nthLeavesAt(mine, waits.own, now), nthLeavesAt(log, waits.all, now)), now, 'over-share');
    }
    const entry = { at: now + holdMs, client: claim?.client };
    log.push(entry);
    return { ok: true as const, entry, remaining: limit - log.length, clientUsed: mine.length + (claim ? 1 : 0) };
  };
  return {
    async tryTake() {
      const answer = take(0, undefined);
      return answer.ok ? { ok: true } : { ok: false, retryAfterMs: answer.retryAfterMs };
    },
    async tryHold(maxHoldMs, claim): Promise<BudgetGrant | BudgetRefusal> {
      checkHold(maxHoldMs);
      checkClaim(claim);
      const answer = take(maxHoldMs, claim);
      if (!answer.ok) return answer;
      const { entry, remaining, clientUsed } = answer;
      return {
        ok: true,
        remaining,
        clientUsed,
        settle: once(async () => {
          entry.at = clock.now();
        }),
      };
    },
    async status(client) {
      const now = clock.now();
      prune(now);
      return {
        limit,
        remaining: limit - log.length,
        resetsAtMs: log.length > 0 ? nthLeavesAt(log, 1, now) : now,
        clientUsed: client === undefined ? 0 : log.filter((e) => e.client === client).length,
      };
    },
  };
}

export interface RedisRateBudgetOptions {
  redis: Redis;
  /** The ZSET holding this budget's log, e.g. "egg:budget:<accountSid>". */
  key: string;
  limit: number;
  windowMs: number;
  /** This process's clock, for the ages of the requests it puts back. */
  clock?: BudgetClock;
}

/*
 * One atomic script for take, status and settle. The clock is Redis TIME, not the caller's, so replicas
 * whose clocks disagree still share one timeline (and TIME before a write is fine: Redis ≥ 5 replicates
 * scripts by effects). Members are unique per take so two takes in the same millisecond both count.
 * A take scores its member now + holdMs (pending, see the top of the file); settle re-scores it with now, XX
 * so that an entry already dropped is not brought back. The key lives as long as its latest entry needs.
 * A take with a client also logs the member in that client's own ZSET (same score), which is how every
 * replica sees each client's use of the shared window; the share rule is checked in the same script.
 * KEYS[1] = log, KEYS[2] = the client's log; ARGV = windowMs, limit, member, mode ("take" | "status" |
 * "settle"), holdMs, hasClient "1"|"0", share, reserve.
 * Returns {taken 0|1, retryAfterMs, count, nowMs, firstLeavesAtMs|-1, clientCount, refusal 0|1 exhausted|2 over share}.
 */
const SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local hasClient = ARGV[6] == '1'
if ARGV[4] == 'settle' then
  redis.call('ZADD', KEYS[1], 'XX', now, ARGV[3])
  if hasClient then redis.call('ZADD', KEYS[2], 'XX', now, ARGV[3]) end
  return {0, 0, 0, now, -1, 0, 0}
end
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local mine = 0
if hasClient then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
  mine = redis.call('ZCARD', KEYS[2])
end
local function leavesAt(key, n, size)
  if n > size then n = size end
  if n < 1 then n = 1 end
  local e = redis.call('ZRANGE', key, n - 1, n - 1, 'WITHSCORES')
  if e[2] == nil then return now end
  return math.min(tonumber(e[2]), now) + window
end
local taken = 0
local refusal = 0
local retry = 0
if ARGV[4] == 'take' then
  local share = tonumber(ARGV[7])
  local reserve = tonumber(ARGV[8])
  if count >= limit then
    refusal = 1
    retry = leavesAt(KEYS[1], 1, count) - now
  elseif hasClient and mine >= share and limit - count - 1 < reserve then
    refusal = 2
    local own = math.floor(mine - share) + 1
    local all = math.ceil(reserve) + 1 + count - limit
    retry = math.min(leavesAt(KEYS[2], own, mine), leavesAt(KEYS[1], all, count)) - now
  else
    local score = now + tonumber(ARGV[5])
    redis.call('ZADD', KEYS[1], score, ARGV[3])
    count = count + 1
    taken = 1
    local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
    local ttl = math.ceil(tonumber(last[2]) - now + window)
    redis.call('PEXPIRE', KEYS[1], ttl)
    if hasClient then
      redis.call('ZADD', KEYS[2], score, ARGV[3])
      mine = mine + 1
      redis.call('PEXPIRE', KEYS[2], ttl)
    end
  end
end
local first = -1
if count > 0 then first = leavesAt(KEYS[1], 1, count) end
if retry < 1 then retry = 1 end
return {taken, retry, count, now, first, mine, refusal}
`;

/*
 * Puts requests back into the log: this process's own takes (Redis restarted empty, or missed them while
 * it could not be reached). NX: a request the log still holds keeps its entry, so putting back twice, or
 * what Redis never lost, counts nothing twice. The caller sends only requests still in the window
 * (createSpentLog); one that leaves it on the way is dropped, as any old entry is, by the next take or
 * status before it counts. KEYS[1] = log; ARGV = windowMs, then member, age ms pairs (age on the caller's
 * clock; negative for a pending entry's expiry still ahead).
 */
const RESTORE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], 'NX', now - tonumber(ARGV[i + 1]), ARGV[i])
end
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(last[2]) - now + window)) end
return 0
`;

/** One request this process took, on its own clock: a pending one at its take + maxHoldMs until settled. */
export interface SpentRequest {
  member: string;
  atMs: number;
}

/**
 * The requests this process took that are still in the window, kept to be put back (RESTORE above). Pruned
 * as it goes: a replica up for weeks holds one window's requests, not every request it ever made, and a
 * put-back sends Redis only those.
 */
function createSpentLog(windowMs: number, clock: BudgetClock) {
  let entries: SpentRequest[] = [];
  const prune = () => {
    const since = clock.now() - windowMs;
    if (entries.some((e) => e.atMs <= since)) entries = entries.filter((e) => e.atMs > since);
  };
  return {
    add(member: string, atMs: number): SpentRequest {
      prune();
      const entry = { member, atMs };
      entries.push(entry);
      return entry;
    },
    inWindow(): SpentRequest[] {
      prune();
      return entries;
    },
  };
}

/** A budget that can be given back requests spent while it could not count them (the Redis budget). */
export interface RestorableRateBudget extends RateBudget {
  readonly windowMs: number;
  /** Puts back this budget's own takes still in the window, and `spentElsewhere` (a fallback's). */
  restore(spentElsewhere: readonly SpentRequest[]): Promise<void>;
}

type ScriptReply = [number, number, number, number, number, number, number];
type ScriptMode = 'take' | 'status' | 'settle';

interface RedisWithBudget extends Redis {
  eggRateBudget(
    key: string,
    clientKey: string,
    windowMs: number,
    limit: number,
    member: string,
    mode: ScriptMode,
    holdMs: number,
    hasClient: '1' | '0',
    share: number,
    reserve: number,
  ): Promise<ScriptReply>;
  eggRateBudgetRestore(key: string, windowMs: number, ...memberAges: Array<string | number>): Promise<number>;
}

/** A budget shared by every replica: a Redis ZSET of request times, checked and taken in one Lua script. */
export function createRedisRateBudget(options: RedisRateBudgetOptions): RestorableRateBudget {
  const { redis, key, limit, windowMs } = options;
  checkLimits(limit, windowMs);
  const clock = options.clock ?? systemClock;
  if (!(redis as unknown as Partial<RedisWithBudget>).eggRateBudget) {
    // defineCommand sends EVALSHA and falls back to EVAL once, so the script text crosses the wire rarely.
    redis.defineCommand('eggRateBudget', { numberOfKeys: 2, lua: SCRIPT });
    redis.defineCommand('eggRateBudgetRestore', { numberOfKeys: 1, lua: RESTORE });
  }
  // What this process took, kept for a Redis that restarts empty: its log would otherwise forget them.
  const spent = createSpentLog(windowMs, clock);
  const r = redis as unknown as RedisWithBudget;
  const prefix = randomBytes(6).toString('hex');
  let seq = 0;
  const clientKey = (client: string | undefined) => (client === undefined ? `${key}:client:-` : `${key}:client:${client}`);
  const run = (mode: ScriptMode, member: string, holdMs = 0, claim?: BudgetClaim, client = claim?.client) =>
    r.eggRateBudget(key, clientKey(client), windowMs, limit, member, mode, Math.ceil(holdMs), client === undefined ? '0' : '1', claim?.share ?? 0, claim?.reserve ?? 0);
  return {
    windowMs,
    async tryTake() {
      const member = `${prefix}:${++seq}`;
      const [taken, retryAfterMs] = await run('take', member);
      if (taken !== 1) return { ok: false, retryAfterMs: Math.max(1, retryAfterMs) };
      spent.add(member, clock.now());
      return { ok: true };
    },
    async tryHold(maxHoldMs, claim): Promise<BudgetGrant | BudgetRefusal> {
      checkHold(maxHoldMs);
      checkClaim(claim);
      const member = `${prefix}:${++seq}`;
      const [taken, retryAfterMs, count, , , clientUsed, refusal] = await run('take', member, maxHoldMs, claim);
      if (taken !== 1) return { ok: false, retryAfterMs: Math.max(1, retryAfterMs), reason: refusal === 2 ? 'over-share' : 'exhausted' };
      const entry = spent.add(member, clock.now() + maxHoldMs);
      return {
        ok: true,
        remaining: Math.max(0, limit - count),
        clientUsed,
        settle: once(async () => {
          entry.atMs = clock.now();
          await run('settle', member, 0, undefined, claim?.client);
        }),
      };
    },
    async status(client) {
      const [, , count, now, leaves, clientUsed] = await run('status', '', 0, undefined, client);
      return { limit, remaining: Math.max(0, limit - count), resetsAtMs: leaves >= 0 ? leaves : now, clientUsed };
    },
    async restore(spentElsewhere) {
      const now = clock.now();
      const entries = [...spent.inWindow(), ...spentElsewhere];
      if (entries.length === 0) return;
      // The account's window only: clients' shares of it start afresh after an outage.
      await r.eggRateBudgetRestore(key, windowMs, ...entries.flatMap((e) => [e.member, Math.round(now - e.atMs)]));
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
  /** Claims on the fallback are scaled by this (its limit ÷ the primary's), so shares keep their proportions. */
  claimScale?: number;
  clock?: BudgetClock;
}

const FALLBACK_DEFAULTS = { probeIntervalMs: 1_000, primaryTimeoutMs: 500 } as const;

/** What the primary last said was left in its window, and when (this process's clock). */
export interface LastKnownRemaining {
  remaining: number;
  atMs: number;
}

/**
 * Uses `primary` (Redis) while it answers and a per-replica fallback while it does not, going back to the
 * primary as soon as a probe succeeds. `fallback` builds that budget when the primary is lost, from what
 * the primary last said was left in the fleet's window: a replica must not start from an empty window and
 * send what the fleet already spent (build it with this replica's part of that remainder, e.g.
 * `limit / expectedReplicas` minus its part of the use, so a fleet that lost Redis still stays under the
 * account limit). A fallback that still holds requests in its window is kept for the next outage. When the
 * primary answers again, a restorable one (Redis) is first given back what the fallback granted and its own
 * takes still in the window (a Redis that restarted empty forgot them), so the fleet's window counts them.
 */
export function createFallbackRateBudget(
  primary: RateBudget | RestorableRateBudget,
  fallback: RateBudget | ((lastKnown: LastKnownRemaining | undefined) => RateBudget),
  options: FallbackRateBudgetOptions = {},
): RateBudget {
  const probeIntervalMs = options.probeIntervalMs ?? FALLBACK_DEFAULTS.probeIntervalMs;
  const primaryTimeoutMs = options.primaryTimeoutMs ?? FALLBACK_DEFAULTS.primaryTimeoutMs;
  const clock = options.clock ?? systemClock;
  const scale = options.claimScale ?? 1;
  const build = typeof fallback === 'function' ? fallback : () => fallback;
  let usingFallbackUntil = 0;
  let onFallback = false;
  let lastKnown: LastKnownRemaining | undefined;
  let current: RateBudget | undefined;
  const know = (remaining: number) => {
    lastKnown = { remaining, atMs: clock.now() };
  };
  // What the fallback granted, put back into a restorable primary before it is used again: the fleet's
  // window must count what this replica sent while it could not reach it.
  const restorable = 'restore' in primary ? primary : undefined;
  const spentOnFallback = restorable && createSpentLog(restorable.windowMs, clock);
  const fallbackMembers = `${randomBytes(6).toString('hex')}:f`;
  let fallbackSeq = 0;
  const spend = (atMs: number) => spentOnFallback?.add(`${fallbackMembers}:${++fallbackSeq}`, atMs);

  /** The fallback for this outage: the last one while it still counts requests, else one built from the last known use. */
  async function local(): Promise<RateBudget> {
    if (current) {
      const status = await current.status();
      if (status.remaining < status.limit) return current;
    }
    current = build(lastKnown);
    return current;
  }

  async function viaPrimary<T>(call: () => Promise<T>, fallbackCall: (budget: RateBudget) => Promise<T>, learn?: (result: T) => void): Promise<T> {
    if (onFallback && clock.now() < usingFallbackUntil) return fallbackCall(current ?? (await local()));
    try {
      if (onFallback && restorable) await withTimeout(restorable.restore(spentOnFallback!.inWindow()), primaryTimeoutMs, 'rate budget backend');
      const result = await withTimeout(call(), primaryTimeoutMs, 'rate budget backend');
      learn?.(result);
      if (onFallback) {
        onFallback = false;
        options.onSwitch?.('primary');
      }
      return result;
    } catch (error) {
      usingFallbackUntil = clock.now() + probeIntervalMs;
      if (!onFallback) {
        onFallback = true;
        await local();
        options.onSwitch?.('fallback', error);
      }
      return fallbackCall(current ?? (await local()));
    }
  }

  const scaled = (claim: BudgetClaim | undefined): BudgetClaim | undefined =>
    claim && { client: claim.client, share: claim.share * scale, reserve: claim.reserve * scale };

  return {
    tryTake: () =>
      viaPrimary(
        () => primary.tryTake(),
        async (b) => {
          const answer = await b.tryTake();
          if (answer.ok) spend(clock.now());
          return answer;
        },
      ),
    // The hold settles on whichever budget gave it. A primary that answers after its timeout keeps a pending
    // entry that nobody settles: it expires after maxHoldMs + window, which errs on the safe side.
    tryHold: (maxHoldMs, claim) =>
      viaPrimary(
        () => primary.tryHold(maxHoldMs, claim),
        async (b) => {
          const answer = await b.tryHold(maxHoldMs, scaled(claim));
          if (!answer.ok) return answer;
          const entry = spend(clock.now() + maxHoldMs);
          return {
            ...answer,
            settle: async () => {
              if (entry) entry.atMs = Math.min(entry.atMs, clock.now());
              await answer.settle();
            },
          };
        },
        (answer) => {
          if (answer.ok) know(answer.remaining);
          else if (answer.reason === 'exhausted') know(0);
        },
      ),
    status: (client) => viaPrimary(() => primary.status(client), (b) => b.status(client), (status) => know(status.remaining)),
  };
}
