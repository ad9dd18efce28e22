/** The streams of the live feed (callEvents above all) on the real topics and the real in-memory event log. */
import { afterEach, describe, expect, it } from 'vitest';
import type { EntityCache } from '../../src/cache/entities.js';
import type { Call, ExotelApi, SmsMessage } from '../../src/exotel/types.js';
import { createFeed, type FeedCallEvent } from '../../src/live/feed.js';
import { createTopics, type Topics } from '../../src/live/topics.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import type { EventLog, EventRecord, NewEvent, Storage } from '../../src/storage/types.js';

const ACCOUNT = 'acct';
const event = (callSid: string, status: 'RINGING' | 'COMPLETED' = 'RINGING'): NewEvent => ({
  kind: 'call', accountSid: ACCOUNT, callSid, status, at: '2026-11-20T10:00:00+05:30', source: 'WEBHOOK', forward: true,
});

let open: Array<{ storage: Storage; topics: Topics }> = [];
afterEach(async () => {
  for (const { storage, topics } of open) {
    topics.close();
    await storage.close();
  }
  open = [];
});

function setup(options: { queueLimit?: number; replayPageSize?: number; eventRetentionCount?: number } = {}) {
  const storage = createMemoryStorage(options.eventRetentionCount ? { eventRetentionCount: options.eventRetentionCount } : {});
  const topics = createTopics({ events: storage.events, accountSid: ACCOUNT, queueLimit: options.queueLimit ?? 100 });
  open.push({ storage, topics });
  // callEvents reads neither the entity cache nor Exotel.
  const unused = new Proxy({}, { get: () => () => Promise.reject(new Error('not used by callEvents')) });
  const feed = createFeed({
    accountSid: ACCOUNT, events: storage.events, topics, entities: unused as EntityCache, exotel: unused as ExotelApi, onWatch: () => undefined, replayPageSize: options.replayPageSize ?? 50,
  });
  return { storage, topics, feed, append: (e: NewEvent) => storage.events.append(e) };
}

const take = async (stream: AsyncIterator<FeedCallEvent>, count: number) => {
  const got: FeedCallEvent[] = [];
  for (let i = 0; i < count; i++) {
    const step = await stream.next();
    if (step.done) break;
    got.push(step.value);
  }
  return got;
};

