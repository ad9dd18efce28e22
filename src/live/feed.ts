/**
 * The streams behind the Subscription fields. Each one subscribes to its topic *before* reading any
 * state, buffers what arrives meanwhile, and then drops what the state already covered, so there is no
 * gap and no duplicate at the seam between "what was" and "what comes".
 */
import type { EntityCache } from '../cache/entities.js';
import { ErrorCode, fromStorage, GatewayError } from '../errors.js';
import type { Call, CallStatus, ExotelApi, SmsMessage } from '../exotel/types.js';
import type { CallEventRecord, EventLog, EventRecord, EventSource, SmsEventRecord } from '../storage/types.js';
import type { Channel, Subscriber, Topics } from './topics.js';
import { callStatusRank, compareEventIds, isTerminalCall, isTerminalSms, smsStatusRank, topics } from './updates.js';

/** A call event for a subscriber; `call` is set when the stream already knows the call (snapshots). */
export interface FeedCallEvent {
  event: CallEventRecord;
  call?: Call;
}

/** Which events callEvents delivers (GraphQL CallEventFilter). */
export interface CallEventFilter {
  callSids?: readonly string[] | null;
  statuses?: readonly CallStatus[] | null;
  sources?: readonly EventSource[] | null;
}

/**
 * Every stream is bounded (src/live/topics.ts): one that falls past its queue limit fails RATE_LIMITED, and
 * its `subscriber`, when given, is told at that moment.
 */
export interface LiveFeed {
  /**
   * The call's current state (source SNAPSHOT), then each forward change; ends after a terminal status.
   * Resolves once the snapshot is read, so an unknown call fails here (NOT_FOUND), not mid-stream.
   */
  callStatusChanged(sid: string, lookup?: SnapshotLookup<Call>, subscriber?: Subscriber): Promise<AsyncIterableIterator<FeedCallEvent>>;
  /**
   * Every forward call event matching `filter`; with `after`, the logged events since that id first.
   * Resolves once the replay's first page is read, so an `after` the log can no longer replay completely
   * fails here (BAD_USER_INPUT, reason EVENTS_EXPIRED), not mid-stream.
   */
  callEvents(filter?: CallEventFilter | null, after?: string | null, subscriber?: Subscriber): Promise<AsyncIterableIterator<FeedCallEvent>>;
  /** The SMS's current state, then each forward change; ends after a final status (or its status callback). */
  smsStatusChanged(sid: string, lookup?: SnapshotLookup<SmsMessage>, subscriber?: Subscriber): Promise<AsyncIterableIterator<SmsMessage>>;
  /** Calls announced by a Passthru applet. */
  incomingCalls(subscriber?: Subscriber): AsyncIterableIterator<Call>;
}

/**
 * How a subscription reads the current state of its call or SMS: the subscriber's own loader (cache, its
 * key's shared batches and budget, "no such call" memory); null when Exotel does not know it. Without one,
 * the feed reads the cache and asks Exotel itself.
 */
export type SnapshotLookup<T> = (sid: string) => Promise<T | null>;

export interface FeedDeps {
  accountSid: string;
  events: EventLog;
  topics: Topics;
  entities: EntityCache;
  exotel: ExotelApi;
  /** Told when a call still going gains a local subscriber (its snapshot read), so the live poller starts looking at it now. */
  onWatch(callSid: string): void;
  /** Events read from the log per replay page. */
  replayPageSize: number;
}

/**
 * Wraps a generator so that return() first closes its channel: a generator parked in `await next()`
 * would otherwise hold its subscription until the next event arrives (which, for a quiet call, is never).
 */
