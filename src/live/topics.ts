/**
 * In-process fan-out: one EventLog subscription per process, dispatched by topic to any number of local
 * subscribers. Each event costs one Map lookup per topic and one queue push per subscriber of that topic,
 * so 10,000 subscribers of one call cost 10,000 pushes and no storage traffic. On Redis the log's own
 * subscription already brings every replica's events here.
 *
 * A subscriber may pass a `select` that picks (and shapes) its events as they are delivered: an event it
 * does not want then costs one function call, not a wake-up of its reader, and never counts against its
 * queue limit.
 *
 * A topic with many subscribers gets an event in slices of `DELIVERY_SLICE`, with a turn of the event
 * loop between slices. Each subscriber's reader runs as a chain of microtasks up to its socket write; handed
 * to 10,000 subscribers at once, all 10,000 chains advance in lockstep, so no frame is written before every
 * subscriber has done all but its last step, everything they allocate is alive at once (long garbage
 * collections), and the webhook that brought the event is answered only after the last write. In slices,
 * the first frames leave at once and the loop keeps serving I/O. Events keep their order: slices of one
 * event all go before any of the next.
 */
import { ErrorCode, GatewayError } from '../errors.js';
import type { EventLog, EventRecord, LostEvents } from '../storage/types.js';
import { topicsOf } from './updates.js';
import { traceFanOut } from '../tracing/spans.js';

/** An async iterator of events that can also be closed from outside (unsubscribe). */
export interface Channel<T> extends AsyncIterableIterator<T> {
  /** Stops delivery; a pending or later next() resolves done. */
  close(): void;
}

/** Picks a subscriber's events as they are delivered: the value to queue, or undefined to skip the event. */
export type Select<T> = (event: EventRecord) => T | undefined;

/**
 * The client end of a channel (graphql-ws: the operation's socket). Told, as its channel fails, that it fell
 * past the queue limit: the channel's reader learns of that failure only at its next read, which never
 * comes while it waits on a client that stopped reading.
 */
export interface Subscriber {
  fellBehind(): void;
}

export interface Topics {
  /** A new bounded channel receiving every event of `topic` from now on. */
  subscribe(topic: string, select?: undefined, subscriber?: Subscriber): Channel<EventRecord>;
  /**
   * A new bounded channel receiving what `select` makes of each event of `topic` (or of any of `topics`,
   * which no event should share) from now on.
   */
  subscribe<T>(topic: string | readonly string[], select: Select<T>, subscriber?: Subscriber): Channel<T>;
  /** Local subscribers of `topic` right now. */
  subscriberCount(topic: string): number;
  /** Topics with at least one local subscriber. */
  activeTopics(): string[];
  /** Ends every channel and the log subscription. */
  close(): void;
}

export interface TopicsOptions {
  events: EventLog;
  /** Events of other accounts sharing the same Redis are not ours to deliver. */
  accountSid: string;
  /** Events a subscriber may have waiting before it is cut off as too slow. */
  queueLimit: number;
}

/** Subscribers handed an event before the fan-out yields to the event loop (see the top of the file). */
export const DELIVERY_SLICE = 500;

/** Starts the process's one log subscription and dispatches its events to local channels by topic. */
export function createTopics(options: TopicsOptions): Topics {
  const byTopic = new Map<string, Set<LocalChannel<unknown>>>();
  // Deliveries not finished yet, oldest first: the subscribers an event was published to, and how far it got.
  const backlog: Array<{ event: EventRecord; channels: LocalChannel<unknown>[]; done: number }> = [];
  let scheduled: NodeJS.Immediate | undefined;
  /** Makes up to DELIVERY_SLICE deliveries from the backlog, then comes back in the next turn if any are left. */
  const drain = () => {
    scheduled = undefined;
    let left = DELIVERY_SLICE;
    while (left > 0 && backlog.length > 0) {
      const job = backlog[0]!;
      const end = Math.min(job.channels.length, job.done + left);
      for (let i = job.done; i < end; i++) job.channels[i]!.push(job.event);
      left -= end - job.done;
      job.done = end;
      if (job.done === job.channels.length) backlog.shift();
    }
    if (backlog.length > 0) scheduled = setImmediate(drain);
  };
  /** Hands `event` to every local subscriber of its topics; answers how many there were. */
  const deliver = (event: EventRecord): number => {
    let subscribers = 0;
    for (const topic of topicsOf(event)) {
      const channels = byTopic.get(topic);
      if (!channels) continue;
      subscribers += channels.size;
      // A small topic with nothing ahead of it is served at once, without a copy of its subscribers.
      if (backlog.length === 0 && channels.size <= DELIVERY_SLICE) for (const channel of channels) channel.push(event);
      // Those subscribed when the event was published get it, whenever their slice comes.
      else backlog.push({ event, channels: [...channels], done: 0 });
    }
    if (backlog.length > 0 && !scheduled) drain();
    return subscribers;
  };
  const unsubscribe = options.events.subscribe(
    (event) => {
      if (event.accountSid !== options.accountSid) return;
      traceFanOut(event, deliver);
    },
    // This replica missed events (it fell behind the log by more than the log keeps): any stream it serves
    // may lack some, and none can say which. Each one ends, so its client subscribes again: a snapshot,
    // or callEvents(after:) that replays what the log still holds or answers EVENTS_EXPIRED.
    (lost) => {
      // What came before the gap first, however many slices were still to come.
      for (const job of backlog.splice(0)) for (let i = job.done; i < job.channels.length; i++) job.channels[i]!.push(job.event);
      const error = eventsLost(lost);
      for (const set of [...byTopic.values()]) for (const channel of [...set]) channel.end(error);
    },
  );

  return {
    subscribe<T>(topicOrTopics: string | readonly string[], select?: Select<T>, subscriber?: Subscriber): Channel<T> {
      const channel = new LocalChannel<T>(options.queueLimit, select ?? (identity as Select<T>), byTopic, topicOrTopics, subscriber);
      for (const topic of typeof topicOrTopics === 'string' ? [topicOrTopics] : topicOrTopics) {
        let set = byTopic.get(topic);
        if (!set) byTopic.set(topic, (set = new Set()));
        set.add(channel as LocalChannel<unknown>);
      }
      return channel;
    },
    subscriberCount: (topic) => byTopic.get(topic)?.size ?? 0,
    activeTopics: () => [...byTopic.keys()],
    close() {
      unsubscribe();
      if (scheduled) clearImmediate(scheduled);
      scheduled = undefined;
      backlog.length = 0;
      for (const set of [...byTopic.values()]) for (const channel of [...set]) channel.close();
      byTopic.clear();
    },
  };
}