describe('callEvents', () => {
  it('gives a filtered subscriber only its calls, and the other calls never fill its queue', async () => {
    const { feed, append } = setup({ queueLimit: 2 });
    const mine = await feed.callEvents({ callSids: ['CA-MINE'] });
    // Five events of another call, none read by anyone: only what the subscriber wants is queued.
    for (let i = 0; i < 5; i++) await append(event(`CA-OTHER-${i}`));
    await append(event('CA-MINE'));
    await append(event('CA-MINE', 'COMPLETED'));
    const got = await take(mine, 2);
    expect(got.map((e) => [e.event.callSid, e.event.status])).toEqual([
      ['CA-MINE', 'RINGING'],
      ['CA-MINE', 'COMPLETED'],
    ]);
    await mine.return!();
  });

  it('finds the events of a subscriber filtered by call Sids by its calls: it is not offered the other calls', async () => {
    const { feed, topics, append } = setup();
    const mine = await feed.callEvents({ callSids: ['CA-A', 'CA-B', 'CA-A'] });
    const everyone = await feed.callEvents({ statuses: ['RINGING'] });
    expect(topics.subscriberCount('calls')).toBe(1);
    expect([topics.subscriberCount('call-events:CA-A'), topics.subscriberCount('call-events:CA-B')]).toEqual([1, 1]);
    // Not the callStatusChanged topic of those calls: that one makes the poller watch them.
    expect(topics.subscriberCount('call:CA-A')).toBe(0);
    for (const sid of ['CA-A', 'CA-OTHER', 'CA-B']) await append(event(sid));
    expect((await take(mine, 2)).map((e) => e.event.callSid)).toEqual(['CA-A', 'CA-B']);
    expect((await take(everyone, 3)).map((e) => e.event.callSid)).toEqual(['CA-A', 'CA-OTHER', 'CA-B']);
    await Promise.all([mine.return!(), everyone.return!()]);
    expect(topics.activeTopics()).toEqual([]);
  });

  it('hands every subscriber of an event the same payload object (what shared execution keys on)', async () => {
    const { feed, append } = setup();
    const a = await feed.callEvents();
    const b = await feed.callEvents({ statuses: ['RINGING'] });
    await append(event('CA1'));
    const [[fromA], [fromB]] = await Promise.all([take(a, 1), take(b, 1)]);
    expect(fromA).toBe(fromB);
    await Promise.all([a.return!(), b.return!()]);
  });

  it('replays from `after`, then goes live, with no event twice where the replay and the live events overlap', async () => {
    const { feed, append } = setup({ replayPageSize: 2 });
    const [first, ...rest] = await Promise.all([append(event('CA1')), append(event('CA2')), append(event('CA3'))]);
    const stream = await feed.callEvents(null, first!.id);
    const got = await take(stream, 1);
    // Appended while the replay runs: delivered live (queued in the channel) and read by the replay too.
    const during = [await append(event('CA4')), await append(event('CA5'))];
    got.push(...(await take(stream, 3)));
    // The replay's last page; then the first event only the channel has.
    const late = await append(event('CA6'));
    got.push(...(await take(stream, 1)));
    const live = await append(event('CA7'));
    got.push(...(await take(stream, 1)));
    expect(got.map((e) => e.event.id)).toEqual([...rest, ...during, late, live].map((e) => e.id));
    await stream.return!();
  });

  it('never gives again an event at or before `after` that reaches this process only after the replay found nothing newer', async () => {
    // This process's delivery lags behind the log, as a Redis replica's reader does behind the stream: the
    // client saw X through another replica and resumes here from it before this replica's reader got to X.
    const storage = createMemoryStorage();
    const late: EventRecord[] = [];
    let lagging = true;
    const listeners: Array<(e: EventRecord) => void> = [];
    storage.events.subscribe((e) => (lagging ? late.push(e) : listeners.forEach((l) => l(e))));
    const events: EventLog = { ...storage.events, subscribe: (listener) => (listeners.push(listener), () => listeners.splice(listeners.indexOf(listener), 1)) };
    const topics = createTopics({ events, accountSid: ACCOUNT, queueLimit: 100 });
    open.push({ storage, topics });
    const unused = new Proxy({}, { get: () => () => Promise.reject(new Error('not used by callEvents')) });
    const feed = createFeed({ accountSid: ACCOUNT, events, topics, entities: unused as EntityCache, exotel: unused as ExotelApi, onWatch: () => undefined, replayPageSize: 50 });

    const x = await storage.events.append(event('CA1'));
    const stream = await feed.callEvents(null, x.id);
    // The reader catches up: X reaches this process's subscribers, then a new event does.
    lagging = false;
    for (const e of late.splice(0)) listeners.forEach((l) => l(e));
    const y = await storage.events.append(event('CA2'));
    expect((await take(stream, 1)).map((e) => e.event.id)).toEqual([y.id]);
    await stream.return!();
  });

  it('ends with STORAGE_UNAVAILABLE when storage fails between replay pages, as on the first page', async () => {
    const { storage, feed, append } = setup({ replayPageSize: 2 });
    const [first] = await Promise.all([append(event('CA1')), append(event('CA2')), append(event('CA3')), append(event('CA4'))]);
    const stream = await feed.callEvents(null, first!.id);
    expect((await take(stream, 2)).map((e) => e.event.callSid)).toEqual(['CA2', 'CA3']);
    // Redis stalling right between two pages: a fault only a mock can place exactly there.
    storage.events.readAfter = () => Promise.reject(new Error('Command timed out'));
    await expect(stream.next()).rejects.toMatchObject({ extensions: { code: 'STORAGE_UNAVAILABLE', retryAfterSeconds: 5 } });
    await stream.return!();
  });

  it('refuses an `after` the log trimmed past with EVENTS_EXPIRED, and frees the topic channel it opened', async () => {
    const { feed, topics, append } = setup({ eventRetentionCount: 2 });
    const first = await append(event('CA1'));
    for (const sid of ['CA2', 'CA3', 'CA4']) await append(event(sid));
    await expect(feed.callEvents(null, first.id)).rejects.toMatchObject({ extensions: { code: 'BAD_USER_INPUT', reason: 'EVENTS_EXPIRED' } });
    expect(topics.subscriberCount('calls')).toBe(0);
  });

  it('ends on return(): a waiting next() resolves done and the topic channel is freed', async () => {
    const { feed, topics, append } = setup();
    const stream = await feed.callEvents();
    expect(topics.subscriberCount('calls')).toBe(1);
    const waiting = stream.next();
    await stream.return!();
    expect(await waiting).toEqual({ value: undefined, done: true });
    expect(topics.subscriberCount('calls')).toBe(0);
    await append(event('CA1'));
    expect(await stream.next()).toEqual({ value: undefined, done: true });
  });
});

describe('every stream', () => {
  it('tells its subscriber when it falls past the queue limit', async () => {
    const { feed, append } = setup({ queueLimit: 2 });
    const told: string[] = [];
    const subscriber = (name: string) => ({ fellBehind: () => void told.push(name) });
    const at = '2026-11-20T10:00:00+05:30';
    const call = { sid: 'CA-S', status: 'RINGING', dateCreated: at, dateUpdated: at } as Call;
    const sms = { sid: 'SM-S', status: 'SENDING', dateCreated: at, dateUpdated: at } as SmsMessage;
    const streams: Array<AsyncIterator<unknown>> = [
      await feed.callStatusChanged('CA-S', async () => call, subscriber('callStatusChanged')),
      await feed.callEvents({ callSids: ['CA-S'] }, null, subscriber('callEvents')),
      await feed.smsStatusChanged('SM-S', async () => sms, subscriber('smsStatusChanged')),
      feed.incomingCalls(subscriber('incomingCalls')),
    ];
    // The snapshots are read; after that nobody reads.
    await streams[0]!.next();
    await streams[2]!.next();
    for (let i = 0; i < 3; i++) {
      await append(event('CA-S'));
      await append({ kind: 'sms', accountSid: ACCOUNT, smsSid: 'SM-S', status: 'SENDING', at, source: 'POLL', forward: true });
      await append({ kind: 'incoming', accountSid: ACCOUNT, callSid: `CA-IN-${i}`, at, source: 'WEBHOOK', forward: true });
    }
    expect(told.sort()).toEqual(['callEvents', 'callStatusChanged', 'incomingCalls', 'smsStatusChanged']);
    await Promise.all(streams.map((s) => s.return!()));
  });
});
