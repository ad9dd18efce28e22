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
/** An event whose `forward` flag the atomic status step decides ({@link EventLog.appendStatus}). */
export type StatusEvent = DistributiveOmit<EventRecord, 'id' | 'forward'>;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** The subjects whose events are kept in a history of their own, by Sid. */
export type HistorySubject = 'call' | 'sms';

/** The kind of thing a status belongs to: a call, an SMS, or the announcement of an incoming call. */
export type StatusSubject = EventRecord['kind'];

/**
 * What {@link EventLog.appendStatus} is asked to store. The subject is the event's kind and Sid; its
 * status is the event's status (`incoming` for an incoming-call announcement).
 */
export interface StatusAppend {
  event: StatusEvent;
  /** Forward-only rank of the status: forward means strictly above the highest rank stored so far. */
  rank: number;
  /**
   * Keep a status that is not forward (a repeat, a backwards or an equal-rank status) in the log and the
   * call's history with `forward: false`; when false nothing is stored for it.
   */
  keepNotForward: boolean;
  /** How long the subject's state (its rank and the statuses stored) is remembered after the last change, ms. */
  stateTtlMs: number;
  /** The reference of the request that created the subject (its callback URL carried it): ref → Sid. */
  requestRef?: { ref: string; ttlMs: number };
  /** Open-item bookkeeping done in the same step (OpenItems sets), only when the status is forward. */
  open?: {
    /** Add the Sid to this set at `atMs`, keeping an existing time (a call first heard of by a callback). */
    add?: { set: string; atMs: number };
    /** Remove the Sid from these sets (a final status). */
    remove?: string[];
  };
  /**
   * A mark kept on the subject's state, whether or not the status is forward, for as long as the state
   * (a call said to be outgoing). A later step's `unlessMarked` reads it.
   */
  mark?: string;
  /**
   * A second subject's step, decided and stored in the same atomic step right after this one (an incoming
   * call's announcement with the call event of the request that announces it). It carries no `also` or
   * `withHistory` of its own.
   */
  also?: StatusAppend;
  /**
   * Only on a second step (`also`): skipped, nothing of it stored, when the first step's subject carries
   * this mark once the first step is done (an announcement of a call some request said is outgoing).
   */
  unlessMarked?: string;
  /** Also answer the call's history as it is after the step (a call event's subject), read in the same step. */
  withHistory?: boolean;
}

/** Why a status was not forward. */
export type NotForwardReason = 'duplicate' | 'backwards';

/** What {@link EventLog.appendStatus} decided and stored for one subject. */
export type StatusStepResult =
  | { forward: true; event: EventRecord; previousRank: number }
  /** `event` is set when it was kept (keepNotForward), undefined when nothing was stored. */
  | { forward: false; reason: NotForwardReason; event: EventRecord | undefined; previousRank: number };

/**
 * What {@link EventLog.appendStatus} decided and stored, with the second step's result (absent when it was
 * skipped by its `unlessMarked`) and the history when asked.
 */
export type StatusAppendResult = StatusStepResult & { also?: StatusStepResult; history?: CallEventRecord[] };