const identity: Select<EventRecord> = (event) => event;

/** The error a stream ends with when its replica lost events on their way from the log. */
function eventsLost(lost: LostEvents): GatewayError {
  return new GatewayError(
    ErrorCode.STORAGE_UNAVAILABLE,
    `Events logged after ${lost.after} and before ${lost.before} never reached this subscription: this gateway replica fell behind the shared event log by more than it keeps. ` +
      'Subscribe again: callEvents(after:) with the last id you got replays what the log still holds (or answers EVENTS_EXPIRED), callStatusChanged and smsStatusChanged start from the current state.',
    { reason: 'EVENTS_LOST', retryAfterSeconds: 1 },
  );
}

/**
 * A bounded queue with at most one waiting reader. The queue is an array read from a moving head, so
 * push and next are O(1); it is compacted when the head has passed half of it. A class rather than
 * closures: with thousands of idle subscribers, per-subscriber closures are most of their memory.
 */
class LocalChannel<T> implements Channel<T> {
  private queue: T[] = [];
  private head = 0;
  private waiting: ((result: IteratorResult<T>) => void) | undefined;
  private failWaiting: ((err: Error) => void) | undefined;
  private error: Error | undefined;
  private done = false;

  constructor(
    private readonly limit: number,
    private readonly select: Select<T>,
    /** The topics' registry this channel leaves when it closes. */
    private readonly registry: Map<string, Set<LocalChannel<unknown>>>,
    private readonly topics: string | readonly string[],
    private readonly subscriber: Subscriber | undefined,
  ) {}

  push(event: EventRecord): void {
    if (this.done) return;
    let value: T | undefined;
    try {
      value = this.select(event);
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    if (value === undefined) return;
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = this.failWaiting = undefined;
      resolve({ value, done: false });
      return;
    }
    if (this.queue.length - this.head >= this.limit) {
      // A reader this far behind would hold memory without bound; it can resume with `after`.
      this.fail(new GatewayError(ErrorCode.RATE_LIMITED, `Subscriber fell more than ${this.limit} events behind; subscribe again (with callEvents(after:) to resume)`, { retryAfterSeconds: 1 }));
      this.subscriber?.fellBehind();
      return;
    }
    this.queue.push(value);
  }

  next(): Promise<IteratorResult<T>> {
    if (this.head < this.queue.length) {
      const value = this.queue[this.head]!;
      this.queue[this.head++] = undefined as unknown as T;
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.error) return Promise.reject(this.error);
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiting = resolve;
      this.failWaiting = reject;
    });
  }

  return(): Promise<IteratorResult<T>> {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  close(): void {
    // Also after a failure: a reader that lets go (its client was cut off) is not handed what was queued.
    this.queue = [];
    this.head = 0;
    this.error = undefined;
    if (this.done) return;
    this.done = true;
    this.leave();
    const resolve = this.waiting;
    this.waiting = this.failWaiting = undefined;
    resolve?.({ value: undefined, done: true });
  }

  /** Ends the channel with `err`: what is queued is still read first, then next() rejects. */
  end(err: Error): void {
    if (!this.done) this.fail(err);
  }

  private fail(err: Error): void {
    this.error = err;
    this.done = true;
    this.leave();
    const reject = this.failWaiting;
    this.waiting = this.failWaiting = undefined;
    reject?.(err);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private leave(): void {
    for (const topic of typeof this.topics === 'string' ? [this.topics] : this.topics) {
      const set = this.registry.get(topic);
      if (!set) continue;
      set.delete(this as LocalChannel<unknown>);
      if (set.size === 0) this.registry.delete(topic);
    }
  }
}
