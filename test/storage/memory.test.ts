/** What only the in-memory backend promises beyond the contract: exact retention, clock handling, bounds. */
import { describe, expect, it } from 'vitest';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { LruTtlStore } from '../../src/storage/cache.js';
import { compareEventIds, parseEventId } from '../../src/storage/event-id.js';
import type { EventRecord, NewEvent } from '../../src/storage/types.js';

const call = (callSid: string, n = 0): NewEvent => ({
  kind: 'call',
  accountSid: 'acc',
  callSid,
  status: 'RINGING',
  at: '2024-01-01T10:00:00+05:30',
  source: 'POLL',
  forward: true,
  data: { n },
});

describe('event ids', () => {
  it('compares (ms, seq) as numbers', () => {
    expect(compareEventIds('9-0', '10-0')).toBeLessThan(0);
    expect(compareEventIds('10-2', '10-10')).toBeLessThan(0);
    expect(compareEventIds('10-10', '10-10')).toBe(0);
    expect(parseEventId('10')).toBeUndefined();
    expect(parseEventId('-1-0')).toBeUndefined();
    expect(parseEventId('99999999999999999-0')).toBeUndefined();
  });
});

describe('memory event log', () => {
  it('orders "9-0" before "10-0" when the clock crosses a digit', async () => {
    let now = 9;
    const storage = createMemoryStorage({ clock: () => now, eventRetentionMs: 1e12 });
    const a = await storage.events.append(call('CA1'));
    now = 10;
    const b = await storage.events.append(call('CA1', 1));
    expect([a.id, b.id]).toEqual(['9-0', '10-0']);
    expect((await storage.events.readAfter('9-0')).map((e) => e.id)).toEqual(['10-0']);
    expect((await storage.events.readAfter('9-5')).map((e) => e.id)).toEqual(['10-0']);
    await storage.close();
  });

  it('keeps ids increasing when the clock stands still or goes backwards', async () => {
    let now = 5_000;
    const storage = createMemoryStorage({ clock: () => now });
    const ids = [(await storage.events.append(call('CA'))).id, (await storage.events.append(call('CA'))).id];
    now = 4_000;
    ids.push((await storage.events.append(call('CA'))).id);
    now = 6_000;
    ids.push((await storage.events.append(call('CA'))).id);
    expect(ids).toEqual(['5000-0', '5000-1', '5000-2', '6000-0']);
    await storage.close();
  });

  it('trims exactly by count and by age, and call histories with it', async () => {
    let now = 1_000_000;
    const storage = createMemoryStorage({ clock: () => now, eventRetentionCount: 3, eventRetentionMs: 1000 });
    for (let i = 0; i < 5; i++) await storage.events.append(call(i < 3 ? 'CA-a' : 'CA-b', i));
    expect((await storage.events.readAfter(undefined)).map((e) => (e.data as { n: number }).n)).toEqual([2, 3, 4]);
    expect((await storage.events.callHistory('acc', 'CA-a')).map((e) => (e.data as { n: number }).n)).toEqual([2]);
    now += 1001;
    expect(await storage.events.readAfter(undefined)).toEqual([]);
    expect(await storage.events.callHistory('acc', 'CA-b')).toEqual([]);
    expect(await storage.events.lastId()).toBeUndefined();
    await storage.close();
  });

  it('delivers in log order even when a listener appends while being told of an event', async () => {
    const storage = createMemoryStorage({});
    const first: string[] = [];
    const second: string[] = [];
    storage.events.subscribe((e) => {
      first.push((e as { callSid: string }).callSid);
      if ((e as { callSid: string }).callSid === 'CA1') void storage.events.append(call('CA2'));
    });
    storage.events.subscribe(() => {
      throw new Error('a broken listener');
    });
    storage.events.subscribe((e) => second.push((e as { callSid: string }).callSid));
    await storage.events.append(call('CA1'));
    expect(first).toEqual(['CA1', 'CA2']);
    expect(second).toEqual(['CA1', 'CA2']);
    await storage.close();
  });

  it('stores a copy: changing the appended object later changes nothing', async () => {
    const storage = createMemoryStorage({});
    const event = call('CA1') as NewEvent & { data: { n: number } };
    const stored: EventRecord = await storage.events.append(event);
    event.data.n = 42;
    expect((await storage.events.readAfter(undefined))[0]).toEqual(stored);
    expect((stored.data as { n: number }).n).toBe(0);
    await storage.close();
  });

  it('refuses appends after close', async () => {
    const storage = createMemoryStorage({});
    await storage.close();
    await expect(storage.events.append(call('CA1'))).rejects.toThrow(/closed/);
  });
});

describe('memory cache', () => {
  it('evicts the least recently used entry beyond its cap', async () => {
    const storage = createMemoryStorage({ cacheMaxEntries: 2 });
    await storage.cache.set('a', 1, 60_000);
    await storage.cache.set('b', 2, 60_000);
    expect(await storage.cache.get('a')).toBe(1); // a is now the most recent
    await storage.cache.set('c', 3, 60_000);
    expect(await storage.cache.getMany(['a', 'b', 'c'])).toEqual([1, undefined, 3]);
    await storage.close();
  });

  it('never holds more than maxEntries', () => {
    const store = new LruTtlStore(10, () => 0);
    for (let i = 0; i < 100; i++) store.set(`k${i}`, i);
    expect(store.size).toBe(10);
    expect(store.get('k99')).toBe(99);
    expect(store.get('k89')).toBeUndefined();
  });

  it('rejects options that would drop every event', () => {
    expect(() => createMemoryStorage({ eventRetentionCount: 0 })).toThrow(/eventRetentionCount/);
    expect(() => createMemoryStorage({ eventRetentionMs: -1 })).toThrow(/eventRetentionMs/);
  });
});
