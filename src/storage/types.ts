/**
 * The small interfaces behind every piece of shared state. Each has an in-memory implementation
 * (default, one process) and a Redis one (REDIS_URL, many replicas); one contract suite in
 * test/contract/ runs against both.
 */
import type { CallStatus, IsoDateTime, SmsStatus } from '../exotel/types.js';

/** Where a status event came from (GraphQL EventSource). */
export type EventSource = 'WEBHOOK' | 'POLL' | 'API' | 'SNAPSHOT';

/** One call status transition the gateway has seen. */
export interface CallEventRecord {
  kind: 'call';
  /** Monotonic, sortable across replicas (Redis stream id "ms-seq"; memory uses the same shape). */
  id: string;
  accountSid: string;
  callSid: string;
  status: CallStatus;
  at: IsoDateTime;
  source: EventSource;
  /** False when the event was a duplicate or went backwards: kept in history, not published as a change. */
  forward: boolean;
  /** Extra fields from the callback (From, To, Direction, CustomField, durations…), already parsed. */
  data?: Record<string, unknown>;
}

export interface SmsEventRecord {
  kind: 'sms';
  id: string;
  accountSid: string;
  smsSid: string;
  status: SmsStatus;
  at: IsoDateTime;
  source: EventSource;
  forward: boolean;
  data?: Record<string, unknown>;
}

export interface IncomingCallRecord {
  kind: 'incoming';
  id: string;
  accountSid: string;
  callSid: string;
  at: IsoDateTime;
  source: EventSource;
  forward: boolean;
  data?: Record<string, unknown>;
}

export type EventRecord = CallEventRecord | SmsEventRecord | IncomingCallRecord;
/** An event before the log gives it an id. */
export type NewEvent = DistributiveOmit<EventRecord, 'id'>;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** Append-only log of events with replay and live fan-in from every replica. */
export interface EventLog {
  /** Stores the event durably (for this backend) and returns it with its id; rejects if it could not be stored. */
  append(event: NewEvent): Promise<EventRecord>;
  /** Events with id > afterId, oldest first, up to `limit`. Unknown/expired afterId → from the oldest kept. */
  readAfter(afterId: string | undefined, limit?: number): Promise<EventRecord[]>;
  /** Every event appended by any replica, in log order, from now on. Returns an unsubscribe function. */
  subscribe(listener: (event: EventRecord) => void): () => void;
  /** History of one call, oldest first. */
  callHistory(accountSid: string, callSid: string): Promise<CallEventRecord[]>;
  /** The id of the newest event, or undefined when the log is empty. */
  lastId(): Promise<string | undefined>;
  close(): Promise<void>;
}

/** First-writer-wins claims with expiry (dedup of callbacks; SET NX PX). */
export interface DedupStore {
  /** True when this caller is the first to claim `key` within `ttlMs`. */
  claim(key: string, ttlMs: number): Promise<boolean>;
  /** Forget a claim (used when storing the claimed event failed, so a retry is not lost). */
  release(key: string): Promise<void>;
}

/** Forward-only per-call state (queued < ringing < in-progress < terminal), atomic across replicas. */
export interface CallStateStore {
  /**
   * Moves `key` to `rank` if that is strictly forward; answers whether it moved and the previous rank
   * (-1 when unknown).
   */
  advance(key: string, rank: number, ttlMs: number): Promise<{ moved: boolean; previous: number }>;
  get(key: string): Promise<number | undefined>;
}

export type IdempotencyRecord =
  | { state: 'pending'; fingerprint: string; startedAt: number }
  | { state: 'done'; fingerprint: string; result: unknown }
  /** `ref`: the request's own reference (in its callback URL), by which a later retry can find its outcome. */
  | { state: 'unknown'; fingerprint: string; reason: string; ref?: string };

