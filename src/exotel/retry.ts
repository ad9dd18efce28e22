/**
 * The arithmetic of waiting: Retry-After, jittered backoff, and the retry budget that keeps GET retries
 * from multiplying load on an Exotel that is already struggling.
 */

/** Delay a Retry-After header asks for, ms: delta-seconds or an HTTP date (RFC 9110 §10.2.3); undefined if absent/unreadable. */
export function parseRetryAfterMs(header: string | null | undefined, nowMs: number): number | undefined {
  if (header === null || header === undefined) return undefined;
  const value = header.trim();
  if (value === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(value)) return Math.round(Number(value) * 1000);
  const at = Date.parse(value);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}

/**
 * "Full jitter" exponential backoff: a uniform pick in [0, min(cap, base · 2^(attempt−1))]. Exotel advises
 * 1 s doubling; full jitter spreads replicas that were refused at the same moment so they do not return
 * together (AWS Architecture Blog, "Exponential Backoff And Jitter").
 */
export function fullJitterBackoffMs(attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.floor(random() * ceiling);
}

export interface RetryBudgetOptions {
  /** Retries allowed as a share of first attempts in the window (0.1 = at most 10 % extra requests). */
  ratio: number;
  /** Retries always allowed per window, so a quiet gateway can still retry a lone failure. */
  minPerWindow: number;
  windowMs: number;
  now: () => number;
}

/** Counts first attempts and retries over a sliding window; a retry is allowed only while under budget. */
export interface RetryBudget {
  /** Note a first attempt (it earns `ratio` of a retry). */
  recordAttempt(): void;
  /** True, and counts the retry, when one more retry fits in the budget. */
  tryRetry(): boolean;
}

/**
 * A retry budget in the style of Finagle's and gRPC's: retries may add at most `ratio` extra requests over
 * the sliding window (plus a small floor). Without it, every GET of a failing Exotel would be sent up to
 * `maxAttemptsGet` times, tripling load exactly when Exotel can least take it.
 */
export function createRetryBudget(options: RetryBudgetOptions): RetryBudget {
  const attempts: number[] = [];
  const retries: number[] = [];
  const prune = (log: number[], now: number) => {
    let drop = 0;
    while (drop < log.length && log[drop]! <= now - options.windowMs) drop++;
    if (drop > 0) log.splice(0, drop);
  };
  return {
    recordAttempt() {
      const now = options.now();
      prune(attempts, now);
      attempts.push(now);
    },
    tryRetry() {
      const now = options.now();
      prune(attempts, now);
      prune(retries, now);
      const allowed = Math.max(options.minPerWindow, Math.floor(attempts.length * options.ratio));
      if (retries.length >= allowed) return false;
      retries.push(now);
      return true;
    },
  };
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, Math.max(0, ms));
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
