/**
 * Warm answers (src/graphql/warm-answers.ts): a repeated query over objects the replica holds is answered
 * without executing, through Apollo (so keys and limits still apply), and never after one of those objects
 * changed — on this replica, or on another one whose callback reached this one through the event log.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventRecord } from '../../src/storage/types.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startPrivateRedis, type RedisProcess } from '../helpers/processes.js';
import { monitorCommands, redisAvailable, testPrefix } from '../helpers/redis.js';
import { callbackUrlsOf, callCallback, post } from '../live/webhook-helpers.js';

const CALL = 'query Warm($sid: ID!) { call(sid: $sid) { sid status from durationSeconds customField legs { id status } } }';

/** A completed call of the gateway's simulator that no query has read yet. */
function freshCompleted(gw: TestGateway, used: Set<string>): string {
  const sid = gw.simulator!.calls.list().find((c) => c.Status === 'completed' && !used.has(c.Sid))!.Sid;
  used.add(sid);
  return sid;
}

/** Posts a completed-call callback for `sid` to `gw` and waits until `observer`'s event log delivered it. */
async function callbackReaches(gw: TestGateway, observer: TestGateway, sid: string, customField: string): Promise<void> {
  let stop = () => {};
  const delivered = new Promise<EventRecord>((resolve) => {
    stop = observer.storage.events.subscribe((e) => {
      if (e.kind === 'call' && e.callSid === sid && e.forward) resolve(e);
    });
  });
  const res = await post(callbackUrlsOf(gw).callStatus, callCallback(sid, 'completed', { CustomField: customField }));
  expect(res.status).toBe(200);
  await delivered;
  stop();
}

describe('warm answers in memory', () => {
  let gw: TestGateway;
  const used = new Set<string>();
  beforeAll(async () => {
    gw = await startGateway();
  });

  it('answers a repeated query over held calls without executing it, the same as executing', async () => {
    const sid = freshCompleted(gw, used);
    await gw.gql(CALL, { sid }); // from Exotel: not kept
    const first = await gw.gql(CALL, { sid }); // from the cache: kept
    const before = gw.warmAnswers.stats();
    gw.simulator!.resetRequests();
    const again = await gw.gql(CALL, { sid });
    expect(gw.warmAnswers.stats().warm - before.warm).toBe(1);
    expect(again).toEqual(first);
    expect(first.body.data.call).toMatchObject({ sid, status: 'COMPLETED' });
    expect(gw.simulator!.countRequests()).toBe(0);
    // The same operation with other variables is another answer.
    const otherSid = freshCompleted(gw, used);
    const other = await gw.gql(CALL, { sid: otherSid });
    expect(other.body.data.call.sid).toBe(otherSid);
  });

  it('executes again once a callback changed a call it was built from, and keeps that answer in turn', async () => {
    const sid = freshCompleted(gw, used);
    for (let i = 0; i < 3; i++) await gw.gql(CALL, { sid });
    await callbackReaches(gw, gw, sid, 'changed-here');
    const before = gw.warmAnswers.stats();
    const changed = await gw.gql(CALL, { sid });
    expect(changed.body.data.call).toMatchObject({ sid, status: 'COMPLETED', customField: 'changed-here' });
    expect(gw.warmAnswers.stats().warm).toBe(before.warm);
    await gw.gql(CALL, { sid });
    const warm = await gw.gql(CALL, { sid });
    expect(warm.body.data.call.customField).toBe('changed-here');
    expect(gw.warmAnswers.stats().warm).toBeGreaterThan(before.warm);
  });

  it('keeps nothing wrong from a batch, whose operations share their loaders', async () => {
    const sid = freshCompleted(gw, used);
    const second = 'query Second($sid: ID!) { call(sid: $sid) { sid customField } }';
    const batch = [
      { query: 'query First($sid: ID!) { call(sid: $sid) { sid events { status } } }', variables: { sid } },
      { query: second, variables: { sid } },
    ];
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${gw.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(batch) });
      expect(res.status).toBe(200);
      expect(((await res.json()) as Array<{ data: { call: { sid: string } } }>).map((r) => r.data.call.sid)).toEqual([sid, sid]);
    }
    await callbackReaches(gw, gw, sid, 'changed-after-batch');
    expect((await gw.gql(second, { sid })).body.data.call.customField).toBe('changed-after-batch');
  });

  it('never keeps answers that read the event log, anything but held objects, or had errors', async () => {
    const sid = freshCompleted(gw, used);
    await gw.gql(CALL, { sid });
    const before = gw.warmAnswers.stats();
    const thrice = async (query: string, variables?: Record<string, unknown>) => {
      for (let i = 0; i < 3; i++) await gw.gql(query, variables);
    };
    await thrice('query($sid: ID!) { call(sid: $sid) { sid events { status } } }', { sid });
    await thrice('{ rateLimit { remaining } }');
    await thrice('{ call(sid: "00000000000000000000000000000042") { sid } }'); // unknown: never held
    await thrice('{ numberMetadata(number: "12") { phoneNumber } }'); // an error
    await thrice('{ a: call(sid: "not a sid!") { sid } b: call(sid: "' + sid + '") { sid } }'); // a partial error
    expect(gw.warmAnswers.stats()).toEqual(before);
  });
});

