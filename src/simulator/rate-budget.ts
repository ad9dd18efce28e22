/** The simulator's own request budget: a rolling window per account, like Exotel's 200 requests/min. */

export interface BudgetDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Epoch seconds when the oldest counted request leaves the window. */
  resetEpochSeconds: number;
  /** Whole seconds to wait before a retry can pass (≥ 1), when not allowed. */
  retryAfterSeconds: number;
}

export interface RateBudget {
  /** Counts one request if the window has room. */
  take(nowMs?: number): BudgetDecision;
}

export function createRateBudget(limit: number, windowMs: number): RateBudget {
  // Timestamps of accepted requests, oldest first; rejected requests do not count.
  let log: number[] = [];
  return {
    take(nowMs = Date.now()) {
      log = log.filter((t) => t > nowMs - windowMs);
      const allowed = log.length < limit;
      if (allowed) log.push(nowMs);
      const oldest = log[0] ?? nowMs;
      const resetMs = oldest + windowMs;
      return {
        allowed,
        limit,
        remaining: Math.max(0, limit - log.length),
        resetEpochSeconds: Math.ceil(resetMs / 1000),
        retryAfterSeconds: Math.max(1, Math.ceil((resetMs - nowMs) / 1000)),
      };
    },
  };
}
