/**
 * The one way the gateway talks to Exotel: auth, rate budget, timeouts, retries and error mapping.
 *
 * Retry rules (docs/design-choices.md, "Retries"; Exotel's rate-limit advice in docs/exotel-fidelity.md):
 * - Every attempt, retries included, first takes one request from the account budget (FIFO queue, deadline)
 *   and settles it once its answer (or connection failure) is back, so the budget counts it when it is known
 *   to have arrived (Exotel counts on arrival, not when we send).
 * - 429 with Retry-After: the whole account's queue holds off until then, and so does it when an answer
 *   says `X-RateLimit-Remaining: 0` (until `X-RateLimit-Reset`).
 * - 429: Exotel certainly did not process the request, so GETs AND POSTs are tried again after Retry-After
 *   (seconds or HTTP date), else after full-jitter backoff from `backoffBaseMs`; at most `maxAttempts429`
 *   tries, and never a single wait longer than `maxRetryWaitMs` — past either, RATE_LIMITED with
 *   retryAfterSeconds so the caller (not a held-open request) does the waiting.
 * - 5xx, timeout, network error on a GET: tried again with the same backoff, up to `maxAttemptsGet` tries,
 *   while the retry budget (≤ `getRetryRatio` extra requests per window) allows; then UPSTREAM_UNAVAILABLE.
 * - 5xx, timeout, connection reset on a POST: never tried again, since Exotel may have placed the call or
 *   sent the SMS → OUTCOME_UNKNOWN. Only failures that certainly happened before anything was sent
 *   (connection refused, DNS, connect timeout) are UPSTREAM_UNAVAILABLE, and even those are not retried
 *   here: the caller's idempotency record decides.
 * - 2xx on a POST with an answer that cannot be read (not JSON, no Sid): OUTCOME_UNKNOWN, since Exotel took it.
 */
import { assertNever } from '../assert-never.js';
import { ErrorCode, fromExotelResponse, GatewayError, parseExotelError } from '../errors.js';
import { scrub } from '../scrub.js';
import { createBudgetQueue, type BudgetQueue } from './budget-queue.js';
import type { ResolvedExotelClientOptions } from './options.js';
import { createRetryBudget, fullJitterBackoffMs, parseRetryAfterMs, sleep } from './retry.js';
import type { RequestOptions, UpstreamRequestEvent } from './types.js';
import { noteExotelAttempt, traceBudgetWait, traceExotelRequest } from '../tracing/spans.js';

/** One logical request to Exotel (attempts are the http layer's business). */
export interface UpstreamCall {
  endpoint: UpstreamRequestEvent['endpoint'];
  method: 'GET' | 'POST';
  /** Path under the host, e.g. `/v1/Accounts/{sid}/Calls/{Sid}.json`. */
  path: string;
  query?: URLSearchParams;
  /** Form body of a POST (application/x-www-form-urlencoded). */
  form?: URLSearchParams;
  /** Resolve to null on 404 (lookups of unknown Sids) instead of throwing NOT_FOUND. */
  notFoundAsNull?: boolean;
}

export interface ExotelHttp {
  /** Sends `call` and resolves with the parsed JSON body (or null on 404 when asked). */
  request(call: UpstreamCall, options?: RequestOptions): Promise<unknown>;
  /** `/v1/Accounts/{AccountSid}` — the prefix of every v1 path. */
  readonly v1: string;
  readonly queue: BudgetQueue;
}

// Errors raised before a single byte left this process: the request certainly did not reach Exotel.
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
]);

type Outcome =
  | { kind: 'response'; status: number; body: string; retryAfter: string | null; rateLimitRemaining: string | null; rateLimitReset: string | null }
  | { kind: 'timeout' }
  | { kind: 'aborted' }
  | { kind: 'network'; code: string; sent: boolean };

