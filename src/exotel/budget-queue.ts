/**
 * Waiting for rate budget: a fair queue in front of a RateBudget (when over, queue up to a deadline, then
 * RATE_LIMITED), shared by the client keys of one account (docs/rate-budget.md).
 *
 * Each client key has a weight and so a share of the window (limit × weight ÷ all weights). One pump
 * serves the waiters: first the client that has used the least of its share, and within a client the one
 * that arrived first. The budget itself enforces the rule that makes the share hold across replicas: a
 * client over its share may not take the last `reserve` requests of the window, which stay for the others.
 * A refused client waits on (its deadline permitting) while the pump serves the others; every waiter whose
 * deadline comes before its client's next slot is told RATE_LIMITED at once, with that client's wait.
 *
 * Every slot is a HOLD (storage/rate-budget.ts): it counts as in the window until the caller settles it when
 * the attempt's answer or failure is back, because Exotel counts a request when it arrives, not when it is
 * sent. `maxHoldMs` bounds a hold nobody settles (the process died mid-request): the attempt timeout plus
 * `HOLD_MARGIN_MS` for the budget round trip before the send and any lag between the timer and the settle.
 */
import { ErrorCode, GatewayError } from '../errors.js';
import type { BudgetClaim, BudgetGrant, BudgetRefusal, RateBudget, RateBudgetHold } from '../storage/types.js';

/** Slack added to the attempt timeout for a hold's expiry, ms (see the top of the file). */
export const HOLD_MARGIN_MS = 5_000;

interface Waiter {
  client: string | undefined;
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
  /** Weight of each client key (a key not named weighs 1); shares are proportional to weights. */
  weights?: Readonly<Record<string, number>>;
  /** Share (0–1) of each window a client over its share must leave to the others. */
  reserveShare?: number;
  now: () => number;
}

/** One wait for budget: who asks, how urgently, and until when. */
export interface BudgetRequest {
  priority: 'foreground' | 'background';
  /** The client key the request is made for; its share is what it spends. Absent: not counted per client. */
  client?: string;
  signal?: AbortSignal;
  /** Give up at this time (epoch ms) instead of `queueDeadlineMs` from now; never later than that. */
  deadlineAtMs?: number;
}

/** RATE_LIMITED with whole seconds to wait (at least 1: "retry after 0 s" invites a hot loop). */
export function rateLimited(message: string, retryAfterMs: number): GatewayError {
  return new GatewayError(ErrorCode.RATE_LIMITED, message, { retryAfterSeconds: Math.max(1, Math.ceil(retryAfterMs / 1000)) });
}

function overShare(client: string | undefined): string {
  return `This API key ("${client}") has used its share of the Exotel request budget; what is left of the window is kept for other clients`;
}

/** A client key's share of the window and its use of it. */
export interface ClientShare {
  /** Requests per window the client may always take. */
  share: number;
  /** Requests the client has in the window now. */
  used: number;
}

export interface BudgetQueue {
  /**
   * Resolves with a hold once one request's worth of budget is taken; rejects RATE_LIMITED at the deadline.
   * The caller must `settle()` the hold as soon as the attempt's answer or failure is back.
   */
  acquire(request: BudgetRequest): Promise<RateBudgetHold>;
  /**
   * A hold right now only if at least `keepShare` (0–1) of the window would still be left after it (and
   * nobody is waiting), else undefined: how a batch decides the budget has room to spare.
   */
  trySpare(client: string | undefined, keepShare: number): Promise<RateBudgetHold | undefined>;
  /** Requests waiting for budget right now. */
  readonly waiting: number;
  /** The budget's limit per window (read once from the budget). */
  limit(): Promise<number>;
  /** A client key's share and use of the window. */
  clientShare(client: string): Promise<ClientShare>;
  /**
   * Takes nothing from the budget until `untilMs` (epoch ms): Exotel said to hold off (429 Retry-After,
   * or no requests left until its reset). Waiters wait on within their deadline; a later pause extends it.
   */
  pause(untilMs: number): void;
}

