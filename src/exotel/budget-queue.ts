/**
 * Waiting for rate budget: a FIFO queue in front of a RateBudget (design §7: "when over, queue up to a
 * deadline, then RATE_LIMITED").
 *
 * One pump serves the queue head first, so a request that arrived earlier is never overtaken by a later one
 * in this process. When the budget says "next slot in N ms", every waiter whose deadline comes before that
 * is told RATE_LIMITED at once rather than kept hanging for an answer that cannot change.
 *
 * Every slot is a HOLD (storage/rate-budget.ts): it counts as in the window until the caller settles it when
 * the attempt's answer or failure is back, because Exotel counts a request when it arrives, not when it is
 * sent. `maxHoldMs` bounds a hold nobody settles (the process died mid-request): the attempt timeout plus
 * `HOLD_MARGIN_MS` for the budget round trip before the send and any lag between the timer and the settle.
 */
import { ErrorCode, GatewayError } from '../errors.js';
import type { RateBudget, RateBudgetHold } from '../storage/types.js';
import { sleep } from './retry.js';

/** Slack added to the attempt timeout for a hold's expiry, ms (see the top of the file). */
export const HOLD_MARGIN_MS = 5_000;

interface Waiter {
  deadlineMs: number;
  resolve: (hold: RateBudgetHold) => void;
  reject: (error: unknown) => void;
  cleanup: () => void;
}

export interface BudgetQueueOptions {
  budget: RateBudget;
  queueDeadlineMs: number;
  /** Share (0–1) of the budget 'background' takes may use. */
  backgroundShare: number;
  /** Longest one attempt can take from the take to its answer (the client's per-attempt timeout), ms. */
  attemptTimeoutMs: number;
  now: () => number;
}

/** RATE_LIMITED with whole seconds to wait (at least 1: "retry after 0 s" invites a hot loop). */
export function rateLimited(message: string, retryAfterMs: number): GatewayError {
  return new GatewayError(ErrorCode.RATE_LIMITED, message, { retryAfterSeconds: Math.max(1, Math.ceil(retryAfterMs / 1000)) });
}

export interface BudgetQueue {
  /**
   * Resolves with a hold once one request's worth of budget is taken; rejects RATE_LIMITED at the deadline.
   * The caller must `settle()` the hold as soon as the attempt's answer or failure is back.
   */
  acquire(priority: 'foreground' | 'background', signal?: AbortSignal): Promise<RateBudgetHold>;
  /** Requests waiting for budget right now. */
  readonly waiting: number;
  /**
   * Takes nothing from the budget until `untilMs` (epoch ms): Exotel said to hold off (429 Retry-After,
   * or no requests left until its reset). Waiters wait on within their deadline; a later pause extends it.
   */
  pause(untilMs: number): void;
}

/** A FIFO queue of requests waiting for `budget`, each until `queueDeadlineMs`. */
export function createBudgetQueue(options: BudgetQueueOptions): BudgetQueue {
  const { budget, queueDeadlineMs, backgroundShare, now } = options;
  const maxHoldMs = options.attemptTimeoutMs + HOLD_MARGIN_MS;
  const queue: Waiter[] = [];
  let pumping = false;
  // When the budget last said a slot frees up (epoch ms): the best retry hint for a waiter that times out.
  let nextSlotAtMs = 0;
  let pausedUntilMs = 0;
  /** One take from the budget, unless Exotel told us to hold off (then a refusal until the pause ends). */
  const take = async (): ReturnType<RateBudget['tryHold']> => {
    const pausedForMs = pausedUntilMs - now();
    if (pausedForMs > 0) return { ok: false, retryAfterMs: pausedForMs };
    return budget.tryHold(maxHoldMs);
  };

  function remove(waiter: Waiter): boolean {
    const i = queue.indexOf(waiter);
    if (i < 0) return false;
    queue.splice(i, 1);
    waiter.cleanup();
    return true;
  }

  async function pump(): Promise<void> {
    if (pumping) return;
    pumping = true;
    try {
      while (queue.length > 0) {
        let answer: Awaited<ReturnType<RateBudget['tryHold']>>;
        try {
          answer = await take();
        } catch {
          // The budget store failed: refusing is safer than sending without knowing the count.
          const head = queue[0]!;
          if (remove(head)) head.reject(new GatewayError(ErrorCode.INTERNAL_SERVER_ERROR, 'The rate budget store is unavailable'));
          continue;
        }
        const head = queue[0];
        if (!head) {
          // Everyone left (deadline or abort) while we asked: nothing will be sent, and settling now is the
          // cheapest honest stamp (the slot stays spent for one window, as it did before holds).
          if (answer.ok) void answer.settle();
          break;
        }
        if (answer.ok) {
          remove(head);
          head.resolve(answer);
          continue;
        }
        const nextSlotAt = now() + answer.retryAfterMs;
        nextSlotAtMs = nextSlotAt;
        for (const w of [...queue]) {
          if (w.deadlineMs < nextSlotAt && remove(w)) {
            w.reject(rateLimited('Exotel request budget exhausted; no slot frees up before the queue deadline', nextSlotAt - now()));
          }
        }
        if (queue.length > 0) await sleep(answer.retryAfterMs);
      }
    } finally {
      pumping = false;
    }
  }

  async function acquireBackground(): Promise<RateBudgetHold> {
    // Background work never queues and never goes ahead of waiting foreground requests.
    if (queue.length > 0) throw rateLimited('Background request refused: foreground requests are waiting for budget', 1000);
    if (pausedUntilMs > now()) throw rateLimited('Background request refused: Exotel asked to hold off', pausedUntilMs - now());
    const status = await budget.status();
    // Keep (1 − share) of the window for foreground requests: background may take only if at least that
    // much still remains *after* its take (checking before the take let it have one request too many).
    // A soft cap (status and take are two steps); the budget itself is the hard cap.
    if (status.remaining - 1 < (1 - backgroundShare) * status.limit) {
      throw rateLimited('Background request refused: its share of the Exotel budget is used up', status.resetsAtMs - now());
    }
    const answer = await take();
    if (!answer.ok) throw rateLimited('Background request refused: Exotel request budget exhausted', answer.retryAfterMs);
    return answer;
  }

  return {
    get waiting() {
      return queue.length;
    },
    pause(untilMs) {
      pausedUntilMs = Math.max(pausedUntilMs, untilMs);
    },
    async acquire(priority, signal) {
      signal?.throwIfAborted();
      if (priority === 'background') return acquireBackground();
      if (queue.length === 0) {
        const answer = await take();
        if (answer.ok) return answer;
        if (answer.retryAfterMs > queueDeadlineMs) {
          throw rateLimited('Exotel request budget exhausted; no slot frees up before the queue deadline', answer.retryAfterMs);
        }
      }
      return new Promise<RateBudgetHold>((resolve, reject) => {
        const timer = setTimeout(() => {
          if (remove(waiter)) waiter.reject(rateLimited('Exotel request budget exhausted; waited until the queue deadline', nextSlotAtMs - now()));
        }, queueDeadlineMs);
        const onAbort = () => {
          if (remove(waiter)) waiter.reject(signal?.reason);
        };
        const waiter: Waiter = {
          deadlineMs: now() + queueDeadlineMs,
          resolve,
          reject,
          cleanup: () => {
            clearTimeout(timer);
            signal?.removeEventListener('abort', onAbort);
          },
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        queue.push(waiter);
        void pump();
      });
    },
  };
}
