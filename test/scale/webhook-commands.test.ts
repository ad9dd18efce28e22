/**
 * What one stored callback costs Redis before its 200, counted by Redis itself (INFO commandstats) on a
 * private redis-server, so nothing else on the machine adds to the count. INFO commandstats also counts
 * the commands a Lua script runs; MONITOR tells those (source "lua") from the commands a client sent,
 * which are the round trips. The two counts are checked against each other. The gateway is the real server
 * on Redis storage; callbacks go over real HTTP. Its background loops (poller, reconciler) first run one
 * interval after start, long after this test is done, so every command counted is a callback's.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { monitorCommands, redisAvailable, testPrefix } from '../helpers/redis.js';
import { startPrivateRedis, type RedisProcess } from '../helpers/processes.js';
import { createEntityCache } from '../../src/cache/entities.js';
import type { Call } from '../../src/exotel/types.js';
import { callbackUrlsOf } from '../live/webhook-helpers.js';
import { newCallSid } from './harness.js';

const haveRedisServer = (await redisAvailable()) || process.env.REQUIRE_REDIS === '1';

/** Commands that are not a callback's: the event log's blocking reader (after the 200) and this test's own. */
const NOT_PER_CALLBACK = new Set(['xread', 'info', 'config', 'client', 'hello', 'select', 'ping', 'monitor']);

/** calls per command name since the last CONFIG RESETSTAT, without NOT_PER_CALLBACK. */
async function commandStats(redis: Redis): Promise<Map<string, number>> {
  const text = await redis.info('commandstats');
  const stats = new Map<string, number>();
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    const name = m[1]!.toLowerCase();
    if (!NOT_PER_CALLBACK.has(name.split('|')[0]!)) stats.set(name, Number(m[2]));
  }
  return stats;
}

const countBy = (items: string[]) => Object.fromEntries([...new Set(items)].map((k) => [k, items.filter((i) => i === k).length]));
const cachedCall = (sid: string, accountSid: string): Call => ({
  sid, parentCallSid: null, accountSid, from: '+919876543210', to: '+919812345670', phoneNumberSid: null,
  status: 'RINGING', direction: 'OUTBOUND_API', startTime: null, endTime: null, durationSeconds: null, price: null,
  recordingUrl: null, answeredBy: null, customField: null, dateCreated: '2026-01-15T10:00:00+05:30', dateUpdated: '2026-01-15T10:00:00+05:30',
  conversationDurationSeconds: null, legs: null,
});
const total = (stats: Map<string, number>) => [...stats.values()].reduce((a, b) => a + b, 0);