/** A fair queue of requests waiting for `budget`, each until its deadline. */
export function createBudgetQueue(options: BudgetQueueOptions): BudgetQueue {
  const { budget, queueDeadlineMs, backgroundShare, now } = options;
  const weights = options.weights ?? {};
  const reserveShare = options.reserveShare ?? 0;
  const maxHoldMs = options.attemptTimeoutMs + HOLD_MARGIN_MS;
  const queue: Waiter[] = [];
  let pumping = false;
  let pausedUntilMs = 0;
  // Last known use of the window per client (from grants), to serve the least-served client first.
  const used = new Map<string, number>();
  // When each refused client can take again (epoch ms), and when the whole window was known spent until.
  const refusedUntil = new Map<string, number>();
  let exhaustedUntilMs = 0;
  let wake: (() => void) | undefined;

  let limitRead: Promise<number> | undefined;
  const limit = () => {
    limitRead ??= budget.status().then(
      (s) => s.limit,
      (err: unknown) => {
        limitRead = undefined;
        throw err;
      },
    );
    return limitRead;
  };
  const weightOf = (client: string) => weights[client] ?? 1;
  const totalWeight = (client: string) => Object.values(weights).reduce((a, b) => a + b, 0) + (client in weights ? 0 : 1);
  async function claimFor(client: string | undefined): Promise<BudgetClaim | undefined> {
    if (client === undefined) return undefined;
    const l = await limit();
    return { client, share: (l * weightOf(client)) / totalWeight(client), reserve: Math.ceil(l * reserveShare) };
  }

  /** One take for `client`, unless Exotel told us to hold off (then a refusal until the pause ends). */
  async function take(client: string | undefined, claim?: BudgetClaim): Promise<BudgetGrant | BudgetRefusal> {
    const pausedForMs = pausedUntilMs - now();
    if (pausedForMs > 0) return { ok: false, retryAfterMs: pausedForMs, reason: 'exhausted' };
    const answer = await budget.tryHold(maxHoldMs, claim ?? (await claimFor(client)));
    if (answer.ok && client !== undefined) used.set(client, answer.clientUsed);
    return answer;
  }

  function remove(waiter: Waiter): boolean {
    const i = queue.indexOf(waiter);
    if (i < 0) return false;
    queue.splice(i, 1);
    waiter.cleanup();
    return true;
  }

  /** The first waiter of each client, least-served client first (use ÷ weight), then by arrival. */
  function candidates(): Waiter[] {
    const heads = new Map<string | undefined, Waiter>();
    for (const w of queue) if (!heads.has(w.client)) heads.set(w.client, w);
    const load = (w: Waiter) => (w.client === undefined ? 0 : (used.get(w.client) ?? 0) / weightOf(w.client));
    return [...heads.values()].sort((a, b) => load(a) - load(b) || queue.indexOf(a) - queue.indexOf(b));
  }

  /** Tells every waiter of `client` that cannot be served before its deadline so, now. */
  function refuseHopeless(client: string | undefined, nextSlotAt: number, message: string): void {
    for (const w of [...queue]) {
      if (w.client === client && w.deadlineMs < nextSlotAt && remove(w)) w.reject(rateLimited(message, nextSlotAt - now()));
    }
  }

  /** Sleeps `ms`, or less when a waiter that might be served arrives. */
  function rest(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      }
      wake = done;
    });
  }

  async function pump(): Promise<void> {
    if (pumping) return;
    pumping = true;
    try {
      while (queue.length > 0) {
        let servedOne = false;
        let nextTryAt = Infinity;
        if (exhaustedUntilMs > now()) nextTryAt = exhaustedUntilMs;
        for (const head of nextTryAt === Infinity ? candidates() : []) {
          const refused = head.client === undefined ? 0 : (refusedUntil.get(head.client) ?? 0);
          if (refused > now()) {
            nextTryAt = Math.min(nextTryAt, refused);
            continue;
          }
          let answer: BudgetGrant | BudgetRefusal;
          try {
            answer = await take(head.client);
          } catch {
            // The budget store failed: refusing is safer than sending without knowing the count.
            if (remove(head)) head.reject(new GatewayError(ErrorCode.INTERNAL_SERVER_ERROR, 'The rate budget store is unavailable'));
            servedOne = true;
            break;
          }
          if (answer.ok) {
            // The head may have left (deadline or abort) while we asked: the slot goes to its client's next waiter.
            const taker = queue.includes(head) ? head : queue.find((w) => w.client === head.client);
            if (taker && remove(taker)) taker.resolve(answer);
            // Nobody of that client is left: nothing will be sent, and settling now is the cheapest honest stamp.
            else void answer.settle();
            servedOne = true;
            break;
          }
          const nextSlotAt = now() + answer.retryAfterMs;
          nextTryAt = Math.min(nextTryAt, nextSlotAt);
          if (answer.reason === 'exhausted') {
            exhaustedUntilMs = nextSlotAt;
            for (const w of candidates()) refuseHopeless(w.client, nextSlotAt, 'Exotel request budget exhausted; no slot frees up before the queue deadline');
            break;
          }
          if (head.client !== undefined) refusedUntil.set(head.client, nextSlotAt);
          refuseHopeless(head.client, nextSlotAt, overShare(head.client));
        }
        if (servedOne || queue.length === 0) continue;
        await rest(Math.max(1, nextTryAt - now()));
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
    const answer = await take(undefined);
    if (!answer.ok) throw rateLimited('Background request refused: Exotel request budget exhausted', answer.retryAfterMs);
    return answer;
  }

  return {
    get waiting() {
      return queue.length;
    },
    limit,
    async clientShare(client) {
      const [l, status] = await Promise.all([limit(), budget.status(client)]);
      return { share: (l * weightOf(client)) / totalWeight(client), used: status.clientUsed };
    },
    pause(untilMs) {
      pausedUntilMs = Math.max(pausedUntilMs, untilMs);
    },
    async trySpare(client, keepShare) {
      if (queue.length > 0 || pausedUntilMs > now() || exhaustedUntilMs > now()) return undefined;
      const claim = await claimFor(client);
      const keep = Math.ceil((await limit()) * keepShare);
      // A claim with no share of its own is refused whenever fewer than `reserve` would be left: with
      // `keep` as that reserve, this takes only from a window with room to spare.
      const answer = await take(client, { client: client ?? 'gateway', share: 0, reserve: Math.max(keep, claim?.reserve ?? 0) });
      return answer.ok ? answer : undefined;
    },
    async acquire({ priority, client, signal, deadlineAtMs }) {
      signal?.throwIfAborted();
      if (priority === 'background') return acquireBackground();
      const deadlineMs = Math.min(deadlineAtMs ?? Infinity, now() + queueDeadlineMs);
      const refused = client === undefined ? 0 : (refusedUntil.get(client) ?? 0);
      const blockedUntil = Math.max(exhaustedUntilMs, pausedUntilMs, refused);
      if (blockedUntil > deadlineMs) {
        throw rateLimited(
          refused === blockedUntil ? overShare(client) : 'Exotel request budget exhausted; no slot frees up before the queue deadline',
          blockedUntil - now(),
        );
      }
      if (blockedUntil <= now() && !queue.some((w) => w.client === client)) {
        const answer = await take(client);
        if (answer.ok) return answer;
        if (now() + answer.retryAfterMs > deadlineMs) {
          const why = answer.reason === 'over-share' ? overShare(client) : 'Exotel request budget exhausted; no slot frees up before the queue deadline';
          throw rateLimited(why, answer.retryAfterMs);
        }
        if (answer.reason === 'exhausted') exhaustedUntilMs = now() + answer.retryAfterMs;
        else if (client !== undefined) refusedUntil.set(client, now() + answer.retryAfterMs);
      }
      return new Promise<RateBudgetHold>((resolve, reject) => {
        const timer = setTimeout(
          () => {
            if (remove(waiter)) {
              const next = Math.max(client === undefined ? 0 : (refusedUntil.get(client) ?? 0), exhaustedUntilMs);
              waiter.reject(rateLimited('Exotel request budget exhausted; waited until the queue deadline', next - now()));
            }
          },
          Math.max(0, deadlineMs - now()),
        );
        const onAbort = () => {
          if (remove(waiter)) waiter.reject(signal?.reason);
        };
        const waiter: Waiter = {
          client,
          deadlineMs,
          resolve,
          reject,
          cleanup: () => {
            clearTimeout(timer);
            signal?.removeEventListener('abort', onAbort);
          },
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        queue.push(waiter);
        // A client the pump is not waiting on may be served now, while the others wait for their slot.
        const blocked = exhaustedUntilMs > now() || (client !== undefined && (refusedUntil.get(client) ?? 0) > now());
        if (!blocked) wake?.();
        void pump();
      });
    },
  };
}
