/**
 * Idempotency keys of mutations (docs/schema-tour.md). A key is remembered for 24 h with a fingerprint of the
 * operation and its normalised input:
 * - same key, same input, first one finished → its result is replayed, with no second upstream request;
 * - same key, other input → IDEMPOTENCY_CONFLICT;
 * - same key while the first is still running → wait briefly for it, then IDEMPOTENCY_CONFLICT; if its
 *   replica died after sending, what its reference created replays once a callback has named it;
 * - the first ended with an unknown outcome (the POST may have reached Exotel) → never re-sent, because that
 *   could place a second call or SMS: a retry answers OUTCOME_UNKNOWN until the first request's own
 *   reference shows what it created (a connect's callback names its call), then replays that;
 * - the first failed in a way that certainly did not reach Exotel → the record is dropped, the key is free.
 */
import { createHash } from 'node:crypto';
import { assertNever } from '../assert-never.js';
import { ErrorCode, GatewayError, isGatewayError, STORAGE_RETRY_AFTER_SECONDS } from '../errors.js';
import type { Logger } from '../logger.js';
import type { IdempotencyStore } from '../storage/types.js';

export interface IdempotencyOptions {
  /** How long a key is remembered, ms (24 h, as the SDL promises). */
  ttlMs: number;
  /** How long a retry waits for a first request that is still running, ms. */
  pendingWaitMs: number;
  /** How often the waiting retry looks again, ms. */
  pollIntervalMs: number;
  /**
   * A pending record older than this, ms, belongs to a request that died mid-flight (a crashed replica):
   * its outcome is unknown. Longer than any upstream attempt plus the rate queue.
   */
  pendingStaleMs: number;
  now: () => number;
}

export const DEFAULT_IDEMPOTENCY_OPTIONS: IdempotencyOptions = {
  ttlMs: 24 * 60 * 60_000,
  pendingWaitMs: 2_000,
  pollIntervalMs: 50,
  pendingStaleMs: 5 * 60_000,
  now: () => Date.now(),
};

/** The logger methods a run writes its storage failures with; the request's logger fits. */
export type IdempotencyLogger = Pick<Logger, 'debug' | 'info' | 'warn'>;

export interface IdempotentRun {
  /** Mutation name, part of the fingerprint so one key cannot be reused across operations. */
  operation: string;
  /** The client's key; without one the mutation simply runs. */
  key: string | undefined;
  /** Namespace of the key: account and client, so two clients' keys never collide. */
  scope: string;
  /** The normalised input (what will be sent), fingerprinted. */
  input: unknown;
  /** What to tell the user to check when the outcome is unknown, e.g. "the call list". */
  checkHint: string;
  /**
   * The request's own reference, sent with it (a connect's StatusCallback URL carries it), and how to find
   * its outcome by it later: the object it created, or undefined while that is not known. Never sends.
   */
  ref?: {
    value: string;
    resolve: (ref: string) => Promise<unknown>;
    /** Told once the outcome is recorded as unknown, so the outcome can be looked for (best effort). */
    onUnknown?: (ref: string) => Promise<void>;
  };
  /** Where this run's storage failures are logged (the request's logger, for its request id); nowhere when unset. */
  logger?: IdempotencyLogger;
}

/** JSON with object keys sorted, so equal inputs hash equally whatever their key order. */
export function stableStringify(value: unknown): string {
  if (value === undefined) return 'null';
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableStringify(v)}`).join(',')}}`;
}

/** sha256 of the operation and its normalised input. */
export function fingerprint(operation: string, input: unknown): string {
  return createHash('sha256').update(operation).update('\0').update(stableStringify(input)).digest('base64url');
}

/** Runs mutations under idempotency keys. */
export interface Idempotency {
  /** Runs `send` at most once per key; answers its result and whether it was replayed. */
  run<T>(spec: IdempotentRun, send: () => Promise<T>): Promise<{ result: T; replayed: boolean }>;
}

/** Codes that only arise before a request is sent, or from Exotel refusing it. */
const NOT_SENT_CODES: ReadonlySet<string> = new Set([
  ErrorCode.BAD_USER_INPUT,
  ErrorCode.UNAUTHENTICATED,
  ErrorCode.FORBIDDEN,
  ErrorCode.NOT_FOUND,
  ErrorCode.RATE_LIMITED,
  ErrorCode.INSUFFICIENT_BALANCE,
  ErrorCode.UPSTREAM_UNAVAILABLE,
  ErrorCode.IDEMPOTENCY_CONFLICT,
  ErrorCode.STORAGE_UNAVAILABLE,
]);

/**
 * Errors after which the request certainly did not take effect at Exotel, so the key may be used again.
 * UPSTREAM_ERROR counts only with an HTTP status (Exotel refused it): without one it was an answer the
 * client could not read — the call or SMS may well exist.
 */
export function certainlyNotSent(err: unknown): boolean {
  if (!isGatewayError(err)) return false;
  if (NOT_SENT_CODES.has(err.code)) return true;
  return err.code === ErrorCode.UPSTREAM_ERROR && err.upstreamStatus !== undefined && err.upstreamStatus < 500;
}

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** The Sid of what a mutation created (a call, an SMS), for the log line that names it. */
const sidOf = (result: unknown) => (typeof result === 'object' && result !== null && 'sid' in result ? (result as { sid: unknown }).sid : undefined);