/** Idempotency keys of mutations, kept 24 h. */
export interface IdempotencyStore {
  /** Creates a pending record if none exists; otherwise returns the existing one untouched. */
  begin(key: string, fingerprint: string, ttlMs: number): Promise<{ created: true } | { created: false; record: IdempotencyRecord }>;
  /** Replaces the record (done or unknown). */
  finish(key: string, record: IdempotencyRecord, ttlMs: number): Promise<void>;
  /** Removes a pending record after a failure that certainly did not reach Exotel. */
  abandon(key: string): Promise<void>;
}

/** A slot taken with {@link RateBudget.tryHold}: counts as in the window until settled, then from settle time. */
export interface RateBudgetHold {
  /**
   * The request is known to have arrived (its answer or failure came back): re-stamps its slot with now.
   * Never rejects (a failed settle leaves the slot to expire as if it had arrived `maxHoldMs` after the take);
   * calls after the first do nothing.
   */
  settle(): Promise<void>;
}

/** Rolling-window request budget for one Exotel account. */
export interface RateBudget {
  /** Takes one request from the budget now, counted at now; or says how long until one frees up. */
  tryTake(): Promise<{ ok: true } | { ok: false; retryAfterMs: number }>;
  /**
   * Takes one request whose arrival upstream is not known yet: the slot counts as in the window from now
   * until `settle()` re-stamps it with the settle time, or, if never settled (the process died), as if taken
   * `maxHoldMs` from now. Refusals are as for `tryTake`.
   */
  tryHold(maxHoldMs: number): Promise<({ ok: true } & RateBudgetHold) | { ok: false; retryAfterMs: number }>;
  /** Requests left in the current window and when the window resets (epoch ms). */
  status(): Promise<{ limit: number; remaining: number; resetsAtMs: number }>;
}

/** A lease that makes fleet-wide background work run on one replica at a time. */
export interface Lease {
  /** True when this holder owns (or renewed) the lease named `name` for `ttlMs`. */
  acquire(name: string, ttlMs: number): Promise<boolean>;
  release(name: string): Promise<void>;
}

/** Key-value cache with TTLs (keyv underneath) and countable hits and misses. */
export interface Cache {
  get<T>(key: string): Promise<T | undefined>;
  getMany<T>(keys: string[]): Promise<Array<T | undefined>>;
  set<T>(key: string, value: T, ttlMs: number): Promise<void>;
  delete(key: string): Promise<void>;
  readonly stats: { hits: number; misses: number };
}

/**
 * Named sets of ids scored by a time (epoch ms), shared by every replica: the live pipeline keeps open
 * calls/SMS by the time they are due for reconciliation, and calls with live subscribers by how long the
 * subscription is known to last. Memory and Redis (ZSET) implementations in open-items.ts.
 */
export interface OpenItems {
  /** Adds `id` to `set` or moves it to `atMs`; with `onlyIfAbsent`, an id already there keeps its time. */
  put(set: string, id: string, atMs: number, options?: { onlyIfAbsent?: boolean }): Promise<void>;
  /** Removes `id` from `set` (no error when absent). */
  remove(set: string, id: string): Promise<void>;
  /** Ids with a time ≤ `atMs`, earliest first, up to `limit`. */
  dueBy(set: string, atMs: number, limit: number): Promise<string[]>;
  /** Ids with a time ≥ `atMs`, earliest first, up to `limit`. */
  laterThan(set: string, atMs: number, limit: number): Promise<string[]>;
  /** Removes every id with a time < `atMs`. */
  pruneBefore(set: string, atMs: number): Promise<void>;
  close(): Promise<void>;
}

/** Everything shared, built once per process by createStorage(). */
export interface Storage {
  kind: 'memory' | 'redis';
  cache: Cache;
  events: EventLog;
  dedup: DedupStore;
  callState: CallStateStore;
  idempotency: IdempotencyStore;
  lease: Lease;
  /** Open calls/SMS and watched calls of the live pipeline; optional until every backend builds one. */
  openItems?: OpenItems;
  /** A rolling-window budget named `name` (e.g. the Exotel account), shared by every replica on Redis. */
  rateBudget(name: string, limit: number, windowMs: number): RateBudget;
  /** True when the backend answers (readiness). */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

export type { SmsStatus };