/** Append-only log of events with replay and live fan-in from every replica. */
export interface EventLog {
  /** Stores the event durably (for this backend) and returns it with its id; rejects if it could not be stored. */
  append(event: NewEvent): Promise<EventRecord>;
  /**
   * The live pipeline's one atomic step (one Lua script on Redis, one synchronous function in memory):
   * dedup on (account, Sid, status), the forward-only decision and the append happen together, with the
   * request reference and open-item bookkeeping. Nothing is ever claimed without being stored, so a crash
   * at any point leaves either nothing (a retry goes through as the change) or the stored event (a retry
   * is a duplicate). Equal-rank statuses (two final call statuses): the first stored wins.
   * Rejects if it could not be stored.
   */
  appendStatus(append: StatusAppend): Promise<StatusAppendResult>;
  /** The highest rank stored for a subject, or undefined when none is remembered. */
  statusRank(kind: StatusSubject, accountSid: string, sid: string): Promise<number | undefined>;
  /** The Sid a request created, by the reference stored with one of its statuses. */
  requestRef(accountSid: string, ref: string): Promise<string | undefined>;
  /** Events with id > afterId, oldest first, up to `limit`. Unknown/expired afterId → from the oldest kept. */
  readAfter(afterId: string | undefined, limit?: number): Promise<EventRecord[]>;
  /**
   * The oldest `after` a replay is still complete from: the log has removed events (aged out, or over the
   * count cap) that come after any older id. Undefined while the log has removed nothing, so any `after`
   * replays completely (a young log). Past the count cap it is the first event kept after the trim, so an
   * `after` equal to the last event trimmed counts as incomplete too (Redis does not say which one that was).
   */
  replayFloor(): Promise<string | undefined>;
  /**
   * Every event appended by any replica, in log order, from now on. Returns an unsubscribe function.
   * `onLost` is told, before the first event after them, of events removed from the log before this
   * process read them: a replica cut off from Redis (or stopped) while the others appended past the count
   * cap. `listener` never gets those. The memory log delivers as it appends and loses none.
   */
  subscribe(listener: (event: EventRecord) => void, onLost?: (lost: LostEvents) => void): () => void;
  /** History of one call, oldest first. */
  callHistory(accountSid: string, callSid: string): Promise<CallEventRecord[]>;
  /** History of one SMS, oldest first (what a smsStatusChanged snapshot starts from). */
  smsHistory(accountSid: string, smsSid: string): Promise<SmsEventRecord[]>;
  /** The id of the newest event, or undefined when the log is empty. */
  lastId(): Promise<string | undefined>;
  close(): Promise<void>;
}

export type IdempotencyRecord =
  /**
   * `owner`: a random id of the attempt that wrote it (Redis), so that attempt alone can take it back.
   * `ref`: the request's own reference, so a retry can find what it created should its replica die.
   */
  | { state: 'pending'; fingerprint: string; startedAt: number; owner?: string; ref?: string }
  | { state: 'done'; fingerprint: string; result: unknown }
  /** `ref`: the request's own reference (in its callback URL), by which a later retry can find its outcome. */
  | { state: 'unknown'; fingerprint: string; reason: string; ref?: string };

