/**
 * A stalled Redis (SIGSTOP: the socket stays open, nothing answers) as a GraphQL client sees it, beyond the
 * webhooks and the budget fallback (budget-redis.test.ts): mutations with an idempotencyKey, a call's
 * history, readiness. The Redis is a private redis-server on a free port, never the machine's shared one;
 * it is SIGCONTed in teardown whatever happened.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EMPTY_FLOW } from '../../src/live/incoming.js';
import { createSimulator, type Simulator } from '../../src/simulator/index.js';
import { createRedisStorage } from '../../src/storage/redis.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startPrivateRedis, type RedisProcess } from '../helpers/processes.js';
import { redisAvailable, testPrefix } from '../helpers/redis.js';
import { newCallSid, postCallback, subscribeCallEvents, subscribeCallStatus, WEBHOOK_SECRET } from './harness.js';

const privateRedis = (await redisAvailable()) || process.env.REQUIRE_REDIS === '1';
const CONNECT = 'mutation($input: ConnectCallInput!) { connectCall(input: $input) { replayed idempotencyKey call { sid } } }';

describe.skipIf(!privateRedis)('a stalled Redis, as a GraphQL client sees it', () => {
  let redis: RedisProcess;
  let sim: Simulator;
  let gw: TestGateway;
  const stall = () => redis.stall();
  const resume = () => redis?.resume();

  beforeAll(async () => {
    redis = await startPrivateRedis({ durable: false });
    sim = await createSimulator({ port: 0, host: '127.0.0.1', ratePerMinute: 100_000, timeScale: 0.01, log: () => {} });
    gw = await startGateway(
      {
        EXOTEL_ACCOUNT_SID: sim.accountSid,
        EXOTEL_API_KEY: sim.apiKey,
        EXOTEL_API_TOKEN: sim.apiToken,
        EXOTEL_BASE_URL: sim.url,
        WEBHOOK_SECRET,
        REDIS_URL: redis.url,
        REDIS_KEY_PREFIX: testPrefix('redis-stall'),
        GATEWAY_ALLOW_OPEN: '1',
      },
      {},
      {},
      { autoStop: false },
    );
  });
  afterAll(async () => {
    resume();
    await gw?.stop();
    await redis?.dispose();
    await sim?.stop();
  });

  it('a mutation refused because its idempotencyKey could not be checked is placed once when retried after Redis resumes', async () => {
    const input = { from: '09876543210', to: '+919812345670', callerId: '08039591111', idempotencyKey: `stall-${randomBytes(6).toString('hex')}` };
    const connects = () => sim.countRequests({ endpoint: 'calls.connect' });
    const before = connects();
    stall();
    try {
      const refused = await gw.gql(CONNECT, { input });
      expect(refused.body.data).toBeNull();
      expect(refused.body.errors).toEqual([expect.objectContaining({ extensions: { code: 'STORAGE_UNAVAILABLE', retryAfterSeconds: 5 } })]);
      expect(refused.body.errors![0]!.message).toContain('nothing was sent to Exotel');
    } finally {
      resume();
    }
    expect(connects()).toBe(before);
    // The log says what happened: the client's mutation was refused, nothing sent, nothing lost; no warning.
    const about = gw.logs.filter((l) => l.idempotencyKey === input.idempotencyKey);
    expect(about.map((l) => [l.level, l.msg, l.operation])).toEqual([
      ['info', 'mutation refused with STORAGE_UNAVAILABLE: its idempotencyKey could not be checked, so nothing was sent to Exotel', 'connectCall'],
    ]);
    expect(about[0]!.requestId).toEqual(expect.any(String));
    expect(gw.logs.filter((l) => l.level === 'warn' && String(l.msg).includes('idempotency'))).toEqual([]);
    // As told: the same request again once storage is back. The check that timed out was still on its way
    // to Redis and ran when Redis resumed; it must not leave the key looking "in progress".
    const retried = await gw.gql(CONNECT, { input });
    expect(retried.body.errors).toBeUndefined();
    expect(retried.body.data.connectCall).toMatchObject({ replayed: false, idempotencyKey: input.idempotencyKey });
    const again = await gw.gql(CONNECT, { input });
    expect(again.body.errors).toBeUndefined();
    expect(again.body.data.connectCall).toEqual({ ...retried.body.data.connectCall, replayed: true });
    expect(connects()).toBe(before + 1);
  });

  it('a begin that timed out takes back only its own record: a key another request holds keeps its record', async () => {
    const storage = await createRedisStorage({ redisUrl: redis.url, keyPrefix: testPrefix('unbegin'), commandTimeoutMs: 300 });
    const done = { state: 'done', fingerprint: 'fp', result: { sid: 'CA-unbegin' } } as const;
    try {
      const idem = storage.idempotency;
      expect(await idem.begin('held', 'fp', 60_000)).toEqual({ created: true });
      await idem.finish('held', done, 60_000);
      stall();
      try {
        await expect(idem.begin('held', 'fp', 60_000)).rejects.toThrow();
        await expect(idem.begin('free', 'fp', 60_000)).rejects.toThrow();
      } finally {
        resume();
      }
      // Sent after them on the same connection: answered once Redis has run the begins and their take-backs.
      for (let i = 0; i < 50 && !(await storage.ping()); i++) await new Promise((r) => setTimeout(r, 100));
      expect(await idem.begin('held', 'fp', 60_000)).toEqual({ created: false, record: done });
      expect(await idem.begin('free', 'fp', 60_000)).toEqual({ created: true });
    } finally {
      await storage.close();
    }
  });

  it('storage closes while Redis stalls with cache commands still waiting for their answer: shutdown is not held up', async () => {
    const lines: Array<{ level: string; msg: string; err?: unknown }> = [];
    const at = (level: string) => (fields: { err?: unknown }, msg: string) => void lines.push({ level, msg, err: fields.err });
    const logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } as never;
    const storage = await createRedisStorage({ redisUrl: redis.url, keyPrefix: testPrefix('stalled-close'), commandTimeoutMs: 300, cacheTimeoutMs: 100, logger });
    stall();
    try {
      // Given up after the cache timeout (a miss), but still waiting on the cache connection for Redis's answer.
      expect(await storage.cache.get('key')).toBeUndefined();
      await storage.close();
    } finally {
      resume();
    }
    // Dropping the cache connection fails the command still waiting on it: the gateway's own doing, not a warning.
    await new Promise((r) => setImmediate(r));
    expect(lines.filter((l) => l.level === 'warn' || l.level === 'error')).toEqual([]);
    expect(lines.filter((l) => l.msg.startsWith('cache backend error'))).toEqual([
      { level: 'debug', msg: 'cache backend error after storage began closing (its own close fails what still waits)', err: expect.objectContaining({ message: expect.stringContaining('Disconnects client') }) },
    ]);
  });

  it('a mutation whose Exotel request is in flight when Redis stalls answers its call, and a retry replays it', async () => {
    const input = { from: '09876543210', to: '+919812345671', callerId: '08039591111', idempotencyKey: `inflight-${randomBytes(6).toString('hex')}` };
    const connects = () => sim.countRequests({ endpoint: 'calls.connect' });
    const before = connects();
    sim.faults.inject({ kind: 'slow', delayMs: 600, count: 1, endpoint: 'calls.connect' });
    const placing = gw.gql(CONNECT, { input });
    await new Promise((r) => setTimeout(r, 300));
    stall();
    let placed;
    try {
      // The key was checked before the stall; the record of the result cannot be written, which must not
      // hide the call from the client (the write runs once Redis resumes).
      placed = await placing;
    } finally {
      resume();
    }
    expect(placed.body.errors).toBeUndefined();
    expect(placed.body.data.connectCall).toMatchObject({ replayed: false });
    // The call was placed and its record's write got no answer: a warning that says both.
    expect(gw.logs.filter((l) => l.idempotencyKey === input.idempotencyKey).map((l) => [l.level, l.msg, l.sid])).toEqual([
      [
        'warn',
        'mutation sent to Exotel but its idempotency record not confirmed written: a retry with the same key is not sent again, but may answer IDEMPOTENCY_CONFLICT or OUTCOME_UNKNOWN instead of this result',
        placed.body.data.connectCall.call.sid,
      ],
    ]);
    const retried = await gw.gql(CONNECT, { input });
    expect(retried.body.errors).toBeUndefined();
    expect(retried.body.data.connectCall).toEqual({ ...placed.body.data.connectCall, replayed: true });
    expect(connects()).toBe(before + 1);
  });

  it('a call\'s history while Redis stalls: a clear STORAGE_UNAVAILABLE within seconds, not an internal error', async () => {
    const sid = sim.calls.list().at(-1)!.Sid;
    stall();
    let answer;
    const started = Date.now();
    try {
      answer = await gw.gql('query($sid: ID!) { call(sid: $sid) { sid events { id status } } }', { sid });
    } finally {
      resume();
    }
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(answer.body.errors).toEqual([
      expect.objectContaining({
        path: ['call', 'events'],
        message: expect.stringContaining('shared storage is unavailable'),
        extensions: { code: 'STORAGE_UNAVAILABLE', retryAfterSeconds: 5 },
      }),
    ]);
    expect(gw.logs.filter((l) => l.msg === 'internal error in a GraphQL operation')).toEqual([]);
    // Once Redis answers again, so does the history.
    const after = await gw.gql('query($sid: ID!) { call(sid: $sid) { sid events { id status } } }', { sid });
    expect(after.body.errors).toBeUndefined();
    expect(after.body.data.call.sid).toBe(sid);
  });

  it("a call's flow while Redis stalls: STORAGE_UNAVAILABLE saying what could not be read, also when its events share the read", async () => {
    // A call a flow could have had requests of: its flow is read from the history.
    const sid = sim.calls.list().find((c) => c.Direction !== 'outbound-dial')!.Sid;
    await gw.storage.events.append({
      kind: 'call', accountSid: sim.accountSid, callSid: sid, status: 'COMPLETED', at: '2026-01-15T10:00:00+05:30', source: 'WEBHOOK', forward: true,
      data: { call: { sid, flow: { ...EMPTY_FLOW, flowId: '228866' } } },
    });
    // The same call twice in one request: one history read, failing both fields; each says what it could not read.
    const query = 'query($sid: ID!) { a: call(sid: $sid) { sid flow { flowId } } b: call(sid: $sid) { sid events { status } } }';
    stall();
    let answer;
    try {
      answer = await gw.gql(query, { sid });
    } finally {
      resume();
    }
    expect(answer.body.data).toEqual({ a: { sid, flow: null }, b: null });
    expect(answer.body.errors).toHaveLength(2);
    expect(answer.body.errors).toEqual(expect.arrayContaining([
      expect.objectContaining({
        path: ['a', 'flow'],
        message: expect.stringMatching(/^The call's flow could not be read because the gateway's shared storage is unavailable/),
        extensions: { code: 'STORAGE_UNAVAILABLE', retryAfterSeconds: 5 },
      }),
      expect.objectContaining({
        path: ['b', 'events'],
        message: expect.stringMatching(/^The call's status history could not be read because the gateway's shared storage is unavailable/),
        extensions: { code: 'STORAGE_UNAVAILABLE', retryAfterSeconds: 5 },
      }),
    ]));
    expect(gw.logs.filter((l) => l.msg === 'internal error in a GraphQL operation')).toEqual([]);
    // Once Redis answers again, so does the flow.
    const after = await gw.gql(query, { sid });
    expect(after.body.errors).toBeUndefined();
    expect(after.body.data.a).toEqual({ sid, flow: { flowId: '228866' } });
    expect(after.body.data.b.events.at(-1)).toEqual({ status: 'COMPLETED' });
  });

  it('callStatusChanged started while Redis stalls ends with STORAGE_UNAVAILABLE; a callEvents subscriber gets what was stored after', async () => {
    const sid = sim.calls.list().at(-2)!.Sid;
    const wsUrl = `${gw.url.replace(/^http/, 'ws')}/graphql`;
    const follower = await subscribeCallEvents(wsUrl);
    stall();
    let snapshot: unknown;
    try {
      snapshot = await subscribeCallStatus(wsUrl, sid).then(
        (s) => s.dispose().then(() => s.statuses),
        (err: Error) => JSON.parse(err.message),
      );
    } finally {
      resume();
    }
    expect(snapshot).toEqual([
      expect.objectContaining({
        message: expect.stringContaining('shared storage is unavailable'),
        extensions: { code: 'STORAGE_UNAVAILABLE', retryAfterSeconds: 5 },
      }),
    ]);
    expect(gw.logs.filter((l) => l.msg === 'internal error in a GraphQL operation')).toEqual([]);
    // The live stream itself survived the stall: a callback stored after it reaches the subscriber.
    const live = newCallSid();
    expect(await postCallback(gw.url, sim.accountSid, { callSid: live, status: 'in-progress' })).toEqual({ status: 200, body: 'OK' });
    await follower.waitFor((events) => events.some((e) => e.callSid === live), 'the callback stored after the stall', 10_000);
    await follower.dispose();
  });
});