export function createIdempotency(store: IdempotencyStore, options: Partial<IdempotencyOptions> = {}): Idempotency {
  const o = { ...DEFAULT_IDEMPOTENCY_OPTIONS, ...options };
  const unknown = (spec: IdempotentRun) =>
    new GatewayError(
      ErrorCode.OUTCOME_UNKNOWN,
      `The first request with this idempotencyKey may or may not have reached Exotel, so it is not sent again. Check ${spec.checkHint} before retrying with a new idempotencyKey.`,
    );

  return {
    async run<T>(spec: IdempotentRun, send: () => Promise<T>) {
      if (spec.key === undefined) return { result: await send(), replayed: false };
      const storeKey = `idem:${spec.scope}:${spec.key}`;
      const fp = fingerprint(spec.operation, spec.input);
      const deadline = o.now() + o.pendingWaitMs;
      let lookedUpRef = false;

      // What a failed write of the record means depends on what was sent by then: each is logged in those words.
      const fields = { operation: spec.operation, idempotencyKey: spec.key };
      const log = spec.logger;
      // Nothing was sent this time: the record still reads as before, and a retry looks the result up again.
      const replayNotRecorded = (cause: unknown) => log?.debug({ ...fields, err: cause }, 'idempotency record not updated with the result replayed; a retry looks it up again');

      for (;;) {
        const begun = await store.begin(storeKey, fp, o.ttlMs, spec.ref?.value).catch((cause: unknown) => {
          // Shared storage (Redis) down: the key cannot be checked, and nothing has been sent yet, so the
          // same request is safe to retry once storage is back. The client is told so; nothing was lost.
          log?.info({ ...fields, reason: messageOf(cause) }, 'mutation refused with STORAGE_UNAVAILABLE: its idempotencyKey could not be checked, so nothing was sent to Exotel');
          throw new GatewayError(
            ErrorCode.STORAGE_UNAVAILABLE,
            "The idempotencyKey could not be checked because the gateway's shared storage is unavailable; nothing was sent to Exotel. Retry in a few seconds.",
            { cause, retryAfterSeconds: STORAGE_RETRY_AFTER_SECONDS },
          );
        });
        if (begun.created) break;
        const record = begun.record;
        if (record.fingerprint !== fp) {
          throw new GatewayError(ErrorCode.IDEMPOTENCY_CONFLICT, 'This idempotencyKey was already used with a different operation or input.', {
            field: 'input.idempotencyKey',
          });
        }
        switch (record.state) {
          case 'done':
            return { result: record.result as T, replayed: true };
          case 'unknown': {
            // Resolved later (docs/live-status.md, "Unknown outcomes"): the first request's own reference may have shown which object it
            // created (its callback arrived); then that is its result. Nothing is ever re-sent.
            const found = record.ref && spec.ref ? await spec.ref.resolve(record.ref).catch(() => undefined) : undefined;
            if (found === undefined || found === null) throw unknown(spec);
            await store.finish(storeKey, { state: 'done', fingerprint: fp, result: found }, o.ttlMs).catch(replayNotRecorded);
            return { result: found as T, replayed: true };
          }
          case 'pending': {
            // The first request's replica may have died after sending (it never finishes the record): once a
            // callback has named what its reference created, that is its result. Looked up once per retry.
            if (!lookedUpRef && record.ref && spec.ref) {
              lookedUpRef = true;
              const found = await spec.ref.resolve(record.ref).catch(() => undefined);
              if (found !== undefined && found !== null) {
                await store.finish(storeKey, { state: 'done', fingerprint: fp, result: found }, o.ttlMs).catch(replayNotRecorded);
                return { result: found as T, replayed: true };
              }
            }
            if (o.now() - record.startedAt > o.pendingStaleMs) throw unknown(spec);
            if (o.now() >= deadline) {
              throw new GatewayError(
                ErrorCode.IDEMPOTENCY_CONFLICT,
                'A request with this idempotencyKey is still in progress; retry in a few seconds to get its result.',
                { field: 'input.idempotencyKey' },
              );
            }
            await new Promise((resolve) => setTimeout(resolve, o.pollIntervalMs));
            continue;
          }
          default:
            return assertNever(record, 'idempotency record');
        }
      }

      // A failed write of the record must not hide what happened upstream: the client gets the real
      // answer, and a retry finds the record pending until it goes stale (then OUTCOME_UNKNOWN). A write
      // that got no answer from a stalled Redis may still land when it resumes: "not confirmed".
      let result: T;
      try {
        result = await send();
      } catch (err) {
        if (certainlyNotSent(err)) {
          await store.abandon(storeKey).catch((cause: unknown) =>
            log?.warn({ ...fields, err: cause }, 'idempotency key not confirmed freed after a mutation that was not sent: a retry with the same key may answer IDEMPOTENCY_CONFLICT, then OUTCOME_UNKNOWN, until the key expires'),
          );
        } else {
          const reason = messageOf(err);
          await store.finish(storeKey, { state: 'unknown', fingerprint: fp, reason, ...(spec.ref ? { ref: spec.ref.value } : {}) }, o.ttlMs).catch((cause: unknown) =>
            log?.warn({ ...fields, err: cause }, 'idempotency record of a mutation that may have reached Exotel not confirmed written: a retry with the same key is not sent again, but may answer IDEMPOTENCY_CONFLICT for some minutes before OUTCOME_UNKNOWN'),
          );
          if (spec.ref?.onUnknown) {
            await spec.ref.onUnknown(spec.ref.value).catch((cause: unknown) =>
              log?.warn({ ...fields, err: cause }, 'a mutation that may have reached Exotel was not listed to be looked for: what it created is found only if its callback arrives'),
            );
          }
        }
        throw err;
      }
      await store.finish(storeKey, { state: 'done', fingerprint: fp, result }, o.ttlMs).catch((cause: unknown) =>
        log?.warn({ ...fields, sid: sidOf(result), err: cause }, 'mutation sent to Exotel but its idempotency record not confirmed written: a retry with the same key is not sent again, but may answer IDEMPOTENCY_CONFLICT or OUTCOME_UNKNOWN instead of this result'),
      );
      return { result, replayed: false };
    },
  };
}
