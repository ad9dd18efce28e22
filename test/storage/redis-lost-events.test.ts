/**
 * A replica's event log reader that falls behind by more than the stream keeps: its connection to Redis is
 * cut off (a proxy stalls it, as a network partition does) while other replicas append past the count cap,
 * so the events after its last one are trimmed before it reads them. Its subscribers cannot get those
 * events; they must be told, not carry on as if nothing was missed. Real Redis, a real second storage
 * appending, the reader's own connections through a TCP proxy in front of the same Redis.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createRedisStorage } from '../../src/storage/redis.js';
import type { EventRecord, LostEvents, NewEvent, Storage } from '../../src/storage/types.js';
import { compareEventIds } from '../../src/storage/event-id.js';
import { deleteKeys, redisOrSkip, testPrefix, TEST_REDIS_URL } from '../helpers/redis.js';
import { startStallProxy, type StallProxy } from '../helpers/stall-proxy.js';

const prefix = testPrefix('lost-events');
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const RETENTION = 1000;

const event = (n: number): NewEvent => ({ kind: 'call', accountSid: 'acc', callSid: `CA${n}`, status: 'COMPLETED', at: '2024-01-01T10:00:00+05:30', source: 'WEBHOOK', forward: true });

async function until(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 20));
  if (!check()) throw new Error(`timed out waiting for ${what}`);
}

describe.skipIf(!(await redisOrSkip()))('a Redis event log reader that fell behind past the count cap', () => {
  const open: Storage[] = [];
  let proxy: StallProxy | undefined;
  afterAll(async () => {
    await Promise.all(open.map((s) => s.close()));
    await proxy?.close();
    await deleteKeys(prefix);
  });

  it('tells its subscribers which events it lost, before it gives them what came after', async () => {
    proxy = await startStallProxy(TEST_REDIS_URL);
    const reader = await createRedisStorage({ redisUrl: proxy.url, keyPrefix: prefix, logger: quiet, eventRetentionCount: RETENTION });
    const writer = await createRedisStorage({ redisUrl: TEST_REDIS_URL, keyPrefix: prefix, logger: quiet, eventRetentionCount: RETENTION });
    open.push(reader, writer);
    const seen: Array<EventRecord | LostEvents> = [];
    reader.events.subscribe(
      (e) => seen.push(e),
      (lost) => seen.push(lost),
    );
    const delivered = () => seen.filter((s): s is EventRecord => 'kind' in s);

    // The reader's next read reaches Redis, and nothing after it does.
    proxy.stallAfter((sent) => /xread/i.test(sent));
    const first = await writer.events.append(event(0));
    await until('the first event', () => delivered().length === 1);
    await until('the reader to stall', () => proxy!.stalled());
    // Meanwhile the other replicas append past the count cap: the stream is trimmed beyond what the reader has.
    const appended: EventRecord[] = [];
    for (let n = 1; n <= RETENTION * 3; n += 100) appended.push(...(await Promise.all(Array.from({ length: 100 }, (_, i) => writer.events.append(event(n + i))))));
    const floor = (await writer.events.replayFloor())!;
    expect(compareEventIds(floor, appended[1]!.id)).toBeGreaterThan(0);

    // The partition ends: the reader reconnects and reads on from its last event.
    proxy.release();
    const last = appended.at(-1)!;
    await until('the last event', () => delivered().some((e) => e.id === last.id));
    const gap = seen.findIndex((s) => !('kind' in s));
    expect(gap).toBeGreaterThan(0);
    const lost = seen[gap] as LostEvents;
    const before = delivered().filter((e) => compareEventIds(e.id, lost.before) < 0);
    // What it got before the gap ends at `after`; what it got after starts at `before`, the first event kept.
    expect(lost.after).toBe(before.at(-1)!.id);
    expect(compareEventIds(lost.before, floor)).toBeLessThanOrEqual(0);
    expect((seen[gap + 1] as EventRecord).id).toBe(lost.before);
    expect(seen.slice(0, gap).every((s) => 'kind' in s && compareEventIds(s.id, lost.after) <= 0)).toBe(true);
    expect(first.id).toBe(delivered()[0]!.id);
  }, 60_000);
});
