/**
 * Passthru and Connect-applet requests answered 200 although their one atomic storage step failed (Redis
 * down, or stalled for that request), stored later from here. The 200 is not negotiable — a non-200 sends
 * the caller down the flow's error branch — and Exotel never sends the request again, so without this the
 * call would never be announced on `incomingCalls` and its event would be lost.
 *
 * Each request is retried in this process, in the background, with the same step: storing it again is
 * safe, since the step deduplicates (a step that timed out but did run — a stalled Redis that resumed — makes
 * the retry a repeat: kept in the history, never announced twice). Retries back off (base × 2ⁿ, capped)
 * for a bounded number of attempts, about a minute with the defaults (LIVE_DEFAULTS), then the request is
 * dropped. At most `maxPending` requests wait, so a long outage cannot grow memory without bound: over it
 * the oldest waiting one is dropped. They live in memory only: a replica that dies loses its pending
 * requests, and stop() gives each one last attempt, bounded in time, then logs what it drops in one line.
 *
 * A long outage can drop thousands, each counted (onRetry) and logged with its CallSid: the first of an
 * outage at error, the others at info, and their count at error when the outage ends — a request stored
 * again, none left waiting, or stop().
 */
import { createOutageLog } from '../outage-log.js';
import type { Logger } from '../logger.js';
import type { IncomingCallRequest } from './incoming.js';

/** Why a request was given up: every attempt failed, too many were waiting, or the gateway stopped. */
export type IncomingDropReason = 'attempts' | 'overflow' | 'shutdown';

/** What became of one background retry, in the words of the metrics (gateway_webhook_retries_total and the rest). */
export type IncomingRetryObserver = (event: { outcome: 'retried' } | { outcome: 'stored' } | { outcome: 'dropped'; reason: IncomingDropReason }) => void;

export interface IncomingRetryOptions {
  /** Stores one request (ingestIncomingCall): the cache read, the atomic step, the cache write. */
  store(request: IncomingCallRequest): Promise<unknown>;
  logger: Logger;
  /** Wait before the first retry, ms; each later wait doubles. */
  baseDelayMs: number;
  /** Longest wait between two retries, ms. */
  maxDelayMs: number;
  /** Retries of one request before it is dropped. */
  attempts: number;
  /** Requests waiting at most; over it the oldest waiting one is dropped. */
  maxPending: number;
  /** How long stop() waits for the last attempts, ms: longer than one attempt may take (incomingRetryStopMs). */
  stopTimeoutMs: number;
  /** Every retry made, request stored and request dropped (metrics). */
  onRetry?: IncomingRetryObserver;
}

export interface IncomingRetries {
  /** Takes a request whose step failed after its 200; it is retried from now on. */
  add(request: IncomingCallRequest): void;
  /** Requests waiting for a retry or in the middle of one. */
  readonly pending: number;
  /**
   * Gives every pending request one last attempt (all at once, for at most stopTimeoutMs) and drops, with
   * one log line, those not stored by then; requests added later are dropped at once. Safe to call twice.
   */
  stop(): Promise<void>;
}

interface Entry {
  request: IncomingCallRequest;
  /** Retries made so far. */
  retries: number;
  timer?: NodeJS.Timeout;
  /** The attempt under way: resolves true once the request is stored. */
  running?: Promise<boolean>;
}