/** Idempotency keys of mutations, kept 24 h. */
export interface IdempotencyStore {
  /** Creates a pending record if none exists; otherwise returns the existing one untouched. */
  begin(key: string, fingerprint: string, ttlMs: number, ref?: string): Promise<{ created: true } | { created: false; record: IdempotencyRecord }>;
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

/** Whose request a take is: the fair share of the budget between client keys (docs/rate-budget.md). */
export interface BudgetClaim {
  /** The client key's name; its requests are counted apart in the same rolling window. */
  client: string;
  /** Requests per window this client may always take (its weighted share of the limit). */
  share: number;
  /** Requests per window a client over its share must leave untaken for the others. */
  reserve: number;
}

/** A refused take: how long until one could succeed, and why (the whole window is spent, or this client's share). */
export interface BudgetRefusal {
  ok: false;
  retryAfterMs: number;
  reason: 'exhausted' | 'over-share';
}

/** A successful hold, with what the window holds right after it. */
export type BudgetGrant = { ok: true; remaining: number; clientUsed: number } & RateBudgetHold;

/** What a budget says about its window now. */
export interface BudgetStatus {
  limit: number;
  remaining: number;
  resetsAtMs: number;
  /** Requests of the client named in `status(client)` in the window (0 without one). */
  clientUsed: number;
}

/** Rolling-window request budget for one Exotel account. */
export interface RateBudget {
  /** Takes one request from the budget now, counted at now; or says how long until one frees up. */
  tryTake(): Promise<{ ok: true } | { ok: false; retryAfterMs: number }>;
  /**
   * Takes one request whose arrival upstream is not known yet: the slot counts as in the window from now
   * until `settle()` re-stamps it with the settle time, or, if never settled (the process died), as if taken
   * `maxHoldMs` from now. With a claim, a client at or over its share is refused while taking would leave
   * fewer than `reserve` requests in the window; the refusal's retryAfterMs is then true for that client.
   */
  tryHold(maxHoldMs: number, claim?: BudgetClaim): Promise<BudgetGrant | BudgetRefusal>;
  /** Requests left in the current window, when the window resets (epoch ms), and one client's use. */
  status(client?: string): Promise<BudgetStatus>;
}

/** A lease that makes fleet-wide background work run on one replica at a time. */
export interface Lease {
  /** True when this holder owns (or renewed) the lease named `name` for `ttlMs`. */
  acquire(name: string, ttlMs: number): Promise<boolean>;
  release(name: string): Promise<void>;
}

/**
 * What makes a held entry newer than a value about to be written: its object's `field` (a status) is one
 * of `newer`. The cache knows no statuses; its caller names the ones that outrank the value it writes.
 */
export interface CacheGuard {
  field: string;
  newer: readonly string[];
}

/** Events a process's subscribers never got: every one logged after `after` and before `before`. */
export interface LostEvents {
  /** The last event delivered before them. */
  after: string;
  /** The first event delivered after them (the first the log still held). */
  before: string;
}

/** Key-value cache with TTLs (keyv underneath) and countable hits and misses. */
export interface Cache {
  get<T>(key: string): Promise<T | undefined>;
  getMany<T>(keys: string[]): Promise<Array<T | undefined>>;
  set<T>(key: string, value: T, ttlMs: number): Promise<void>;
  /**
   * set(), in one atomic step with a look at the entry held: unless that entry is newer by `guard`. Answers
   * whether the value was stored (false too when the store failed). Writers that race, one with an older
   * state of the object, cannot take the entry back whatever order their writes land in.
   */
  setUnlessNewer<T>(key: string, value: T, ttlMs: number, guard: CacheGuard): Promise<boolean>;
  delete(key: string): Promise<void>;
  readonly stats: { hits: number; misses: number };
}

/**
 * Named sets of ids scored by a time (epoch ms), shared by every replica: the live pipeline keeps open
 * calls/SMS by the time they are due for reconciliation, and calls with live subscribers by how long the
 * subscription is known to last. Each id also keeps the time it entered its set, so a caller can tell how
 * long it has been there whatever its score became. Memory and Redis (ZSET and hash) implementations in
 * open-items.ts.
 */
/** How OpenItems.put treats an id already in the set, or not in it: at most one of the two. */
export type OpenItemPutOptions = { onlyIfAbsent?: boolean; onlyIfPresent?: never } | { onlyIfAbsent?: never; onlyIfPresent?: boolean };

export interface OpenItems {
  /**
   * Adds `id` to `set` or moves it to `atMs`; with `onlyIfAbsent`, an id already there keeps its time; with
   * `onlyIfPresent`, an id not there (removed meanwhile, as a final status removes it) stays out. An id new
   * to the set is recorded as added now (the storage's clock); moving one keeps its added time.
   */
  put(set: string, id: string, atMs: number, options?: OpenItemPutOptions): Promise<void>;
  /**
   * When `id` entered `set` (epoch ms, the storage's clock), or undefined when it is not in the set. An id
   * in the set with no added time (put there by an earlier version of the gateway, which kept none) is
   * taken as added now: that time is recorded and returned, and kept from then on.
   */
  addedAt(set: string, id: string): Promise<number | undefined>;
  /** Removes `id` from `set`, and its added time (no error when absent). */
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
  idempotency: IdempotencyStore;
  lease: Lease;
  /** Open calls/SMS and watched calls of the live pipeline (EventLog.appendStatus keeps them too). */
  openItems: OpenItems;
  /** A rolling-window budget named `name` (e.g. the Exotel account), shared by every replica on Redis. */
  rateBudget(name: string, limit: number, windowMs: number): RateBudget;
  /** True when the backend answers (readiness). */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

export type { SmsStatus };
