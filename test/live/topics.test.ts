/** The in-process fan-out on the real in-memory event log. */
import { describe, expect, it } from 'vitest';
import { createTopics, DELIVERY_SLICE } from '../../src/live/topics.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import type { EventRecord, NewEvent } from '../../src/storage/types.js';

const event = (callSid: string, status: 'RINGING' | 'COMPLETED', accountSid = 'a'): NewEvent => ({
  kind: 'call', accountSid, callSid, status, at: '2026-11-20T10:00:00+05:30', source: 'WEBHOOK', forward: true,
});

describe('topics', () => {
  it('delivers every event to 10,000 subscribers of one call through a single log subscription', async () => {
    const storage = createMemoryStorage();
    let logSubscriptions = 0;
    const subscribe = storage.events.subscribe.bind(storage.events);
    storage.events.subscribe = (listener) => {
      logSubscriptions++;
      return subscribe(listener);
    };
    const topics = createTopics({ events: storage.events, accountSid: 'a', queueLimit: 100 });
    const channels = Array.from({ length: 10_000 }, () => topics.subscribe('call:c1'));
    const other = topics.subscribe('call:c2');
    await storage.events.append(event('c1', 'RINGING'));
    await storage.events.append(event('c1', 'COMPLETED'));
    await storage.events.append(event('c1', 'COMPLETED', 'someone-else'));
    for (const ch of channels) {
      const got = [(await ch.next()).value as EventRecord, (await ch.next()).value as EventRecord];
      expect(got.map((e) => e.kind === 'call' && e.status)).toEqual(['RINGING', 'COMPLETED']);
    }
    expect(logSubscriptions).toBe(1);
    expect(topics.subscriberCount('call:c1')).toBe(10_000);
    for (const ch of channels) ch.close();
    expect(topics.subscriberCount('call:c1')).toBe(0);
    expect(topics.activeTopics()).toEqual(['call:c2']);
    other.close();
    topics.close();
  });

  it('cuts off a subscriber that falls more than queueLimit events behind, after what it has queued', async () => {
    const storage = createMemoryStorage();
    const topics = createTopics({ events: storage.events, accountSid: 'a', queueLimit: 3 });
    const slow = topics.subscribe('calls');
    for (let i = 0; i < 5; i++) await storage.events.append(event(`c${i}`, 'RINGING'));
    for (let i = 0; i < 3; i++) expect((await slow.next()).done).toBe(false);
    await expect(slow.next()).rejects.toMatchObject({ code: 'RATE_LIMITED' });
    expect(topics.subscriberCount('calls')).toBe(0);
    topics.close();
  });

  it('tells the subscriber, once, when its channel falls past the queue limit', async () => {
    const storage = createMemoryStorage();
    const topics = createTopics({ events: storage.events, accountSid: 'a', queueLimit: 3 });
    let told = 0;
    const subscriber = { fellBehind: () => void told++ };
    const slow = topics.subscribe('calls', undefined, subscriber);
    const broken = topics.subscribe('calls', () => {
      throw new Error('select broke');
    }, subscriber);
    const closed = topics.subscribe('calls', undefined, subscriber);
    closed.close();
    for (let i = 0; i < 3; i++) await storage.events.append(event(`c${i}`, 'RINGING'));
    // A select that throws is not falling behind.
    expect(told).toBe(0);
    await storage.events.append(event('c3', 'RINGING'));
    expect(told).toBe(1);
    await storage.events.append(event('c4', 'RINGING'));
    expect(told).toBe(1);
    await expect(broken.next()).rejects.toThrow('select broke');
    expect(topics.subscriberCount('calls')).toBe(0);
    // Its reader let go (its client was cut off): what was queued is not handed out any more.
    slow.close();
    expect(await slow.next()).toEqual({ value: undefined, done: true });
    topics.close();
  });

  it('resolves a waiting reader as done when the channel is closed', async () => {
    const storage = createMemoryStorage();
    const topics = createTopics({ events: storage.events, accountSid: 'a', queueLimit: 3 });
    const ch = topics.subscribe('call:x');
    const pending = ch.next();
    ch.close();
    expect(await pending).toEqual({ value: undefined, done: true });
    topics.close();
  });

  it('queues what a subscriber selects, as it shaped it, and skips the rest', async () => {
    const storage = createMemoryStorage();
    const topics = createTopics({ events: storage.events, accountSid: 'a', queueLimit: 1 });
    const completed = topics.subscribe('calls', (e) => (e.kind === 'call' && e.status === 'COMPLETED' ? e.callSid : undefined));
    // More skipped events than the queue limit: skipped events are never queued.
    for (let i = 0; i < 3; i++) await storage.events.append(event(`c${i}`, 'RINGING'));
    await storage.events.append(event('c9', 'COMPLETED'));
    expect(await completed.next()).toEqual({ value: 'c9', done: false });
    completed.close();
    topics.close();
  });

  it('fails only the subscriber whose select throws; the others get the event', async () => {
    const storage = createMemoryStorage();
    const topics = createTopics({ events: storage.events, accountSid: 'a', queueLimit: 10 });
    const broken = topics.subscribe('calls', () => {
      throw new Error('select broke');
    });
    const fine = topics.subscribe('calls');
    await storage.events.append(event('c1', 'RINGING'));
    await expect(broken.next()).rejects.toThrow('select broke');
    expect((await fine.next()).value).toMatchObject({ callSid: 'c1' });
    expect(topics.subscriberCount('calls')).toBe(1);
    fine.close();
    topics.close();
  });

  it('hands an event to a large topic in slices, yielding to the event loop between them, in publish order', async () => {
    const storage = createMemoryStorage();
    const topics = createTopics({ events: storage.events, accountSid: 'a', queueLimit: 10 });
    const channels = Array.from({ length: 2 * DELIVERY_SLICE + 1 }, () => topics.subscribe('calls'));
    const received = channels.map(() => [] as string[]);
    const reading = channels.map(async (ch, i) => {
      for (let n = 0; n < 2; n++) {
        const step = await ch.next();
        if (step.done) return;
        received[i]!.push((step.value as EventRecord & { status: string }).status);
      }
    });
    // The last subscriber leaves before its slice comes: it never gets the event.
    const leaving = channels.at(-1)!;
    await storage.events.append(event('c1', 'RINGING'));
    await storage.events.append(event('c1', 'COMPLETED'));
    // The publisher is back before the later slices went out: the first slice has the first event (the
    // second waits behind the first's delivery), the last slice has nothing yet.
    expect(received[0]).toEqual(['RINGING']);
    expect(received.at(-2)).toEqual([]);
    leaving.close();
    let turns = 0;
    while (received.at(-2)!.length < 2) {
      await new Promise((resolve) => setImmediate(resolve));
      if (++turns > 100) throw new Error('the fan-out never finished');
    }
    await Promise.all(reading);
    expect(turns).toBeGreaterThan(1);
    for (const got of received.slice(0, -1)) expect(got).toEqual(['RINGING', 'COMPLETED']);
    expect(received.at(-1)).toEqual([]);
    topics.close();
  });
});