/** The http layer for one account: every ExotelApi method goes through its `request`. */
export function createExotelHttp(options: ResolvedExotelClientOptions): ExotelHttp {
  const { budget, logger, clock, random } = options;
  const authorization = `Basic ${Buffer.from(`${options.apiKey}:${options.apiToken}`).toString('base64')}`;
  const secrets = [options.apiToken, options.apiKey, authorization.slice(6)].filter((s) => s.length >= 4);
  const queue = createBudgetQueue({
    budget,
    queueDeadlineMs: options.queueDeadlineMs,
    backgroundShare: options.backgroundShare,
    attemptTimeoutMs: options.timeoutMs,
    weights: options.clientWeights,
    reserveShare: options.reserveShare,
    now: () => clock.now(),
  });
  const retryBudget = createRetryBudget({
    ratio: options.getRetryRatio,
    minPerWindow: options.getRetryMinPerWindow,
    windowMs: options.retryBudgetWindowMs,
    now: () => clock.now(),
  });

  // Spans name the host only: the base URL could carry credentials, its paths carry the account Sid.
  const host = URL.canParse(options.baseUrl) ? new URL(options.baseUrl).hostname : 'unknown';

  /** Exotel's own words, minus anything that could be a credential or a webhook token echoed back. */
  const redact = (text: string) => options.scrub(scrub(text, secrets));

  async function attempt(call: UpstreamCall, signal: AbortSignal | undefined): Promise<Outcome> {
    const url = new URL(options.baseUrl + call.path);
    if (call.query) url.search = call.query.toString();
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Error('timeout')), options.timeoutMs);
    const onAbort = () => controller.abort(new Error('aborted'));
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const response = await fetch(url, {
        method: call.method,
        headers: {
          authorization,
          accept: 'application/json',
          ...(call.form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
        },
        body: call.form?.toString(),
        signal: controller.signal,
        redirect: 'manual', // a redirect would be followed with the Authorization header to who knows where
      });
      // The body is read under the same timer: a server that sends headers then stalls is still a timeout.
      const body = await response.text();
      return {
        kind: 'response',
        status: response.status,
        body,
        retryAfter: response.headers.get('retry-after'),
        rateLimitRemaining: response.headers.get('x-ratelimit-remaining'),
        rateLimitReset: response.headers.get('x-ratelimit-reset'),
      };
    } catch (error) {
      if (controller.signal.aborted) return signal?.aborted ? { kind: 'aborted' } : { kind: 'timeout' };
      const code = errorCode(error);
      return { kind: 'network', code, sent: !NOT_SENT_CODES.has(code) };
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  function report(call: UpstreamCall, outcome: Outcome, attemptNo: number, startedMs: number): void {
    const status: UpstreamRequestEvent['status'] =
      outcome.kind === 'response' ? outcome.status : outcome.kind === 'timeout' ? 'timeout' : 'network-error';
    noteExotelAttempt(attemptNo, status, clock.now() - startedMs);
    try {
      options.onRequest?.({ endpoint: call.endpoint, method: call.method, status, attempt: attemptNo, durationMs: clock.now() - startedMs });
    } catch (error) {
      // A broken metrics hook must not turn a good answer into a failure.
      logger.warn({ endpoint: call.endpoint, err: String(error) }, 'Exotel onRequest hook threw');
    }
  }

  async function request(call: UpstreamCall, requestOptions: RequestOptions = {}): Promise<unknown> {
    try {
      return await traceExotelRequest({ endpoint: call.endpoint, method: call.method, host, priority: requestOptions.priority ?? 'foreground' }, () => send(call, requestOptions));
    } catch (error) {
      if (error instanceof GatewayError) throw error;
      // The caller's signal aborted while waiting for budget or between tries: nothing is in flight.
      if (requestOptions.signal?.aborted) throw new GatewayError(ErrorCode.UPSTREAM_UNAVAILABLE, 'The Exotel request was cancelled before it was sent');
      throw new GatewayError(ErrorCode.INTERNAL_SERVER_ERROR, `The Exotel client failed on ${call.endpoint}`, { cause: error });
    }
  }

  async function send(call: UpstreamCall, requestOptions: RequestOptions): Promise<unknown> {
    const priority = requestOptions.priority ?? 'foreground';
    const signal = requestOptions.signal;
    const isPost = call.method === 'POST';
    let tries429 = 0;
    let triesTransient = 0;
    retryBudget.recordAttempt();
    for (let attemptNo = 1; ; attemptNo++) {
      // A ticket was taken before the request (its wait is traced where it was taken).
      const hold =
        attemptNo === 1 && requestOptions.ticket
          ? requestOptions.ticket
          : await traceBudgetWait(priority, attemptNo, () => queue.acquire({ priority, client: requestOptions.client, signal }));
      const startedMs = clock.now();
      let outcome: Outcome;
      try {
        outcome = await attempt(call, signal);
      } catch (error) {
        void hold.settle();
        throw error;
      }
      // From here the budget counts the request at this time rather than as pending. Not awaited: until the
      // settle lands the slot simply stays pending, which only errs on the safe side.
      if (arrivalKnown(outcome)) void hold.settle();
      report(call, outcome, attemptNo, startedMs);
      const log = { endpoint: call.endpoint, method: call.method, attempt: attemptNo };

      if (outcome.kind === 'response') {
        const { status } = outcome;
        // Exotel's own count, when it sends one: nothing left until the reset → nobody asks before it.
        const exhaustedUntil = exhaustedUntilMs(outcome, clock.now());
        if (exhaustedUntil !== undefined) queue.pause(exhaustedUntil);
        if (status >= 200 && status < 300) return parseJson(outcome.body, call, status);
        if (status === 404 && call.notFoundAsNull) return null;
        if (status === 429) {
          tries429++;
          const hinted = parseRetryAfterMs(outcome.retryAfter, clock.now());
          const waitMs = hinted ?? fullJitterBackoffMs(tries429, options.backoffBaseMs, options.backoffMaxMs, random);
          // When Exotel says how long, not only this request waits: every request of this account holds off
          // until then, so one 429 does not become a burst of them. (A backoff of our own is this request's.)
          if (hinted !== undefined) queue.pause(clock.now() + hinted);
          if (tries429 >= options.maxAttempts429 || waitMs > options.maxRetryWaitMs) {
            logger.warn({ ...log, status, waitMs }, 'Exotel rate limit: giving up');
            throw fromExotelResponse(429, redact(outcome.body), Math.max(1, Math.ceil(waitMs / 1000)));
          }
          logger.debug({ ...log, status, waitMs }, 'Exotel rate limit: waiting before the next try');
          await sleep(waitMs, signal);
          continue;
        }
        if (status >= 500) {
          if (isPost) {
            // Still OUTCOME_UNKNOWN (Exotel may have acted), but with Exotel's own words and code (e.g. 35008).
            const said = parseExotelError(redact(outcome.body));
            throw outcomeUnknown(`Exotel answered HTTP ${status}${said.message ? `: ${said.message}` : ''}`, status, said.code);
          }
          if (await retryTransient(++triesTransient, log, status, signal)) continue;
        }
        throw fromExotelResponse(status, redact(outcome.body));
      }

      if (outcome.kind === 'aborted') {
        if (isPost) throw outcomeUnknown('the request was cancelled while in flight');
        throw new GatewayError(ErrorCode.UPSTREAM_UNAVAILABLE, 'The Exotel request was cancelled');
      }
      if (outcome.kind === 'network' && !outcome.sent) {
        // Certainly not delivered, so safe for POSTs too; a GET may still try again.
        if (!isPost && (await retryTransient(++triesTransient, log, outcome.code, signal))) continue;
        throw new GatewayError(ErrorCode.UPSTREAM_UNAVAILABLE, `Exotel is unreachable (${outcome.code}); the request was not sent`);
      }
      const what = outcome.kind === 'timeout' ? `no answer within ${options.timeoutMs} ms` : `the connection failed (${outcome.code})`;
      if (isPost) throw outcomeUnknown(what);
      if (await retryTransient(++triesTransient, log, outcome.kind === 'timeout' ? 'timeout' : outcome.code, signal)) continue;
      throw new GatewayError(ErrorCode.UPSTREAM_UNAVAILABLE, `Exotel is unavailable: ${what}`);
    }
  }

  /** Waits and answers true when a failed GET may be tried again. */
  async function retryTransient(tries: number, log: Record<string, unknown>, why: number | string, signal?: AbortSignal): Promise<boolean> {
    if (tries >= options.maxAttemptsGet) return false;
    if (!retryBudget.tryRetry()) {
      logger.warn({ ...log, why }, 'Exotel GET failed; retry budget spent, not retrying');
      return false;
    }
    const waitMs = fullJitterBackoffMs(tries, options.backoffBaseMs, options.backoffMaxMs, random);
    logger.debug({ ...log, why, waitMs }, 'Exotel GET failed; retrying');
    await sleep(waitMs, signal);
    return true;
  }

  return { request, v1: `/v1/Accounts/${encodeURIComponent(options.accountSid)}`, queue };
}

