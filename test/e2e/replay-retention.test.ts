/**
 * callEvents(after:) against a log that has removed events: the real gateway (memory and Redis storage),
 * a real graphql-ws client, real callbacks. Retention is shortened through its public knob
 * (EVENT_RETENTION_HOURS, 0.001 h = 3.6 s) so events age out while the test watches.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { deleteKeys, redisOrSkip, testPrefix, TEST_REDIS_URL } from '../helpers/redis.js';
import { callbackUrlsOf, callCallback, post } from '../live/webhook-helpers.js';
import { record, wsClientsPerTest } from '../live/ws-helpers.js';

const CALL_EVENTS = `subscription($after: ID) { callEvents(after: $after) { id callSid status source } }`;

interface Ev {
  id: string;
  callSid: string;
  status: string;
  source: string;
}

const redisUp = await redisOrSkip();
const prefix = testPrefix('replay-retention');
afterAll(() => deleteKeys(prefix));

const newClient = wsClientsPerTest();
const client = (gw: TestGateway) => newClient(gw.wsUrl);

let sidSeq = 0;
const newSid = (tag: string) => `${tag}${process.pid}x${Date.now().toString(36)}x${++sidSeq}`;

/** Posts a status callback and answers the id of the event it logged. */
async function callback(gw: TestGateway, sid: string, status: string): Promise<string> {
  const before = (await gw.storage.events.lastId()) ?? '0-0';
  const res = await post(callbackUrlsOf(gw).callStatus, callCallback(sid, status));
  expect(res.status).toBe(200);
  const [logged] = (await gw.storage.events.readAfter(before)).filter((e) => e.kind === 'call' && e.callSid === sid);
  expect(logged).toBeDefined();
  return logged!.id;
}

/** Resolves once the log no longer replays `id` (aged out of EVENT_RETENTION_HOURS). */
async function untilAgedOut(gw: TestGateway, id: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while ((await gw.storage.events.readAfter('0-0')).some((e) => e.id === id)) {
    if (Date.now() > deadline) throw new Error(`event ${id} never aged out`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** What a subscription did first: failed (its errors), or delivered an event. */
async function firstOutcome(sub: ReturnType<typeof record<Ev>>): Promise<{ errors: Array<{ message: string; extensions?: Record<string, unknown> }> } | { events: Ev[] }> {
  return Promise.race([
    sub.done.then(
      (events) => ({ events }),
      (errors: unknown) => ({ errors: errors as Array<{ message: string; extensions?: Record<string, unknown> }> }),
    ),
    sub.until((items) => items.length > 0).then((events) => ({ events }), () => new Promise<never>(() => undefined)),
  ]);
}

const backends = [
  { name: 'memory', env: {} as Record<string, string>, skip: false },
  { name: 'Redis', env: { REDIS_URL: TEST_REDIS_URL }, skip: !redisUp },
];

for (const backend of backends) {
  describe.skipIf(backend.skip)(`callEvents(after:) past the retention (${backend.name})`, () => {
    let keySeq = 0;
    const start = (env: Record<string, string>) =>
      startGateway({ LIVE_POLL_INTERVAL_MS: '60000', ...backend.env, ...(backend.env.REDIS_URL ? { REDIS_KEY_PREFIX: `${prefix}${backend.name}${++keySeq}:` } : {}), ...env });

    it('fails at once with EVENTS_EXPIRED for an `after` whose next events aged out; replays exactly from an `after` the log still covers', async () => {
      const gw = await start({ EVENT_RETENTION_HOURS: '0.001' });
      const [a, b, c] = [newSid('a'), newSid('b'), newSid('c')];
      // The client saw `seen`, then lost its connection; `missed` was logged meanwhile and has aged out.
      const seen = await callback(gw, a, 'in-progress');
      const missed = await callback(gw, a, 'completed');
      await untilAgedOut(gw, missed);
      const kept = await callback(gw, b, 'in-progress');

      const expired = record<Ev>(client(gw), CALL_EVENTS, { after: seen }, 'callEvents');
      const outcome = await firstOutcome(expired);
      expect(outcome).toEqual({ errors: [expect.objectContaining({ extensions: expect.objectContaining({ code: 'BAD_USER_INPUT', reason: 'EVENTS_EXPIRED', field: 'after' }) })] });
      const [error] = (outcome as { errors: Array<{ message: string }> }).errors;
      expect(error!.message).toContain(`the events after "${seen}" are no longer kept`);
      expect(error!.message).toContain('EVENT_RETENTION_HOURS');
      expect(error!.message).toContain('Subscribe without `after` and refetch the calls you show');
      expect(expired.items).toEqual([]);
      // A client's mistake, not the server's: nothing logged as an error.
      expect(gw.logs.filter((l) => Number(l.level) >= 50)).toEqual([]);

      // A client that saw `missed` itself lost nothing that aged out: it gets `kept`, then live events.
      const caughtUp = record<Ev>(client(gw), CALL_EVENTS, { after: missed }, 'callEvents');
      await caughtUp.until((items) => items.length === 1);
      const live = await callback(gw, c, 'in-progress');
      await caughtUp.until((items) => items.length === 2);
      expect(caughtUp.items.map((e) => [e.id, e.callSid, e.status])).toEqual([
        [kept, b, 'IN_PROGRESS'],
        [live, c, 'IN_PROGRESS'],
      ]);

      // An `after` still in the log: exactly the events missed since, then live ones.
      const whileAway = await callback(gw, b, 'completed');
      const resumed = record<Ev>(client(gw), CALL_EVENTS, { after: live }, 'callEvents');
      await resumed.until((items) => items.length === 1);
      const next = await callback(gw, c, 'completed');
      await resumed.until((items) => items.length === 2);
      expect(resumed.items.map((e) => [e.id, e.callSid, e.status])).toEqual([
        [whileAway, b, 'COMPLETED'],
        [next, c, 'COMPLETED'],
      ]);
    }, 30_000);

    it('replays everything from an `after` older than the first event of a log that never removed one', async () => {
      const gw = await start({});
      const [a, b] = [newSid('young-a'), newSid('young-b')];
      const logged = [await callback(gw, a, 'in-progress'), await callback(gw, a, 'completed')];
      for (const after of ['0-0', `${Date.now() - 3_600_000}-0`]) {
        const sub = record<Ev>(client(gw), CALL_EVENTS, { after }, 'callEvents');
        await sub.until((items) => items.length === logged.length);
        expect(sub.items.map((e) => e.id)).toEqual(logged);
        const live = await callback(gw, b, after === '0-0' ? 'in-progress' : 'completed');
        logged.push(live);
        await sub.until((items) => items.length === logged.length);
        expect(sub.items.map((e) => e.id)).toEqual(logged);
        expect(sub.error).toBeUndefined();
        sub.dispose();
      }
    }, 30_000);
  });
}