describe('warm answers with client keys', () => {
  const READER = 'reader-secret-0123456789abcdef';
  const WRITER = 'writer-secret-0123456789abcdef';
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ GATEWAY_API_KEYS: `reader:${READER}:read,writer:${WRITER}:read+write` });
  });

  it('serves a warm answer only after the key is checked, to any valid key', async () => {
    const sid = gw.simulator!.calls.list().find((c) => c.Status === 'completed')!.Sid;
    const reader = { authorization: `Bearer ${READER}` };
    for (let i = 0; i < 3; i++) expect((await gw.gql(CALL, { sid }, reader)).status).toBe(200);
    const before = gw.warmAnswers.stats();
    expect(before.warm).toBeGreaterThan(0);
    const none = await gw.gql(CALL, { sid });
    const wrong = await gw.gql(CALL, { sid }, { authorization: 'Bearer wrong-key-0123456789' });
    expect([none.status, wrong.status]).toEqual([401, 401]);
    expect([none.body.errors?.[0]?.extensions?.code, wrong.body.errors?.[0]?.extensions?.code]).toEqual(['UNAUTHENTICATED', 'UNAUTHENTICATED']);
    expect(JSON.stringify([none.body, wrong.body])).not.toContain(sid);
    expect(gw.warmAnswers.stats().warm).toBe(before.warm);
    // Another valid key asks the same question about the same data: the same answer.
    const writer = await gw.gql(CALL, { sid }, { authorization: `Bearer ${WRITER}` });
    expect(writer.body.data.call.sid).toBe(sid);
    expect(gw.warmAnswers.stats().warm).toBe(before.warm + 1);
  });
});

const haveRedisServer = (await redisAvailable()) || process.env.REQUIRE_REDIS === '1';

// A private redis-server: MONITOR below must see this file's commands only, not every other test's.
describe.skipIf(!haveRedisServer)('warm answers on Redis, two replicas', () => {
  const prefix = testPrefix('warm');
  let redis: RedisProcess;
  let a: TestGateway;
  let b: TestGateway;
  const used = new Set<string>();
  beforeAll(async () => {
    redis = await startPrivateRedis({ durable: false });
    // Stopped here, before their Redis.
    a = await startGateway({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix }, {}, {}, { autoStop: false });
    b = await startGateway({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix, WEBHOOK_SECRET: a.config.webhookSecret }, {}, { exotel: a.exotel }, { autoStop: false });
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await redis?.dispose();
  });

  it('answers a warm query with no round trip to Redis', async () => {
    const sid = freshCompleted(a, used);
    for (let i = 0; i < 3; i++) await b.gql(CALL, { sid });
    const stats = b.storage.cache.stats;
    const sharedReads = stats.hits + stats.misses;
    const before = b.warmAnswers.stats();
    const warm = await b.gql(CALL, { sid });
    expect(warm.body.data.call).toMatchObject({ sid, status: 'COMPLETED' });
    expect(b.warmAnswers.stats().warm).toBe(before.warm + 1);
    expect(stats.hits + stats.misses).toBe(sharedReads);
  });

  it('sends Redis no command for a warm query: no cache read, no budget, nothing naming the call', async () => {
    const sid = freshCompleted(a, used);
    for (let i = 0; i < 3; i++) await b.gql(CALL, { sid });
    // Redis's own view of the commands it gets: the request path's keys, or the call's Sid, in any of them.
    const naming = (name: string) => (c: { command: string; args: string[] }) => [c.command, ...c.args].join(' ').includes(name);
    // The monitor works: a cold query of another call shows up in it, down to its last step (the cache
    // write, after the budget's take and settle).
    const cold = freshCompleted(a, used);
    const coldWatch = await monitorCommands(redis.url);
    expect((await b.gql(CALL, { sid: cold })).body.data.call.sid).toBe(cold);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const coldSeen = await coldWatch.stop();
    expect(coldSeen.some((c) => c.command === 'set' && naming(cold)(c))).toBe(true);

    const before = b.warmAnswers.stats().warm;
    const watch = await monitorCommands(redis.url);
    for (let i = 0; i < 20; i++) expect((await b.gql(CALL, { sid })).body.data.call).toMatchObject({ sid, status: 'COMPLETED' });
    // Anything sent after an answer (a cache write) has time to show up.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const seen = await watch.stop();
    expect(b.warmAnswers.stats().warm - before).toBe(20);
    expect(seen.filter((c) => naming(sid)(c) || naming(`${prefix}cache:`)(c) || naming(`${prefix}budget:`)(c))).toEqual([]);
  });

  it('never answers with the old state once a callback taken by another replica reached this one', async () => {
    const sid = freshCompleted(a, used);
    for (let i = 0; i < 3; i++) await b.gql(CALL, { sid });
    const held = await b.gql(CALL, { sid });
    expect(held.body.data.call.customField).not.toBe('changed-on-a');
    await callbackReaches(a, b, sid, 'changed-on-a');
    const after = await b.gql(CALL, { sid });
    expect(after.body.data.call).toMatchObject({ sid, status: 'COMPLETED', customField: 'changed-on-a' });
  });
});
