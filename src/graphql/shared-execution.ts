/**
 * Subscription fan-out with shared work. graphql-js executes every event once per subscriber; with 10,000
 * subscribers of one event that is 10,000 executions of the same operation over the same data. Here an
 * event is executed ONCE per distinct operation (its document, operation name, variables and caller — the
 * `operationKey` the transport gives), and formatted once; every subscriber gets that same result object
 * from the stream graphql-ws's `subscribe` hook returns, and graphql-ws writes each `next` frame itself.
 *
 * Sharing hinges on event identity: the live feed (src/live/feed.ts) hands every subscriber of one event
 * the same payload object, and results are kept per payload for the most recent `RECENT_EVENTS` events
 * only — the event log may hold events for a day, their results must not live that long. A subscriber that
 * falls further behind than that just executes its events itself; a payload made for one subscriber alone
 * (a snapshot) is simply executed for that subscriber.
 *
 * Results may not depend on who executes them beyond what the key holds: subscription resolvers read
 * the event and load through the per-operation loaders (the same data for everyone); authorisation is
 * decided when the operation is subscribed.
 */
import { LRUCache } from 'lru-cache';
import { createSourceEventStream, execute, subscribe as graphqlSubscribe, type ExecutionArgs, type ExecutionResult, type FormattedExecutionResult } from 'graphql';

export interface SharedSubscriptionsOptions {
  /** Turns a result into what the client gets (error formatting and masking); called once per shared result. */
  formatResult(result: ExecutionResult): ExecutionResult | FormattedExecutionResult;
}

/** Observes the shared work (tests count it; never on the hot path otherwise). */
export interface SharedExecutionStats {
  /** Event executions actually run. */
  executions: number;
  /** Events whose shared results are held right now (at most RECENT_EVENTS). */
  retainedEvents: number;
}

export interface SharedSubscriptions {
  /** Marks `args` (the object given to graphql-ws's `subscribe`) as shared under `operationKey`. */
  share(args: ExecutionArgs, operationKey: string): void;
  /** True for args marked with share(): their results are formatted already. */
  isShared(args: ExecutionArgs): boolean;
  /**
   * graphql-ws's `subscribe` option. For shared operations it returns the source stream mapped to each
   * event's shared result; others get graphql-js's own subscribe.
   */
  subscribe(args: ExecutionArgs): Promise<AsyncIterableIterator<ExecutionResult> | ExecutionResult | AsyncIterable<ExecutionResult>>;
  /** Counters of the shared work since creation. */
  stats(): SharedExecutionStats;
}

type Shared = ExecutionResult | Promise<ExecutionResult>;

/**
 * Where share() puts an operation's key: on the args object itself, not in a WeakMap, since graphql-ws's
 * onNext asks isShared() once per subscriber and event. (Spread into execute()'s args, it is ignored.)
 */
const OPERATION_KEY = Symbol('shared operation key');
type Marked = ExecutionArgs & { [OPERATION_KEY]?: string };

/** Events whose shared results are kept (see the top of the file). */
export const RECENT_EVENTS = 256;
/** Distinct operation keys held once for all their subscribers. */
const INTERNED_KEYS = 1_000;

/**
 * JSON data as plain objects. graphql-js builds result objects without a prototype, which V8 keeps in its
 * slower dictionary mode, and graphql-ws serialises a shared result once per subscriber: copied once per
 * event, each of those serialisations is faster.
 */
function plain(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(plain);
  if (value === null || typeof value !== 'object') return value;
  // A scalar's own object (with its toJSON) is left as it is.
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== null && proto !== Object.prototype) return value;
  const copy: Record<string, unknown> = {};
  for (const key of Object.keys(value)) copy[key] = plain((value as Record<string, unknown>)[key]);
  return copy;
}

const isPromise = <T>(value: T | Promise<T>): value is Promise<T> => typeof (value as Promise<T> | undefined)?.then === 'function';
const isAsyncIterable = (value: unknown): value is AsyncIterable<unknown> => typeof Object(value)[Symbol.asyncIterator] === 'function';
const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true });

