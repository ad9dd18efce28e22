/**
 * One contract for every Storage backend (src/storage/types.ts); storage.test.ts runs it against memory and
 * against the real Redis. Backends differ only where the harness says so: Redis has replicas (separate connections to the
 * same keys) and trims the event log approximately; memory has an injected clock.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { EventRecord, NewEvent, StatusAppend, Storage } from '../../src/storage/types.js';
import type { CallStatus } from '../../src/exotel/types.js';
import { compareEventIds } from '../../src/storage/event-id.js';

/** What a contract run needs from a backend. */
export interface StorageHarness {
  storage: Storage;
  /** Lets `ms` of time pass: the injected clock for memory, a real wait for Redis. */
  elapse(ms: number): Promise<void>;
  /** Another replica on the same shared state, or undefined when the backend is one process. */
  replica: (() => Promise<Storage>) | undefined;
  /** True when the event log keeps exactly eventRetentionCount events (Redis trims with MAXLEN ~). */
  exactCountRetention: boolean;
}

export interface HarnessOptions {
  eventRetentionMs?: number;
  eventRetentionCount?: number;
}

/** Runs the storage contract against harnesses built by `make`; every harness is closed after its test. */
export function describeStorageContract(name: string, make: (options?: HarnessOptions) => Promise<StorageHarness>): void {
  describe(`Storage contract: ${name}`, () => {
    const open: Storage[] = [];
    const harness = async (options?: HarnessOptions) => {
      const h = await make(options);
      open.push(h.storage);
      const replica = h.replica;
      return {
        ...h,
        replica: replica
          ? async () => {
              const r = await replica();
              open.push(r);
              return r;
            }
          : undefined,
      };
    };
    afterEach(async () => {
      await Promise.all(open.splice(0).map((s) => s.close()));
    });

    const callEvent = (callSid: string, status: CallStatus = 'RINGING', n = 0): NewEvent => ({
      kind: 'call',
      accountSid: 'acc1',
      callSid,
      status,
      at: new Date(1_700_000_000_000 + n * 1000).toISOString(),
      source: 'WEBHOOK',
      forward: true,
      data: { n },
    });

    describe('cache', () => {
      it('returns what was set and counts hits and misses per key', async () => {
        const { storage } = await harness();
        const { cache } = storage;
        await cache.set('a', { sid: 'a', n: 1 }, 60_000);
        await cache.set('b', [1, 2, 3], 60_000);
        expect(await cache.get('a')).toEqual({ sid: 'a', n: 1 });
        expect(await cache.get('nope')).toBeUndefined();
        expect(cache.stats).toEqual({ hits: 1, misses: 1 });
        expect(await cache.getMany(['b', 'nope', 'a'])).toEqual([[1, 2, 3], undefined, { sid: 'a', n: 1 }]);
        expect(cache.stats).toEqual({ hits: 3, misses: 2 });
        expect(await cache.getMany([])).toEqual([]);
      });

      it('forgets a value after its TTL and after delete', async () => {
        const { storage, elapse } = await harness();
        const { cache } = storage;
        await cache.set('short', 'x', 50);
        await cache.set('long', 'y', 60_000);
        await cache.set('gone', 'z', 60_000);
        await cache.delete('gone');
        await elapse(150);
        expect(await cache.get('short')).toBeUndefined();
        expect(await cache.getMany(['short', 'long', 'gone'])).toEqual([undefined, 'y', undefined]);
      });

      it('rejects a nonsense TTL instead of caching forever', async () => {
        const { storage } = await harness();
        await expect(storage.cache.set('k', 1, 0)).rejects.toThrow(/ttlMs/);
        await expect(storage.cache.set('k', 1, Number.NaN)).rejects.toThrow(/ttlMs/);
        await expect(storage.cache.setUnlessNewer('k', 1, 0, { field: 'status', newer: [] })).rejects.toThrow(/ttlMs/);
      });

      describe('setUnlessNewer', () => {
        const LATER = { field: 'status', newer: ['DONE'] };
        const FINAL = { field: 'status', newer: [] };

        it('writes what set would, unless the value held is newer by the guard', async () => {
          const { storage } = await harness();
          const { cache } = storage;
          expect(await cache.setUnlessNewer('a', { sid: 'a', status: 'DONE' }, 60_000, FINAL)).toBe(true);
          expect(await cache.setUnlessNewer('a', { sid: 'a', status: 'GOING', legs: [{ status: 'DONE' }] }, 60_000, LATER)).toBe(false);
          expect(await cache.get('a')).toEqual({ sid: 'a', status: 'DONE' });
          // Not newer: the same status again (a final call with its price filled in), or no status held.
          expect(await cache.setUnlessNewer('a', { sid: 'a', status: 'DONE', price: 1.5 }, 60_000, FINAL)).toBe(true);
          expect(await cache.getMany(['a'])).toEqual([{ sid: 'a', status: 'DONE', price: 1.5 }]);
          await cache.set('b', 'text', 60_000);
          await cache.set('c', { sid: 'c', note: ':colon and "quotes"' }, 60_000);
          expect(await cache.setUnlessNewer('b', { status: 'GOING' }, 60_000, LATER)).toBe(true);
          expect(await cache.setUnlessNewer('c', { status: 'GOING', note: ':colon' }, 60_000, LATER)).toBe(true);
          expect(await cache.getMany(['b', 'c'])).toEqual([{ status: 'GOING' }, { status: 'GOING', note: ':colon' }]);
        });

        it('keeps its TTL, and an entry past its own TTL holds nothing back', async () => {
          const { storage, elapse } = await harness();
          const { cache } = storage;
          expect(await cache.setUnlessNewer('short', { status: 'DONE' }, 50, FINAL)).toBe(true);
          expect(await cache.setUnlessNewer('long', { status: 'DONE' }, 60_000, FINAL)).toBe(true);
          await elapse(150);
          expect(await cache.get('short')).toBeUndefined();
          expect(await cache.setUnlessNewer('short', { status: 'GOING' }, 60_000, LATER)).toBe(true);
          expect(await cache.getMany(['short', 'long'])).toEqual([{ status: 'GOING' }, { status: 'DONE' }]);
        });

        it('leaves the newer value whichever of two writers lands first, across replicas too', async () => {
          const { storage, replica } = await harness();
          const other = replica ? await replica() : storage;
          const keys = Array.from({ length: 20 }, (_, i) => `race-${i}`);
          const going = (key: string) => storage.cache.setUnlessNewer(key, { status: 'GOING' }, 60_000, LATER);
          const done = (key: string) => other.cache.setUnlessNewer(key, { status: 'DONE' }, 60_000, FINAL);
          // Half the keys get the older state first, the other half last.
          await Promise.all(keys.map((key, i) => (i % 2 === 0 ? going(key) : done(key))));
          await Promise.all(keys.map((key, i) => (i % 2 === 0 ? done(key) : going(key))));
          expect(await storage.cache.getMany(keys)).toEqual(keys.map(() => ({ status: 'DONE' })));
        });
      });
    });

    describe('event log', () => {
      it('gives ids in increasing numeric order and stores events as given', async () => {
        const { storage } = await harness();
        const appended: EventRecord[] = [];
        for (let i = 0; i < 5; i++) appended.push(await storage.events.append(callEvent('CA1', 'RINGING', i)));
        for (let i = 1; i < appended.length; i++) expect(compareEventIds(appended[i - 1]!.id, appended[i]!.id)).toBeLessThan(0);
        expect(appended[2]).toMatchObject({ ...callEvent('CA1', 'RINGING', 2), id: appended[2]!.id });
        expect(await storage.events.lastId()).toBe(appended[4]!.id);
        expect(await storage.events.readAfter(undefined)).toEqual(appended);
      });

      it('pages with readAfter without a gap or a duplicate, even while events keep coming', async () => {
        const { storage } = await harness();
        const appended: string[] = [];
        const add = async (n: number) => {
          for (let i = 0; i < n; i++) appended.push((await storage.events.append(callEvent(`CA${i % 3}`, 'RINGING', i))).id);
        };
        await add(10);
        const seen: string[] = [];
        let cursor: string | undefined;
        for (let round = 0; round < 20; round++) {
          const page = await storage.events.readAfter(cursor, 4);
          expect(page.length).toBeLessThanOrEqual(4);
          seen.push(...page.map((e) => e.id));
          cursor = page.at(-1)?.id ?? cursor;
          if (round === 1) await add(7);
          if (page.length === 0 && round > 2) break;
        }
        expect(seen).toEqual(appended);
        expect(new Set(seen).size).toBe(17);
      });

      it('compares cursors as numbers, not text ("9-0" is before every real id)', async () => {
        const { storage } = await harness();
        const a = await storage.events.append(callEvent('CA1'));
        const b = await storage.events.append(callEvent('CA1', 'IN_PROGRESS'));
        // As text "9-0" > "17…-0", so a string comparison would answer [].
        expect((await storage.events.readAfter('9-0')).map((e) => e.id)).toEqual([a.id, b.id]);
        expect((await storage.events.readAfter(a.id)).map((e) => e.id)).toEqual([b.id]);
        expect(await storage.events.readAfter(b.id)).toEqual([]);
      });

      it('rejects a malformed cursor with BAD_USER_INPUT', async () => {
        const { storage } = await harness();
        await expect(storage.events.readAfter('not-an-id')).rejects.toMatchObject({ code: 'BAD_USER_INPUT', field: 'after' });
        await expect(storage.events.readAfter(undefined, 0)).rejects.toThrow(/limit/);
      });

      it('answers lastId undefined and readAfter [] when empty', async () => {
        const { storage } = await harness();
        expect(await storage.events.lastId()).toBeUndefined();
        expect(await storage.events.readAfter(undefined)).toEqual([]);
      });

      it('keeps the newest eventRetentionCount events', async () => {
        const count = 100;
        const total = 350;
        const { storage, exactCountRetention } = await harness({ eventRetentionCount: count });
        const ids: string[] = [];
        for (let i = 0; i < total; i++) ids.push((await storage.events.append(callEvent(`CA${i}`, 'RINGING', i))).id);
        const kept = (await storage.events.readAfter(undefined, total)).map((e) => e.id);
        // Always a contiguous newest suffix, never fewer than `count`.
        expect(kept).toEqual(ids.slice(ids.length - kept.length));
        if (exactCountRetention) expect(kept.length).toBe(count);
        else {
          expect(kept.length).toBeGreaterThanOrEqual(count);
          expect(kept.length).toBeLessThan(total);
        }
        // A cursor older than everything kept reads from the oldest kept.
        expect((await storage.events.readAfter(ids[0], 5)).map((e) => e.id)).toEqual(kept.slice(0, 5));
      });

      it('stops replaying events older than eventRetentionMs', async () => {
        const { storage, elapse } = await harness({ eventRetentionMs: 300 });
        await storage.events.append(callEvent('CA-old'));
        await storage.events.append({ kind: 'sms', accountSid: 'acc1', smsSid: 'SM-old', status: 'SENT', at: new Date().toISOString(), source: 'API', forward: true });
        await elapse(450);
        const fresh = await storage.events.append(callEvent('CA-new'));
        expect((await storage.events.readAfter(undefined)).map((e) => e.id)).toEqual([fresh.id]);
        expect(await storage.events.callHistory('acc1', 'CA-old')).toEqual([]);
        expect(await storage.events.smsHistory('acc1', 'SM-old')).toEqual([]);
        expect(await storage.events.lastId()).toBe(fresh.id);
      });

      it('answers no replay floor while it has removed nothing, however old the cursor (a young log)', async () => {
        const { storage } = await harness();
        expect(await storage.events.replayFloor()).toBeUndefined();
        const a = await storage.events.append(callEvent('CA-young'));
        expect(await storage.events.replayFloor()).toBeUndefined();
        expect((await storage.events.readAfter('0-0')).map((e) => e.id)).toEqual([a.id]);
      });

      it('puts the replay floor at the newest event aged out, before and after the next append', async () => {
        const { storage, elapse } = await harness({ eventRetentionMs: 300 });
        const a = await storage.events.append(callEvent('CA-aged', 'RINGING', 1));
        const b = await storage.events.append(callEvent('CA-aged', 'IN_PROGRESS', 2));
        expect(await storage.events.replayFloor()).toBeUndefined();
        await elapse(450);
        // Aged out with nothing appended since: replaying from `a` would miss `b`; from `b` it misses nothing.
        expect(await storage.events.replayFloor()).toBe(b.id);
        const c = await storage.events.append(callEvent('CA-fresh'));
        expect(await storage.events.replayFloor()).toBe(b.id);
        expect(compareEventIds(a.id, (await storage.events.replayFloor())!)).toBeLessThan(0);
        expect((await storage.events.readAfter(b.id)).map((e) => e.id)).toEqual([c.id]);
        await elapse(450);
        await storage.events.append(callEvent('CA-later'));
        expect(await storage.events.replayFloor()).toBe(c.id);
      });

      it('puts the replay floor at the first event kept once the count cap removed some', async () => {
        const count = 100;
        const total = 350;
        const { storage } = await harness({ eventRetentionCount: count });
        const ids: string[] = [];
        for (let i = 0; i < count; i++) ids.push((await storage.events.append(callEvent(`CA${i}`, 'RINGING', i))).id);
        expect(await storage.events.replayFloor()).toBeUndefined();
        for (let i = count; i < total; i++) ids.push((await storage.events.append(callEvent(`CA${i}`, 'RINGING', i))).id);
        const kept = (await storage.events.readAfter(undefined, total)).map((e) => e.id);
        expect(kept.length).toBeLessThan(total);
        expect(await storage.events.replayFloor()).toBe(kept[0]);
        expect(compareEventIds(ids[0]!, kept[0]!)).toBeLessThan(0);
      });

      it('keeps the history of each call in order, calls and accounts apart', async () => {
        const { storage } = await harness();
        const a1 = await storage.events.append(callEvent('CA-a', 'QUEUED', 1));
        await storage.events.append(callEvent('CA-b', 'RINGING', 2));
        await storage.events.append({ kind: 'sms', accountSid: 'acc1', smsSid: 'CA-a', status: 'SENT', at: new Date().toISOString(), source: 'API', forward: true });
        await storage.events.append({ ...callEvent('CA-a', 'RINGING', 3), accountSid: 'acc2' });
        const a2 = await storage.events.append(callEvent('CA-a', 'COMPLETED', 4));
        const history = await storage.events.callHistory('acc1', 'CA-a');
        expect(history).toEqual([a1, a2]);
        expect(await storage.events.callHistory('acc1', 'CA-none')).toEqual([]);
      });

      it('keeps the history of each SMS in order, apart from calls of the same Sid and other accounts', async () => {
        const { storage } = await harness();
        const sms = (smsSid: string, status: 'SUBMITTED' | 'DELIVERED', accountSid = 'acc1'): NewEvent => ({
          kind: 'sms', accountSid, smsSid, status, at: new Date().toISOString(), source: 'API', forward: true, data: { sms: { status } },
        });
        const s1 = await storage.events.append(sms('SM-a', 'SUBMITTED'));
        await storage.events.append(callEvent('SM-a', 'RINGING', 1));
        await storage.events.append(sms('SM-b', 'SUBMITTED'));
        await storage.events.append(sms('SM-a', 'DELIVERED', 'acc2'));
        // The atomic status step keeps the SMS's history too (what smsStatusChanged's snapshot reads).
        const s2 = await storage.events.appendStatus({
          event: { kind: 'sms', accountSid: 'acc1', smsSid: 'SM-a', status: 'DELIVERED', at: new Date().toISOString(), source: 'WEBHOOK', data: { sms: { price: 0.2 } } },
          rank: 4, keepNotForward: true, stateTtlMs: 60_000,
        });
        expect(await storage.events.smsHistory('acc1', 'SM-a')).toEqual([s1, s2.event]);
        expect(await storage.events.smsHistory('acc1', 'SM-none')).toEqual([]);
        expect((await storage.events.callHistory('acc1', 'SM-a')).map((e) => e.kind)).toEqual(['call']);
      });

      it('delivers every event appended after subscribe, once each, in log order', async () => {
        const { storage } = await harness();
        await storage.events.append(callEvent('CA-before'));
        const got: EventRecord[] = [];
        const done = deferred();
        const unsubscribe = storage.events.subscribe((e) => {
          if (e.kind === 'call' && e.callSid === 'CA-before') return; // Redis may overlap by events just before.
          got.push(e);
          if (e.kind === 'call' && e.callSid === 'CA-end') done.resolve();
        });
        const appended = await Promise.all(Array.from({ length: 20 }, (_, i) => storage.events.append(callEvent(`CA${i}`, 'RINGING', i))));
        appended.push(await storage.events.append(callEvent('CA-end')));
        await done.promise;
        const inLogOrder = [...appended].sort((x, y) => compareEventIds(x.id, y.id));
        expect(got).toEqual(inLogOrder);
        unsubscribe();
      });

      it('stops delivering after unsubscribe while other subscribers go on', async () => {
        const { storage } = await harness();
        const first: string[] = [];
        const second: string[] = [];
        const secondDone = deferred();
        const off = storage.events.subscribe((e) => first.push(e.id));
        storage.events.subscribe((e) => {
          second.push(e.id);
          if (second.length === 2) secondDone.resolve();
        });
        const a = await storage.events.append(callEvent('CA1'));
        await until(() => first.length === 1);
        off();
        const b = await storage.events.append(callEvent('CA2'));
        await secondDone.promise;
        expect(first).toEqual([a.id]);
        expect(second).toEqual([a.id, b.id]);
      });
    });

    describe('atomic status step (appendStatus)', () => {
      const status = (callSid: string, st: CallStatus, rank: number, extra: Partial<StatusAppend> = {}): StatusAppend => ({
        event: { kind: 'call', accountSid: 'acc1', callSid, status: st, at: '2026-11-20T10:00:00+05:30', source: 'WEBHOOK', data: { st } },
        rank,
        keepNotForward: true,
        stateTtlMs: 60_000,
        ...extra,
      });

      it('dedups on (account, Sid, status), moves forward only, and keeps what is not forward as history', async () => {
        const { storage } = await harness();
        const ev = storage.events;
        const r1 = await ev.appendStatus(status('CA1', 'RINGING', 1));
        expect(r1).toMatchObject({ forward: true, previousRank: -1, event: { kind: 'call', callSid: 'CA1', status: 'RINGING', forward: true, data: { st: 'RINGING' } } });
        expect(await ev.appendStatus(status('CA1', 'RINGING', 1))).toMatchObject({ forward: false, reason: 'duplicate', previousRank: 1, event: { forward: false } });
        expect(await ev.appendStatus(status('CA1', 'QUEUED', 0))).toMatchObject({ forward: false, reason: 'backwards', event: { forward: false } });
        expect(await ev.appendStatus(status('CA1', 'COMPLETED', 3))).toMatchObject({ forward: true, previousRank: 1 });
        // Another account's call of the same Sid is another subject.
        const other = status('CA1', 'RINGING', 1);
        other.event = { ...other.event, accountSid: 'acc2' };
        expect(await ev.appendStatus(other)).toMatchObject({ forward: true, previousRank: -1 });
        // Not kept: nothing stored at all (the gateway's own repeats).
        const before = await ev.lastId();
        expect(await ev.appendStatus(status('CA1', 'RINGING', 1, { keepNotForward: false }))).toEqual({ forward: false, reason: 'duplicate', event: undefined, previousRank: 3 });
        expect(await ev.lastId()).toBe(before);
        const history = await ev.callHistory('acc1', 'CA1');
        expect(history.map((e) => `${e.status}:${e.forward}`)).toEqual(['RINGING:true', 'RINGING:false', 'QUEUED:false', 'COMPLETED:true']);
        expect(r1.event).toEqual(history[0]);
        expect(await ev.statusRank('call', 'acc1', 'CA1')).toBe(3);
        expect(await ev.statusRank('call', 'acc1', 'CA-none')).toBeUndefined();
        expect(await ev.statusRank('sms', 'acc1', 'CA1')).toBeUndefined();
        await expect(ev.appendStatus(status('CA1', 'RINGING', -1))).rejects.toThrow(/rank/);
      });

      it('settles equal-rank statuses by the first stored: the other is history, not forward', async () => {
        const { storage } = await harness();
        expect(await storage.events.appendStatus(status('CA2', 'COMPLETED', 3))).toMatchObject({ forward: true });
        expect(await storage.events.appendStatus(status('CA2', 'BUSY', 3))).toMatchObject({ forward: false, reason: 'backwards', event: { status: 'BUSY', forward: false } });
        expect(await storage.events.appendStatus(status('CA2', 'BUSY', 3))).toMatchObject({ forward: false, reason: 'duplicate' });
      });

      it('is atomic across replicas: of conflicting final statuses sent at once, exactly one is forward', async () => {
        const { storage, replica } = await harness();
        const other = replica ? await replica() : storage;
        const sids = Array.from({ length: 50 }, (_, i) => `CA-race-${i}`);
        const results = await Promise.all(
          sids.flatMap((sid) => [
            storage.events.appendStatus(status(sid, 'COMPLETED', 3)),
            other.events.appendStatus(status(sid, 'BUSY', 3)),
            other.events.appendStatus(status(sid, 'COMPLETED', 3)),
          ]),
        );
        for (let i = 0; i < sids.length; i += 1) {
          const three = results.slice(i * 3, i * 3 + 3);
          expect(three.filter((r) => r.forward)).toHaveLength(1);
          const history = await storage.events.callHistory('acc1', sids[i]!);
          expect(history).toHaveLength(3);
          expect(history.filter((e) => e.forward)).toHaveLength(1);
          // The history's first entry is the winner: decided and stored in one step.
          expect(history[0]!.forward).toBe(true);
        }
      });

      it('stores the request reference and the open-item bookkeeping in the same step', async () => {
        const { storage } = await harness();
        const ev = storage.events;
        await ev.appendStatus(status('CA3', 'IN_PROGRESS', 2, { requestRef: { ref: 'ref-0123456789abcdef', ttlMs: 60_000 }, open: { add: { set: 'calls:acc1', atMs: 1_000 } } }));
        expect(await ev.requestRef('acc1', 'ref-0123456789abcdef')).toBe('CA3');
        expect(await ev.requestRef('acc2', 'ref-0123456789abcdef')).toBeUndefined();
        expect(await storage.openItems.dueBy('calls:acc1', 1_000, 10)).toEqual(['CA3']);
        // An id already there keeps its time.
        await ev.appendStatus(status('CA4', 'RINGING', 1, { open: { add: { set: 'calls:acc1', atMs: 5 } } }));
        await ev.appendStatus(status('CA4', 'IN_PROGRESS', 2, { open: { add: { set: 'calls:acc1', atMs: 2_000 } } }));
        expect(await storage.openItems.dueBy('calls:acc1', 10, 10)).toEqual(['CA4']);
        // Applied only to a forward status.
        await ev.appendStatus(status('CA3', 'RINGING', 1, { open: { remove: ['calls:acc1'] } }));
        expect(await storage.openItems.dueBy('calls:acc1', 1_000, 10)).toEqual(['CA4', 'CA3']);
        await storage.openItems.put('watched:acc1', 'CA3', 1);
        await ev.appendStatus(status('CA3', 'COMPLETED', 3, { open: { remove: ['calls:acc1', 'watched:acc1'] } }));
        expect(await storage.openItems.dueBy('calls:acc1', 1_000, 10)).toEqual(['CA4']);
        expect(await storage.openItems.dueBy('watched:acc1', 1_000, 10)).toEqual([]);
      });

      it('records when the step added a Sid to an open set, and a Sid it removes is new when put back', async () => {
        const { storage, elapse } = await harness();
        const ev = storage.events;
        await ev.appendStatus(status('CA7', 'RINGING', 1, { open: { add: { set: 'calls:acc1', atMs: 1_000 } } }));
        await elapse(20);
        await storage.openItems.put('calls:acc1', 'CA8', 1_000);
        // The step's own time, not the time it was first asked for (what an id without one gets).
        const stepAdded = (await storage.openItems.addedAt('calls:acc1', 'CA7'))!;
        const putAdded = (await storage.openItems.addedAt('calls:acc1', 'CA8'))!;
        expect(putAdded - stepAdded).toBeGreaterThanOrEqual(20);
        // A later forward status keeps it (the Sid is already there).
        await ev.appendStatus(status('CA7', 'IN_PROGRESS', 2, { open: { add: { set: 'calls:acc1', atMs: 9_000 } } }));
        expect(await storage.openItems.addedAt('calls:acc1', 'CA7')).toBe(stepAdded);
        await storage.openItems.put('watched:acc1', 'CA7', 1);
        await ev.appendStatus(status('CA7', 'COMPLETED', 3, { open: { remove: ['calls:acc1', 'watched:acc1'] } }));
        expect(await storage.openItems.addedAt('calls:acc1', 'CA7')).toBeUndefined();
        expect(await storage.openItems.addedAt('watched:acc1', 'CA7')).toBeUndefined();
        await storage.openItems.put('calls:acc1', 'CA7', 1_000);
        expect(await storage.openItems.addedAt('calls:acc1', 'CA7')).toBeGreaterThanOrEqual(putAdded);
      });

      it('keeps SMS and incoming-call announcements apart from calls, announced once', async () => {
        const { storage } = await harness();
        const ev = storage.events;
        const sms = (st: 'SENT' | 'DELIVERED' | 'FAILED', rank: number): StatusAppend => ({
          event: { kind: 'sms', accountSid: 'acc1', smsSid: 'SM1', status: st, at: '2026-11-20T10:00:00+05:30', source: 'WEBHOOK' },
          rank,
          keepNotForward: true,
          stateTtlMs: 60_000,
        });
        expect(await ev.appendStatus(sms('SENT', 3))).toMatchObject({ forward: true, event: { kind: 'sms', smsSid: 'SM1', forward: true } });
        expect(await ev.appendStatus(sms('DELIVERED', 4))).toMatchObject({ forward: true });
        expect(await ev.appendStatus(sms('FAILED', 4))).toMatchObject({ forward: false, reason: 'backwards' });
        const incoming: StatusAppend = {
          event: { kind: 'incoming', accountSid: 'acc1', callSid: 'SM1', at: '2026-11-20T10:00:00+05:30', source: 'WEBHOOK', data: { flow: '1' } },
          rank: 0,
          keepNotForward: true,
          stateTtlMs: 60_000,
        };
        expect(await ev.appendStatus(incoming)).toMatchObject({ forward: true, event: { kind: 'incoming', forward: true } });
        expect(await ev.appendStatus(incoming)).toMatchObject({ forward: false, reason: 'duplicate', event: { kind: 'incoming', forward: false } });
        // A call with the same Sid is not the announcement's subject.
        expect(await ev.appendStatus(status('SM1', 'RINGING', 1))).toMatchObject({ forward: true });
        expect(await ev.statusRank('sms', 'acc1', 'SM1')).toBe(4);
      });

      it('stores a second subject in the same step (an announcement with its call event) and answers the call history', async () => {
        const { storage } = await harness();
        const ev = storage.events;
        const announce = (callSid: string): StatusAppend => ({
          event: { kind: 'incoming', accountSid: 'acc1', callSid, at: '2026-11-20T10:00:00+05:30', source: 'WEBHOOK', data: { call: callSid } },
          rank: 0,
          keepNotForward: true,
          stateTtlMs: 60_000,
          open: { add: { set: 'calls:acc1', atMs: 7 } },
        });
        const first = await ev.appendStatus(status('CA5', 'IN_PROGRESS', 2, { also: announce('CA5'), withHistory: true }));
        expect(first).toMatchObject({ forward: true, event: { kind: 'call', status: 'IN_PROGRESS' }, also: { forward: true, previousRank: -1, event: { kind: 'incoming', callSid: 'CA5', forward: true } } });
        // Stored right after the call event, and the history is the call's as it is after the step.
        expect(first.also!.event!.id > first.event!.id).toBe(true);
        expect(first.history).toEqual([first.event]);
        expect(await storage.openItems.dueBy('calls:acc1', 7, 10)).toEqual(['CA5']);
        // Every later request: the call's own step as usual, the announcement a duplicate, kept as history.
        const repeat = await ev.appendStatus(status('CA5', 'IN_PROGRESS', 2, { also: announce('CA5'), withHistory: true }));
        expect(repeat).toMatchObject({ forward: false, reason: 'duplicate', also: { forward: false, reason: 'duplicate', event: { kind: 'incoming', forward: false } } });
        const last = await ev.appendStatus(status('CA5', 'COMPLETED', 3, { also: { ...announce('CA5'), keepNotForward: false }, withHistory: true }));
        expect(last).toMatchObject({ forward: true, also: { forward: false, reason: 'duplicate', event: undefined } });
        expect(last.history!.map((e) => `${e.status}:${e.forward}`)).toEqual(['IN_PROGRESS:true', 'IN_PROGRESS:false', 'COMPLETED:true']);
        expect(last.history).toEqual(await ev.callHistory('acc1', 'CA5'));
        const logged = await ev.readAfter(undefined, 100);
        expect(logged.filter((e) => e.kind === 'incoming').map((e) => e.forward)).toEqual([true, false]);
        // Without withHistory or also, nothing more is answered.
        const plain = await ev.appendStatus(status('CA6', 'RINGING', 1));
        expect(plain.also).toBeUndefined();
        expect(plain.history).toBeUndefined();
        await expect(ev.appendStatus(status('CA6', 'RINGING', 1, { also: { ...announce('CA6'), also: announce('CA6') } }))).rejects.toThrow(RangeError);
      });

      it('announces an incoming call once across replicas, whichever request of its flow is stored first', async () => {
        const { storage, replica } = await harness();
        const other = replica ? await replica() : storage;
        const sids = Array.from({ length: 30 }, (_, i) => `CA-flow-${i}`);
        const announce = (callSid: string): StatusAppend => ({
          event: { kind: 'incoming', accountSid: 'acc1', callSid, at: '2026-11-20T10:00:00+05:30', source: 'WEBHOOK' },
          rank: 0,
          keepNotForward: true,
          stateTtlMs: 60_000,
        });
        const results = await Promise.all(
          sids.flatMap((sid) => [
            storage.events.appendStatus(status(sid, 'IN_PROGRESS', 2, { also: announce(sid), withHistory: true })),
            other.events.appendStatus(status(sid, 'IN_PROGRESS', 2, { also: announce(sid), withHistory: true })),
            other.events.appendStatus(status(sid, 'COMPLETED', 3, { also: announce(sid), withHistory: true })),
          ]),
        );
        for (let i = 0; i < sids.length; i += 1) {
          const three = results.slice(i * 3, i * 3 + 3);
          expect(three.filter((r) => r.also?.forward)).toHaveLength(1);
          // The announcement went with whichever call event was stored first.
          const history = await storage.events.callHistory('acc1', sids[i]!);
          const winner = three.find((r) => r.also?.forward)!;
          expect(winner.event!.id).toBe(history[0]!.id);
          expect(winner.history![0]).toEqual(history[0]);
        }
      });

      describe('a mark on the first subject skips the second step, in the same step', () => {
        const announce = (callSid: string, unlessMarked?: string): StatusAppend => ({
          event: { kind: 'incoming', accountSid: 'acc1', callSid, at: '2026-11-20T10:00:00+05:30', source: 'WEBHOOK' },
          rank: 0,
          keepNotForward: true,
          stateTtlMs: 60_000,
          ...(unlessMarked ? { unlessMarked } : {}),
        });
        const announced = async (storage: Storage, callSid: string) =>
          (await storage.events.readAfter(undefined, 1000)).filter((e) => e.kind === 'incoming' && e.callSid === callSid).map((e) => e.forward);

        it('skips it, storing nothing of it, when an earlier step marked the subject, this step, or a step that stored nothing', async () => {
          const { storage } = await harness();
          const ev = storage.events;
          // Marked by an earlier step: the call event is stored and its history answered, the second step skipped.
          await ev.appendStatus(status('CA-m1', 'RINGING', 1, { mark: 'outgoing' }));
          const skipped = await ev.appendStatus(status('CA-m1', 'IN_PROGRESS', 2, { also: announce('CA-m1', 'outgoing'), withHistory: true }));
          expect(skipped).toMatchObject({ forward: true, event: { status: 'IN_PROGRESS' } });
          expect(skipped.also).toBeUndefined();
          expect(skipped.history!.map((e) => e.status)).toEqual(['RINGING', 'IN_PROGRESS']);
          expect(await announced(storage, 'CA-m1')).toEqual([]);
          // Marked by the step's own first subject.
          expect((await ev.appendStatus(status('CA-m2', 'RINGING', 1, { mark: 'outgoing', also: announce('CA-m2', 'outgoing') }))).also).toBeUndefined();
          // Marked by a step that stored nothing (a repeat the gateway made itself): the mark is kept all the same.
          await ev.appendStatus(status('CA-m3', 'RINGING', 1));
          const before = await ev.lastId();
          expect(await ev.appendStatus(status('CA-m3', 'RINGING', 1, { keepNotForward: false, mark: 'outgoing' }))).toMatchObject({ forward: false, reason: 'duplicate', event: undefined, previousRank: 1 });
          expect(await ev.lastId()).toBe(before);
          expect((await ev.appendStatus(status('CA-m3', 'IN_PROGRESS', 2, { also: announce('CA-m3', 'outgoing') }))).also).toBeUndefined();
          expect(await ev.statusRank('call', 'acc1', 'CA-m3')).toBe(2);
          expect(await announced(storage, 'CA-m2')).toEqual([]);
          expect(await announced(storage, 'CA-m3')).toEqual([]);
        });

        it('runs it when the subject carries no such mark, and announces once', async () => {
          const { storage } = await harness();
          const ev = storage.events;
          const first = await ev.appendStatus(status('CA-m4', 'IN_PROGRESS', 2, { also: announce('CA-m4', 'outgoing'), withHistory: true }));
          expect(first).toMatchObject({ forward: true, also: { forward: true, previousRank: -1, event: { kind: 'incoming', callSid: 'CA-m4', forward: true } } });
          // Another mark is not this one.
          await ev.appendStatus(status('CA-m5', 'RINGING', 1, { mark: 'other' }));
          expect(await ev.appendStatus(status('CA-m5', 'IN_PROGRESS', 2, { also: announce('CA-m5', 'outgoing') }))).toMatchObject({ also: { forward: true } });
          // The announcement's own subject is deduplicated as always; a mark made later does not undo it.
          expect(await ev.appendStatus(status('CA-m4', 'IN_PROGRESS', 2, { also: announce('CA-m4', 'outgoing') }))).toMatchObject({ also: { forward: false, reason: 'duplicate' } });
          await ev.appendStatus(status('CA-m4', 'COMPLETED', 3, { mark: 'outgoing' }));
          expect(await announced(storage, 'CA-m4')).toEqual([true, false]);
          expect(await announced(storage, 'CA-m5')).toEqual([true]);
          // A mark on a first step, a skip on a first step and a malformed mark are the caller's bugs.
          await expect(ev.appendStatus(status('CA-m6', 'RINGING', 1, { unlessMarked: 'outgoing' }))).rejects.toThrow(RangeError);
          await expect(ev.appendStatus(status('CA-m6', 'RINGING', 1, { mark: 'Out going' }))).rejects.toThrow(RangeError);
          await expect(ev.appendStatus(status('CA-m6', 'RINGING', 1, { also: { ...announce('CA-m6'), unlessMarked: '' } }))).rejects.toThrow(RangeError);
          expect(await ev.statusRank('call', 'acc1', 'CA-m6')).toBeUndefined();
        });

        it('decides atomically across replicas: announced exactly when its call event was stored before the mark', async () => {
          const { storage, replica } = await harness();
          const other = replica ? await replica() : storage;
          const sids = Array.from({ length: 40 }, (_, i) => `CA-mrace-${i}`);
          const results = await Promise.all(
            sids.flatMap((sid) => [
              storage.events.appendStatus(status(sid, 'IN_PROGRESS', 2, { mark: 'outgoing' })),
              other.events.appendStatus(status(sid, 'RINGING', 1, { also: announce(sid, 'outgoing') })),
            ]),
          );
          for (let i = 0; i < sids.length; i += 1) {
            const [marking, asking] = [results[i * 2]!, results[i * 2 + 1]!];
            const announcedFirst = compareEventIds(asking.event!.id, marking.event!.id) < 0;
            expect(asking.also?.forward ?? false).toBe(announcedFirst);
            expect(await announced(storage, sids[i]!)).toEqual(announcedFirst ? [true] : []);
          }
        });

        it('forgets a mark with the subject\'s state', async () => {
          const { storage, elapse } = await harness();
          await storage.events.appendStatus(status('CA-mttl', 'RINGING', 1, { stateTtlMs: 50, mark: 'outgoing' }));
          await elapse(150);
          expect(await storage.events.appendStatus(status('CA-mttl', 'RINGING', 1, { also: announce('CA-mttl', 'outgoing') }))).toMatchObject({ forward: true, previousRank: -1, also: { forward: true } });
        });
      });

      it('forgets a subject after its state TTL, and a request reference after its own', async () => {
        const { storage, elapse } = await harness();
        await storage.events.appendStatus(status('CA-ttl', 'COMPLETED', 3, { stateTtlMs: 50, requestRef: { ref: 'ref-ttl-0123456789ab', ttlMs: 50 } }));
        await elapse(150);
        expect(await storage.events.statusRank('call', 'acc1', 'CA-ttl')).toBeUndefined();
        expect(await storage.events.requestRef('acc1', 'ref-ttl-0123456789ab')).toBeUndefined();
        expect(await storage.events.appendStatus(status('CA-ttl', 'RINGING', 1, { stateTtlMs: 50 }))).toMatchObject({ forward: true, previousRank: -1 });
      });
    });

    describe('idempotency', () => {
      it('begins once, then replays the finished record; abandon frees the key', async () => {
        const { storage } = await harness();
        const { idempotency } = storage;
        const begins = await Promise.all(Array.from({ length: 10 }, () => idempotency.begin('idem:1', 'fp1', 60_000)));
        expect(begins.filter((b) => b.created)).toHaveLength(1);
        const other = begins.find((b) => !b.created);
        expect(other).toMatchObject({ created: false, record: { state: 'pending', fingerprint: 'fp1' } });
        expect(typeof (other as { record: { startedAt: number } }).record.startedAt).toBe('number');

        await idempotency.finish('idem:1', { state: 'done', fingerprint: 'fp1', result: { sid: 'CA1', n: [1, 2] } }, 60_000);
        expect(await idempotency.begin('idem:1', 'fp2', 60_000)).toEqual({
          created: false,
          record: { state: 'done', fingerprint: 'fp1', result: { sid: 'CA1', n: [1, 2] } },
        });

        expect(await idempotency.begin('idem:2', 'fp', 60_000)).toEqual({ created: true });
        await idempotency.abandon('idem:2');
        expect(await idempotency.begin('idem:2', 'fp', 60_000)).toEqual({ created: true });
        await idempotency.finish('idem:2', { state: 'unknown', fingerprint: 'fp', reason: 'timeout' }, 60_000);
        expect(await idempotency.begin('idem:2', 'fp', 60_000)).toMatchObject({ created: false, record: { state: 'unknown', reason: 'timeout' } });
      });

      it('forgets a record after its TTL', async () => {
        const { storage, elapse } = await harness();
        expect(await storage.idempotency.begin('idem:ttl', 'fp', 50)).toEqual({ created: true });
        await elapse(150);
        expect(await storage.idempotency.begin('idem:ttl', 'fp', 50)).toEqual({ created: true });
      });
    });

    describe('lease', () => {
      it('is renewed by its holder and can be released', async () => {
        const { storage } = await harness();
        expect(await storage.lease.acquire('poller', 60_000)).toBe(true);
        expect(await storage.lease.acquire('poller', 60_000)).toBe(true);
        await storage.lease.release('poller');
        expect(await storage.lease.acquire('poller', 60_000)).toBe(true);
      });

      it('is held by one replica at a time and passes on after release or expiry', async (ctx) => {
        const h = await harness();
        if (!h.replica) return ctx.skip();
        const other = await h.replica();
        expect(await h.storage.lease.acquire('reconciler', 60_000)).toBe(true);
        expect(await other.lease.acquire('reconciler', 60_000)).toBe(false);
        await other.lease.release('reconciler'); // not the holder: no effect
        expect(await other.lease.acquire('reconciler', 60_000)).toBe(false);
        await h.storage.lease.release('reconciler');
        expect(await other.lease.acquire('reconciler', 60_000)).toBe(true);
        expect(await h.storage.lease.acquire('reconciler', 60_000)).toBe(false);

        expect(await h.storage.lease.acquire('short', 100)).toBe(true);
        expect(await other.lease.acquire('short', 100)).toBe(false);
        await h.elapse(250);
        expect(await other.lease.acquire('short', 60_000)).toBe(true);
      });
    });

    describe('replicas', () => {
      it('delivers an event appended by another replica to every subscriber exactly once', async (ctx) => {
        const h = await harness();
        if (!h.replica) return ctx.skip();
        const other = await h.replica();
        const seenHere: string[] = [];
        const seenThere: string[] = [];
        const hereDone = deferred();
        const thereDone = deferred();
        const watch = (into: string[], done: ReturnType<typeof deferred>) => (e: EventRecord) => {
          into.push(e.id);
          if (e.kind === 'call' && e.callSid === 'CA-sentinel') done.resolve();
        };
        h.storage.events.subscribe(watch(seenHere, hereDone));
        other.events.subscribe(watch(seenThere, thereDone));
        const ids: string[] = [];
        for (let i = 0; i < 5; i++) ids.push((await other.events.append(callEvent(`CA-r${i}`))).id);
        ids.push((await h.storage.events.append(callEvent('CA-mine'))).id);
        // A sentinel after everything: once it arrives, any duplicate would have arrived before it.
        ids.push((await other.events.append(callEvent('CA-sentinel'))).id);
        await Promise.all([hereDone.promise, thereDone.promise]);
        expect(seenHere).toEqual(ids);
        expect(seenThere).toEqual(ids);
        expect(await h.storage.events.readAfter(undefined)).toEqual(await other.events.readAfter(undefined));
      });

      it('shares rate budgets by name', async (ctx) => {
        const h = await harness();
        if (!h.replica) return ctx.skip();
        const other = await h.replica();
        const name = `acct-${Math.random().toString(36).slice(2)}`;
        expect(await h.storage.rateBudget(name, 2, 60_000).tryTake()).toEqual({ ok: true });
        expect(await other.rateBudget(name, 2, 60_000).tryTake()).toEqual({ ok: true });
        expect(await h.storage.rateBudget(name, 2, 60_000).tryTake()).toMatchObject({ ok: false });
      });
    });

    describe('lifecycle', () => {
      it('answers ping, returns the same budget per name, and closes twice without error', async () => {
        const { storage } = await harness();
        expect(await storage.ping()).toBe(true);
        const budget = storage.rateBudget('acct', 1, 60_000);
        expect(await budget.tryTake()).toEqual({ ok: true });
        expect(await storage.rateBudget('acct', 1, 60_000).tryTake()).toMatchObject({ ok: false });
        await storage.close();
        await storage.close();
        expect(await storage.ping()).toBe(false);
      });
    });
  });
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** Waits for a condition that an asynchronous delivery will make true (bounded by the test timeout). */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((r) => setTimeout(r, 5));
}