function cancellable<T>(generator: AsyncGenerator<T>, cancel: () => void): AsyncIterableIterator<T> {
  return {
    next: () => generator.next(),
    return: (value?: unknown) => {
      cancel();
      return generator.return(value as T);
    },
    throw: (err?: unknown) => {
      cancel();
      return generator.throw(err);
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

/**
 * A callEvents stream's catching up with `after`: the replay while it runs, and the last event the client
 * has (the replay's last event, `after` itself until the replay gives one).
 */
interface CatchUp {
  replay: AsyncGenerator<FeedCallEvent> | undefined;
  last: string;
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true });

/**
 * callEvents' stream: the replay first (with `after`), then the topic channel itself. Once caught up,
 * next() is the channel's own: with thousands of subscribers every event passes here once per subscriber,
 * and an async step of its own would cost each of them a wake-up and promise hops. A class, so an idle
 * subscriber holds no closures.
 */
class CallEventStream implements AsyncIterableIterator<FeedCallEvent> {
  constructor(
    private readonly channel: Channel<FeedCallEvent>,
    private catchUp: CatchUp | undefined,
  ) {}

  next(): Promise<IteratorResult<FeedCallEvent>> {
    return this.catchUp ? this.nextCatchingUp(this.catchUp) : this.channel.next();
  }

  async return(): Promise<IteratorResult<FeedCallEvent>> {
    this.channel.close();
    await this.catchUp?.replay?.return(undefined);
    return DONE;
  }

  async throw(err?: unknown): Promise<IteratorResult<FeedCallEvent>> {
    await this.return();
    throw err;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private async nextCatchingUp(catchUp: CatchUp): Promise<IteratorResult<FeedCallEvent>> {
    try {
      if (catchUp.replay) {
        const step = await catchUp.replay.next();
        if (!step.done) return step;
        catchUp.replay = undefined;
      }
      for (;;) {
        const step = await this.channel.next();
        if (step.done) return step;
        if (compareEventIds(step.value.event.id, catchUp.last) <= 0) continue;
        // Caught up: the channel delivers in log order, so every later event comes after this one.
        this.catchUp = undefined;
        return step;
      }
    } catch (err) {
      this.channel.close();
      throw err;
    }
  }
}

const matches = (filter: CallEventFilter | null | undefined, e: CallEventRecord): boolean =>
  (!filter?.callSids?.length || filter.callSids.includes(e.callSid)) &&
  (!filter?.statuses?.length || filter.statuses.includes(e.status)) &&
  (!filter?.sources?.length || filter.sources.includes(e.source));

/**
 * The status a snapshot shows: the last forward status of the history, read after the topic subscription
 * (so the live events pick up exactly where it ends), over the looked-up object's, which may lag behind the
 * log (written after it) or carry Exotel's "in-progress" of a call just created. A final status wherever it
 * is seen is final, though.
 */
function snapshotStatus<S, E extends { forward: boolean; status: S }>(history: readonly E[], current: S, isTerminal: (status: S) => boolean): { status: S; lastForward: E | undefined } {
  const lastForward = history.findLast((e) => e.forward);
  return { status: lastForward && !isTerminal(current) ? lastForward.status : current, lastForward };
}

/**
 * A replay from `after` would miss events the log has removed since (EVENT_RETENTION_HOURS, or the count
 * cap): the client must be told, or it would show what it has as if nothing had changed.
 */
function eventsExpired(after: string): GatewayError {
  const message =
    `the events after ${JSON.stringify(after)} are no longer kept (the event log keeps EVENT_RETENTION_HOURS of events, at most EVENT_RETENTION_COUNT), ` +
    'so a replay from it would be incomplete. Subscribe without `after` and refetch the calls you show.';
  return new GatewayError(ErrorCode.BAD_USER_INPUT, `after: ${message}`, { field: 'after', fields: [{ field: 'after', message }], reason: 'EVENTS_EXPIRED' });
}

/** The SMS with what a forward event of it says. */
function withSmsEvent(sms: SmsMessage, event: SmsEventRecord): SmsMessage {
  const fields = (event.data?.sms ?? {}) as Partial<SmsMessage>;
  return { ...sms, ...fields, sid: event.smsSid, status: event.status };
}

/**
 * True when smsStatusChanged ends after this event: Exotel posts SMS callbacks for final states only, and
 * delivery may show only as `sent`; the reconciler's look at a due SMS is final in the same way.
 */
function endsSms(sms: SmsMessage, event: SmsEventRecord): boolean {
  return isTerminalSms(sms.status) || event.source === 'WEBHOOK' || (event.source === 'POLL' && sms.status === 'SENT');
}

/** The subscription streams over one account's event log and topics. */
export function createFeed(deps: FeedDeps): LiveFeed {
  const { accountSid } = deps;
  const isOurCall = (e: EventRecord): e is CallEventRecord => e.kind === 'call' && e.accountSid === accountSid;
  // Topics hand every local subscriber the same event object; wrapping it the same way for all of them
  // lets the GraphQL layer execute and serialise it once per operation (src/graphql/shared-execution.ts).
  const wrapped = new WeakMap<CallEventRecord, FeedCallEvent>();
  const feedEvent = (event: CallEventRecord): FeedCallEvent => {
    let payload = wrapped.get(event);
    if (!payload) wrapped.set(event, (payload = { event }));
    return payload;
  };
  /** What callEvents delivers: forward changes of this account's calls. */
  const isLiveCallEvent = (e: EventRecord): e is CallEventRecord => isOurCall(e) && e.forward;
  const anyCallEvent = (e: EventRecord) => (isLiveCallEvent(e) ? feedEvent(e) : undefined);

  /** The state a callStatusChanged subscriber starts from: history (forward-only truth) and the call itself. */
  async function callSnapshot(sid: string, lookup: SnapshotLookup<Call> | undefined): Promise<FeedCallEvent> {
    const [history, call] = await Promise.all([fromStorage("The call's status history", () => deps.events.callHistory(accountSid, sid)), (lookup ?? lookupCall)(sid)]);
    if (!call) throw new GatewayError(ErrorCode.NOT_FOUND, `No call with Sid ${JSON.stringify(sid)}`, { field: 'sid' });
    const { status, lastForward } = snapshotStatus(history, call.status, isTerminalCall);
    const id = lastForward && lastForward.status === status ? lastForward.id : ((await fromStorage('The event log', () => deps.events.lastId())) ?? '0-0');
    return {
      event: { kind: 'call', id, accountSid, callSid: sid, status, at: lastForward?.at ?? call.dateUpdated, source: 'SNAPSHOT', forward: true },
      call: { ...call, status },
    };
  }

  async function lookupCall(sid: string): Promise<Call | null> {
    const [cached] = await deps.entities.getCalls([sid]);
    if (cached) return cached;
    const fetched = await deps.exotel.getCall(sid);
    if (fetched) await deps.entities.putCall(fetched).catch(() => undefined);
    return fetched;
  }

  async function lookupSms(sid: string): Promise<SmsMessage | null> {
    const [cached] = await deps.entities.getSms([sid]);
    if (cached) return cached;
    const fetched = await deps.exotel.getSms(sid);
    if (fetched) await deps.entities.putSms(fetched).catch(() => undefined);
    return fetched;
  }

  /**
   * The state a smsStatusChanged subscriber starts from, as callSnapshot's: history (forward-only truth)
   * and the SMS itself. The cached SMS is written only after its status is stored, so a subscriber that
   * reads it in between would start from the old status and wait for an event already gone past.
   * `ended` when the status it shows is one the stream ends after.
   */
  async function smsSnapshot(sid: string, lookup: SnapshotLookup<SmsMessage> | undefined): Promise<{ sms: SmsMessage; ended: boolean }> {
    const [history, found] = await Promise.all([fromStorage("The SMS's status history", () => deps.events.smsHistory(accountSid, sid)), (lookup ?? lookupSms)(sid)]);
    if (!found) throw new GatewayError(ErrorCode.NOT_FOUND, `No SMS with Sid ${JSON.stringify(sid)}`, { field: 'sid' });
    const { status, lastForward } = snapshotStatus(history, found.status, isTerminalSms);
    if (!lastForward || status !== lastForward.status) return { sms: found, ended: isTerminalSms(found.status) };
    const sms = status === found.status ? found : withSmsEvent(found, lastForward);
    return { sms, ended: endsSms(sms, lastForward) };
  }

  return {
    async callStatusChanged(sid, lookup, subscriber) {
      const channel = deps.topics.subscribe(topics.call(sid), undefined, subscriber);
      let snapshot: FeedCallEvent;
      try {
        snapshot = await callSnapshot(sid, lookup);
      } catch (err) {
        channel.close();
        throw err;
      }
      // Only a call that exists and is still going: the poller spends the fleet's background budget on each
      // call it is told of, and a client's subscription to a Sid Exotel does not know (a typo, retried) or to
      // a finished call would buy it a poll that can show nothing.
      if (!isTerminalCall(snapshot.event.status)) deps.onWatch(sid);
      async function* stream(): AsyncGenerator<FeedCallEvent> {
        try {
          yield snapshot;
          let rank = callStatusRank(snapshot.event.status);
          if (isTerminalCall(snapshot.event.status)) return;
          for await (const event of channel) {
            if (!isOurCall(event) || !event.forward || callStatusRank(event.status) <= rank) continue;
            rank = callStatusRank(event.status);
            yield feedEvent(event);
            if (isTerminalCall(event.status)) return;
          }
        } finally {
          channel.close();
        }
      }
      return cancellable(stream(), () => channel.close());
    },

    async callEvents(filter, after, subscriber) {
      // Picked as they are delivered (topics.ts `select`): an event a subscriber does not want costs no
      // more than this test.
      const select = filter?.callSids?.length || filter?.statuses?.length || filter?.sources?.length ? (e: EventRecord) => (isLiveCallEvent(e) && matches(filter, e) ? feedEvent(e) : undefined) : anyCallEvent;
      // Filtered by call, it is offered only the events of its calls (an index lookup per event, not a test).
      const channel = deps.topics.subscribe(filter?.callSids?.length ? [...new Set(filter.callSids)].map(topics.callEvents) : topics.allCalls, select, subscriber);
      if (after === undefined || after === null) return new CallEventStream(channel, undefined);
      // Live events are already buffering in `channel` while the replay runs to the end of the log; those
      // the replay gave too are dropped where the live part picks up. So are those up to `after` itself, when
      // the replay finds nothing newer: this process's delivery may lag behind the log (on Redis, its reader
      // behind the stream), so an event the client saw through another replica, or a snapshot's id read from
      // the log, can still reach this channel after the subscription was made.
      const catchUp: CatchUp = { replay: undefined, last: after };
      let firstPage: EventRecord[];
      try {
        firstPage = await fromStorage('The event log', () => deps.events.readAfter(after, deps.replayPageSize));
        // Read after the page: a removal that could have cut into the page has happened by now and shows.
        const floor = await fromStorage('The event log', () => deps.events.replayFloor());
        if (floor !== undefined && compareEventIds(after, floor) < 0) throw eventsExpired(after);
      } catch (err) {
        channel.close();
        throw err;
      }
      async function* replayFrom(cursor: string, page: EventRecord[]): AsyncGenerator<FeedCallEvent> {
        for (;;) {
          for (const event of page) if (isLiveCallEvent(event) && matches(filter, event)) yield feedEvent(event);
          const tail = page.at(-1);
          if (tail) catchUp.last = cursor = tail.id;
          if (page.length < deps.replayPageSize) return;
          // Each page, not only the first: a storage stall mid-replay is STORAGE_UNAVAILABLE too.
          page = await fromStorage('The event log', () => deps.events.readAfter(cursor, deps.replayPageSize));
        }
      }
      catchUp.replay = replayFrom(after, firstPage);
      return new CallEventStream(channel, catchUp);
    },

    async smsStatusChanged(sid, lookup, subscriber) {
      const channel = deps.topics.subscribe(topics.sms(sid), undefined, subscriber);
      let snapshot: { sms: SmsMessage; ended: boolean };
      try {
        snapshot = await smsSnapshot(sid, lookup);
      } catch (err) {
        channel.close();
        throw err;
      }
      async function* stream(): AsyncGenerator<SmsMessage> {
        try {
          let { sms } = snapshot;
          yield sms;
          if (snapshot.ended) return;
          for await (const event of channel) {
            if (event.kind !== 'sms' || event.accountSid !== accountSid || !event.forward) continue;
            if (smsStatusRank(event.status) <= smsStatusRank(sms.status)) continue;
            sms = withSmsEvent(sms, event);
            yield sms;
            if (endsSms(sms, event)) return;
          }
        } finally {
          channel.close();
        }
      }
      return cancellable(stream(), () => channel.close());
    },

    incomingCalls(subscriber) {
      const channel = deps.topics.subscribe(topics.incoming, undefined, subscriber);
      async function* stream(): AsyncGenerator<Call> {
        try {
          for await (const event of channel) {
            if (event.kind !== 'incoming' || event.accountSid !== accountSid || !event.forward) continue;
            const call = event.data?.call as Call | undefined;
            if (call) yield call;
          }
        } finally {
          channel.close();
        }
      }
      return cancellable(stream(), () => channel.close());
    },
  };
}