/**
 * The source stream, each event replaced by its shared result; return() and throw() reach the source. One
 * step per event (no async function of its own): graphql-ws awaits each next() of thousands of these per
 * event, and every extra promise hop is paid once per subscriber. A class, so an idle one holds one
 * function (`toStep`) rather than a closure per method.
 */
class SharedResultStream implements AsyncIterableIterator<ExecutionResult> {
  constructor(
    private readonly source: AsyncIterator<unknown>,
    private readonly args: ExecutionArgs,
    private readonly key: string,
    /** The executor's one function for every stream. */
    private readonly resultOf: (args: ExecutionArgs, key: string, payload: unknown) => Shared,
  ) {}

  private readonly toStep = (step: IteratorResult<unknown>): IteratorResult<ExecutionResult> | Promise<IteratorResult<ExecutionResult>> => {
    if (step.done) return DONE;
    const result = this.resultOf(this.args, this.key, step.value);
    return isPromise(result) ? result.then((value) => ({ value, done: false })) : { value: result, done: false };
  };

  next(): Promise<IteratorResult<ExecutionResult>> {
    return this.source.next().then(this.toStep);
  }

  async return(): Promise<IteratorResult<ExecutionResult>> {
    await this.source.return?.();
    return DONE;
  }

  async throw(err?: unknown): Promise<IteratorResult<ExecutionResult>> {
    await this.source.return?.();
    throw err;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/** Creates the shared subscription executor; one per graphql-ws server. */
export function createSharedSubscriptions(options: SharedSubscriptionsOptions): SharedSubscriptions {
  // One string per operation key in use, not one per subscriber: a key holds the whole query text, and its
  // lookups below compare equal strings by identity first. Bounded; a key that fell out only costs memory.
  const interned = new LRUCache<string, string>({ max: INTERNED_KEYS });
  const intern = (key: string) => {
    const known = interned.get(key);
    if (known !== undefined) return known;
    interned.set(key, key);
    return key;
  };
  // Event → operation key → result, for the most recently used events (the least recent goes first).
  const byEvent = new LRUCache<object, Map<string, Shared>>({ max: RECENT_EVENTS });
  const counters = { executions: 0 };

  const run = (args: ExecutionArgs, payload: unknown): Shared => {
    counters.executions++;
    // What graphql-js's subscribe() does per event, minus the repetition.
    const result = execute({ ...args, rootValue: payload });
    const format = (r: ExecutionResult) => options.formatResult(r.data ? { ...r, data: plain(r.data) as ExecutionResult['data'] } : r) as ExecutionResult;
    return isPromise(result) ? result.then(format) : format(result);
  };

  const sharedResult = (args: ExecutionArgs, key: string, payload: unknown): Shared => {
    if (typeof payload !== 'object' || payload === null) return run(args, payload);
    let perKey = byEvent.get(payload);
    if (!perKey) byEvent.set(payload, (perKey = new Map()));
    let shared = perKey.get(key);
    if (!shared) {
      shared = run(args, payload);
      // A failed execution must not stay cached for the next subscriber; it retries on its own.
      if (isPromise(shared)) shared.catch(() => perKey.delete(key));
      perKey.set(key, shared);
    }
    return shared;
  };

  return {
    share: (args, operationKey) => void ((args as Marked)[OPERATION_KEY] = intern(operationKey)),
    isShared: (args) => (args as Marked)[OPERATION_KEY] !== undefined,
    async subscribe(args) {
      const key = (args as Marked)[OPERATION_KEY];
      if (key === undefined) return graphqlSubscribe(args);
      const source = await createSourceEventStream(args);
      // Errors known at subscribe time (validation of variables, a resolver refusing) are one result.
      if (!isAsyncIterable(source)) return source;
      return new SharedResultStream(source[Symbol.asyncIterator](), args, key, sharedResult);
    },
    stats: () => ({ ...counters, retainedEvents: byEvent.size }),
  };
}