/**
 * When Exotel says the account has no requests left (`X-RateLimit-Remaining: 0`), the time its
 * `X-RateLimit-Reset` (epoch seconds) names, if that is in the next ten minutes; else undefined. Headers
 * that are absent or malformed say nothing (Exotel's official pages do not promise them).
 */
function exhaustedUntilMs(outcome: { rateLimitRemaining: string | null; rateLimitReset: string | null }, nowMs: number): number | undefined {
  if (outcome.rateLimitRemaining?.trim() !== '0' || !outcome.rateLimitReset) return undefined;
  const resetMs = Number(outcome.rateLimitReset.trim()) * 1000;
  if (!Number.isFinite(resetMs) || resetMs <= nowMs || resetMs - nowMs > 600_000) return undefined;
  return resetMs;
}

/**
 * Whether the attempt's request has certainly reached Exotel by now, if it ever will: an answer came back, or
 * the connection failed (refused: never sent; reset: the other side is gone). After a timeout or a cancel we
 * only closed our end, and request bytes already in Exotel's socket buffer may still be read (and counted)
 * later, so that hold is left to lapse at take + maxHoldMs (attempt timeout plus a margin) instead.
 */
function arrivalKnown(outcome: Outcome): boolean {
  switch (outcome.kind) {
    case 'response':
    case 'network':
      return true;
    case 'timeout':
    case 'aborted':
      return false;
    default:
      return assertNever(outcome, 'attempt outcome');
  }
}