describe.skipIf(!haveRedisServer)('Redis commands per stored callback', () => {
  let redis: RedisProcess;
  let gw: TestGateway;
  let probe: Redis;

  beforeAll(async () => {
    redis = await startPrivateRedis({ durable: false });
    gw = await startGateway(
      { REDIS_URL: redis.url, REDIS_KEY_PREFIX: testPrefix('commands'), LIVE_POLL_INTERVAL_MS: '3600000', RECONCILE_GRACE_SECONDS: '3600' },
      {},
      {},
      { autoStop: false },
    );
    probe = new Redis(redis.url);
  }, 60_000);

  afterAll(async () => {
    probe?.disconnect();
    await gw?.stop();
    await redis?.dispose();
  });

  const post = async (sid: string, status: string, ref?: string) => {
    const url = `${callbackUrlsOf(gw).callStatus}${ref ? `?ref=${ref}` : ''}`;
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ CallSid: sid, Status: status, DateUpdated: '2026-01-15 10:00:00', EventType: status === 'in-progress' ? 'answered' : 'terminal' }).toString(),
    });
    expect({ status: res.status, body: await res.text() }).toEqual({ status: 200, body: 'OK' });
  };

  /** Starts MONITOR; stop() answers each command seen, but this test's own, with its source (a client or "lua"). */
  const monitor = async () => {
    const watch = await monitorCommands(redis.url);
    return {
      stop: async () => (await watch.stop()).filter((c) => !NOT_PER_CALLBACK.has(c.command)).map(({ command, fromScript }) => ({ command, fromScript })),
    };
  };

  it('is at most 3 — the atomic step, the cached call read and, for a cached call, its write — with or without a request reference', async () => {
    // Scripts loaded (EVALSHA from now on) and connections warm before counting.
    await post(newCallSid(), 'in-progress', 'warmupreference-000000');
    const calls = 20;
    const sids = Array.from({ length: calls }, newCallSid);
    // Half the calls are cached (a query read them), so their callbacks also write the cached call.
    const entities = createEntityCache(gw.storage.cache, gw.exotel.accountSid);
    const cachedSids = sids.filter((_, i) => i % 4 < 2);
    for (const sid of cachedSids) await entities.putCall(cachedCall(sid, gw.exotel.accountSid));
    await probe.config('RESETSTAT');
    const watch = await monitor();

    for (const [i, sid] of sids.entries()) {
      await post(sid, 'in-progress', i % 2 === 0 ? `reference-${String(i).padStart(10, '0')}` : undefined);
      await post(sid, 'completed');
    }
    const stored = calls * 2;
    const seen = await watch.stop();
    const stats = await commandStats(probe);
    // Redis's own count and MONITOR's agree, so MONITOR missed nothing.
    expect(seen.length).toBe(total(stats) - (stats.get('echo') ?? 0));
    const sent = seen.filter((s) => !s.fromScript);
    const roundTrips = sent.length / stored;
    expect({ roundTrips, sent: countBy(sent.map((s) => s.command)) }).toEqual({ roundTrips: expect.any(Number), sent: expect.any(Object) });
    expect(roundTrips).toBeLessThanOrEqual(3);
    // Exactly one step per callback (dedup, the forward-only decision, the append, the request reference
    // and the open-call list are all in it), one read of the cached call (and its "no such call" mark), and
    // a write only where a call was cached (a script too: the cached call is never taken back to an earlier
    // status, src/cache/entities.ts): nothing else.
    expect(stats.get('evalsha')).toBe(stored + cachedSids.length * 2);
    expect(countBy(sent.map((s) => s.command))).toEqual({ evalsha: stored + cachedSids.length * 2, mget: stored });
    const [cached] = await entities.getCalls([cachedSids[0]!]);
    expect(cached).toMatchObject({ status: 'COMPLETED', from: '+919876543210' });
    // Every callback was stored and published once.
    for (const sid of sids) {
      const history = await gw.storage.events.callHistory(gw.exotel.accountSid, sid);
      expect(history.map((e) => `${e.status}:${e.forward}`)).toEqual(['IN_PROGRESS:true', 'COMPLETED:true']);
    }
    expect(await gw.storage.events.requestRef(gw.exotel.accountSid, 'reference-0000000000')).toBe(sids[0]);
  });

  /** One Passthru request of an incoming-call flow (GET, as Exotel sends it by default). */
  const passthru = async (sid: string, extra: Record<string, string>) => {
    const query = new URLSearchParams({
      CallSid: sid, CallFrom: '09876543210', CallTo: '08039591111', Direction: 'incoming', Created: 'Wed, 23 Feb 2022 12:31:59',
      StartTime: '2022-02-23 12:32:02', CurrentTime: '2022-02-23 12:32:03', flow_id: '228866', tenant_id: '67890', ...extra,
    });
    const res = await fetch(`${callbackUrlsOf(gw).incomingCall}?${query}`);
    expect({ status: res.status, body: await res.text() }).toEqual({ status: 200, body: '' });
  };

  it('is at most 3 per Passthru request — the cached call read, one step that stores, announces and reads the history, the cached call write', async () => {
    await passthru(newCallSid(), { CallType: 'call-attempt' });
    const calls = 10;
    const sids = Array.from({ length: calls }, newCallSid);
    await probe.config('RESETSTAT');
    const watch = await monitor();

    for (const sid of sids) {
      // The flow's start (announced), a Connect applet that reached nobody (not forward), the end.
      await passthru(sid, { CallType: 'call-attempt' });
      await passthru(sid, { CallType: 'call-attempt', DialCallStatus: 'no-answer', DialWhomNumber: '09800000011' });
      await passthru(sid, { CallType: 'completed', DialCallStatus: 'completed', DialCallDuration: '42', CurrentTime: '2022-02-23 12:33:00' });
    }
    const requests = calls * 3;
    const seen = await watch.stop();
    const stats = await commandStats(probe);
    expect(seen.length).toBe(total(stats) - (stats.get('echo') ?? 0));
    const sent = seen.filter((s) => !s.fromScript);
    expect(sent.length / requests).toBeLessThanOrEqual(3);
    // Each request: at most one cache read (mget; the replica's near-cache may answer it), one script (the
    // call event, the announcement — stored once, a repeat is a duplicate — and the call's history) and
    // one cache write (a script of its own, that never takes the cached call back to an earlier status).
    // The history is read inside the script, never by a command of its own.
    const { mget = 0, ...others } = countBy(sent.map((s) => s.command));
    expect(others).toEqual({ evalsha: requests * 2 });
    expect(mget).toBeLessThanOrEqual(requests);
    // The announcement is in the step: each call announced once, whatever the number of its requests.
    const announced = await gw.storage.events.readAfter(undefined, 1000);
    for (const sid of sids) {
      expect(announced.filter((e) => e.kind === 'incoming' && e.callSid === sid).map((e) => e.forward)).toEqual([true, false, false]);
    }
    // Nothing said along the way is lost: the cache and the log both hold the merged call.
    const entities = createEntityCache(gw.storage.cache, gw.exotel.accountSid);
    const [cached] = await entities.getCalls([sids[0]!]);
    expect(cached).toMatchObject({ status: 'COMPLETED', from: '09876543210', flow: { flowId: '228866', dialWhomNumber: '09800000011', dialCallDurationSeconds: 42 } });
    for (const sid of sids) {
      const history = await gw.storage.events.callHistory(gw.exotel.accountSid, sid);
      expect(history.map((e) => `${e.status}:${e.forward}`)).toEqual(['IN_PROGRESS:true', 'IN_PROGRESS:false', 'COMPLETED:true']);
    }
  });
});