export function createIncomingRetries(options: IncomingRetryOptions): IncomingRetries {
  const { logger, onRetry } = options;
  // Oldest first (a Set iterates in insertion order): the one dropped on overflow is the first waiting one.
  const pending = new Set<Entry>();
  let stopping: Promise<void> | undefined;
  const drops = createOutageLog(logger, {
    level: 'error',
    repeatLevel: 'info',
    until: 'one is stored again or none waits, then counted in one error line',
    recoveredLevel: 'error',
    recoveredMessage: 'incoming calls dropped while storage was down: answered 200 but not confirmed stored (a stalled Redis that resumes may still store them), not announced on incomingCalls; each is logged with its callSid',
  });
  const dropped = (request: IncomingCallRequest, reason: IncomingDropReason, why: string) => {
    onRetry?.({ outcome: 'dropped', reason });
    drops.failed({ callSid: request.callSid, reason }, `incoming call dropped: ${why}; it was answered 200 but is not confirmed stored (a stalled Redis that resumes may still store it) and not announced on incomingCalls`);
  };

  const attempt = (entry: Entry): Promise<boolean> => {
    entry.retries += 1;
    onRetry?.({ outcome: 'retried' });
    return options.store(entry.request).then(
      () => true,
      (err: unknown) => {
        logger.debug({ err, callSid: entry.request.callSid, retries: entry.retries }, 'incoming call still not stored; retrying later');
        return false;
      },
    );
  };

  const stored = (entry: Entry) => {
    pending.delete(entry);
    drops.recovered();
    onRetry?.({ outcome: 'stored' });
    logger.debug({ callSid: entry.request.callSid, retries: entry.retries }, 'incoming call stored by a background retry');
  };

  const drop = (entry: Entry, reason: Exclude<IncomingDropReason, 'shutdown'>) => {
    pending.delete(entry);
    clearTimeout(entry.timer);
    dropped(entry.request, reason, reason === 'attempts' ? `storage did not answer ${entry.retries} retries` : `more than ${options.maxPending} incoming calls were waiting for storage`);
    if (pending.size === 0) drops.recovered();
  };

  const schedule = (entry: Entry) => {
    const delayMs = Math.min(options.baseDelayMs * 2 ** entry.retries, options.maxDelayMs);
    // Unref'd: a pending retry never holds the process open; stop() deals with what is left.
    entry.timer = setTimeout(() => void run(entry), delayMs).unref();
  };

  async function run(entry: Entry): Promise<void> {
    entry.timer = undefined;
    entry.running = attempt(entry);
    const ok = await entry.running;
    entry.running = undefined;
    // Once stopping, stop() settles every entry, this one included.
    if (stopping || !pending.has(entry)) return;
    if (ok) stored(entry);
    else if (entry.retries >= options.attempts) drop(entry, 'attempts');
    else schedule(entry);
  }

  async function stop(): Promise<void> {
    // The drops before shutdown are counted apart from those of the shutdown, logged below.
    drops.recovered();
    const entries = [...pending];
    for (const entry of entries) clearTimeout(entry.timer);
    const settled = new Set<Entry>();
    const last = entries.map((entry) =>
      (entry.running ?? attempt(entry)).then((ok) => {
        settled.add(entry);
        // Stored after the wait below gave it up: it was logged and counted as dropped then.
        if (ok && pending.has(entry)) stored(entry);
      }),
    );
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(last), new Promise((resolve) => (timer = setTimeout(resolve, options.stopTimeoutMs)))]);
    clearTimeout(timer);
    const dropped = entries.filter((entry) => pending.has(entry));
    for (const entry of dropped) {
      pending.delete(entry);
      onRetry?.({ outcome: 'dropped', reason: 'shutdown' });
    }
    if (dropped.length > 0) {
      const unsettled = dropped.filter((entry) => !settled.has(entry)).length;
      // "Not confirmed": an attempt that timed out on a stalled Redis waits in its socket and runs if it
      // resumes. A call's Passthru requests (one per applet) are named by its callSid once; count counts requests.
      logger.error(
        { count: dropped.length, callSids: [...new Set(dropped.map((entry) => entry.request.callSid))], stillTrying: unsettled },
        'incoming calls dropped at shutdown: answered 200 but not confirmed stored; storage did not answer their last attempt (a stalled Redis that resumes may still store them)',
      );
    } else if (entries.length > 0) {
      logger.info({ count: entries.length }, 'incoming calls waiting for storage were stored at shutdown');
    }
  }

  return {
    add(request) {
      const entry: Entry = { request, retries: 0 };
      if (stopping) {
        dropped(request, 'shutdown', 'the gateway is stopping');
        return;
      }
      if (pending.size >= options.maxPending) {
        // The oldest waiting one; one in the middle of an attempt finishes it first. When every one is (a stall
        // with more than maxPending requests within one command timeout), the new one is the one dropped.
        let oldest: Entry | undefined;
        for (const e of pending) {
          if (e.running) continue;
          oldest = e;
          break;
        }
        if (!oldest) {
          pending.add(entry);
          drop(entry, 'overflow');
          return;
        }
        drop(oldest, 'overflow');
      }
      pending.add(entry);
      schedule(entry);
    },
    get pending() {
      return pending.size;
    },
    stop: () => (stopping ??= stop()),
  };
}
