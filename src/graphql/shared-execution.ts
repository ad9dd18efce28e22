/**
 * Subscription fan-out with shared work. graphql-js executes every event once per subscriber, and
 * graphql-ws serialises every result once per subscriber; with 10,000 subscribers of one event both costs
 * are paid 10,000 times for the same bytes. Here an event is executed ONCE per distinct operation (its
 * document, operation name, variables and caller — see {@link SharedDelivery.operationKey}), the result
 * is formatted and serialised once, and each subscriber only has its `next` frame written (its id around
 * the shared payload bytes).
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
import { createSourceEventStream, execute, subscribe as graphqlSubscribe, type ExecutionArgs, type ExecutionResult, type FormattedExecutionResult } from 'graphql';

/** Where and how one subscription's frames go (registered by the transport for each operation). */
export interface SharedDelivery {
  /** The subscription id of the protocol (graphql-transport-ws `id`). */
  id: string;
  /**
   * Everything the result of an event depends on besides the event: equal keys → one execution. The
   * transport builds it from the query text, operation name, variables and the caller.
   */
  operationKey: string;
  /**
   * Writes one complete text frame. May return a promise (a slow reader: it resolves once the frame is
   * written, holding that reader's own stream back); nothing to wait for otherwise.
   */
  send(frame: string): Promise<void> | undefined;
}

export interface SharedSubscriptionsOptions {
  /** Turns a result into what the client gets (error formatting and masking); called once per shared result. */
  formatResult(result: ExecutionResult): ExecutionResult | FormattedExecutionResult;
}

/** Observes the shared work (tests count it; never on the hot path otherwise). */
export interface SharedExecutionStats {
  /** Event executions actually run. */
  executions: number;
  /** Results serialised to JSON. */
  serialisations: number;
  /** Events whose shared results are held right now (at most RECENT_EVENTS). */
  retainedEvents: number;
}

export interface SharedSubscriptions {
  /** Marks `args` (the object given to graphql-ws's `subscribe`) as delivered through the shared path. */
  deliver(args: ExecutionArgs, delivery: SharedDelivery): void;
  /**
   * graphql-ws's `subscribe` option. For registered operations it returns a stream that writes frames
   * itself and yields nothing (ending when the source ends); others get graphql-js's own subscribe.
   */
  subscribe(args: ExecutionArgs): Promise<AsyncGenerator<ExecutionResult> | ExecutionResult | AsyncIterable<ExecutionResult>>;
  /** Counters of the shared work since creation. */
  stats(): SharedExecutionStats;
}

/** One event's result for one operation key: its JSON. */
interface SharedResult {
  json: string | Promise<string>;
}

/** Events whose shared results are kept (see the top of the file). */
export const RECENT_EVENTS = 256;

const isPromise = <T>(value: T | Promise<T>): value is Promise<T> => typeof (value as Promise<T> | undefined)?.then === 'function';
const isAsyncIterable = (value: unknown): value is AsyncIterable<unknown> => typeof Object(value)[Symbol.asyncIterator] === 'function';

/** Creates the shared subscription executor; one per graphql-ws server. */
export function createSharedSubscriptions(options: SharedSubscriptionsOptions): SharedSubscriptions {
  const deliveries = new WeakMap<ExecutionArgs, SharedDelivery>();
  // Event → operation key → result, for the most recent events (insertion order: the oldest goes first).
  const byEvent = new Map<object, Map<string, SharedResult>>();
  const counters = { executions: 0, serialisations: 0 };

  const serialise = (result: ExecutionResult): string => {
    counters.serialisations++;
    return JSON.stringify(options.formatResult(result));
  };

  const run = (args: ExecutionArgs, payload: unknown): string | Promise<string> => {
    counters.executions++;
    // What graphql-js's subscribe() does per event, minus the repetition.
    const result = execute({ ...args, rootValue: payload });
    return isPromise(result) ? result.then(serialise) : serialise(result);
  };

  const sharedResult = (args: ExecutionArgs, key: string, payload: unknown): SharedResult => {
    if (typeof payload !== 'object' || payload === null) return { json: run(args, payload) };
    let perKey = byEvent.get(payload);
    if (!perKey) {
      byEvent.set(payload, (perKey = new Map()));
      if (byEvent.size > RECENT_EVENTS) byEvent.delete(byEvent.keys().next().value!);
    }
    let shared = perKey.get(key);
    if (!shared) {
      shared = { json: run(args, payload) };
      // A failed execution must not stay cached for the next subscriber; it retries on its own.
      const json = shared.json;
      if (isPromise(json)) json.catch(() => perKey.delete(key));
      perKey.set(key, shared);
    }
    return shared;
  };

  // Byte for byte what graphql-ws's stringifyMessage makes of {id, type: 'next', payload}.
  const frameOf = (id: string, json: string): string => `{"id":${JSON.stringify(id)},"type":"next","payload":${json}}`;

  /** A stream that pulls the source, writes each event's shared frame, and yields nothing. */
  const deliveryStream = (args: ExecutionArgs, delivery: SharedDelivery, source: AsyncIterator<unknown>): AsyncGenerator<ExecutionResult> => {
    let finished = false;
    const finish = async (): Promise<void> => {
      if (finished) return;
      finished = true;
      await source.return?.();
    };
    const stream: AsyncGenerator<ExecutionResult> = {
      async next() {
        while (!finished) {
          const step = await source.next();
          if (step.done) break;
          let frame: string;
          try {
            const shared = sharedResult(args, delivery.operationKey, step.value);
            const json = isPromise(shared.json) ? await shared.json : shared.json;
            frame = frameOf(delivery.id, json);
          } catch (err) {
            await finish();
            throw err;
          }
          // Completed (client `complete`, socket closed) while the result was on its way: nothing more goes out.
          if (finished) break;
          const sent = delivery.send(frame);
          if (sent) await sent;
        }
        finished = true;
        return { value: undefined, done: true };
      },
      async return() {
        await finish();
        return { value: undefined, done: true };
      },
      async throw(err?: unknown) {
        await finish();
        throw err;
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
    return stream;
  };

  return {
    deliver: (args, delivery) => void deliveries.set(args, delivery),
    async subscribe(args) {
      const delivery = deliveries.get(args);
      if (!delivery) return graphqlSubscribe(args);
      const source = await createSourceEventStream(args);
      // Errors known at subscribe time (validation of variables, a resolver refusing) are one result.
      if (!isAsyncIterable(source)) return source;
      return deliveryStream(args, delivery, source[Symbol.asyncIterator]());
    },
    stats: () => ({ ...counters, retainedEvents: byEvent.size }),
  };
}