function outcomeUnknown(what: string, upstreamStatus?: number, exotelCode?: number): GatewayError {
  return new GatewayError(
    ErrorCode.OUTCOME_UNKNOWN,
    `The request may have reached Exotel (${what}); it was not retried. Check its status before trying again.`,
    { ...(upstreamStatus === undefined ? {} : { upstreamStatus }), ...(exotelCode === undefined ? {} : { exotelCode }) },
  );
}

/**
 * The JSON of a 2xx answer. One that is not JSON (XML, a proxy's HTML page) is UPSTREAM_ERROR for a GET;
 * for a POST Exotel took the request (the call may be placed, the SMS sent), so it is OUTCOME_UNKNOWN.
 */
function parseJson(body: string, call: UpstreamCall, status: number): unknown {
  try {
    return JSON.parse(body);
  } catch {
    const what = `Exotel answered ${call.endpoint} with something that is not JSON`;
    if (call.method === 'POST') throw outcomeUnknown(`${what}, HTTP ${status}`, status);
    throw new GatewayError(ErrorCode.UPSTREAM_ERROR, what);
  }
}

/**
 * Reads the 2xx answer of a POST with `read`. Exotel took the request, so an answer that does not hold
 * what it created (no Sid, an unknown status: UPSTREAM_ERROR from parse.ts) leaves the outcome unknown:
 * OUTCOME_UNKNOWN, which is never re-sent, rather than UPSTREAM_ERROR, which says Exotel refused it.
 */
export function readAcceptedAnswer<T>(endpoint: UpstreamCall['endpoint'], read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (error instanceof GatewayError && error.code === ErrorCode.UPSTREAM_ERROR) {
      throw outcomeUnknown(`Exotel accepted ${endpoint}, but its answer could not be read: ${error.message}`);
    }
    throw error;
  }
}

/** The system error code behind a fetch failure (undici wraps it in `cause`). */
function errorCode(error: unknown): string {
  let e: unknown = error;
  for (let i = 0; i < 4 && e && typeof e === 'object'; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return 'NETWORK_ERROR';
}
