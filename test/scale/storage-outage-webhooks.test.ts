/**
 * Webhooks during a Redis outage, on the real server over real HTTP, with a private redis-server on a free
 * port (never the machine's shared one) that is stopped or stalled and then brought back:
 * - a Passthru is answered 200 whatever happens (a non-200 sends the caller down the flow's error branch,
 *   and Exotel never sends it again), so one that could not be stored is retried in the background and
 *   announced once Redis is back; how many wait is bounded; shutdown tries them once more;
 * - a status callback answered 503 is logged once per outage, not once per callback.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Client } from 'graphql-ws';
import { createRedisStorage } from '../../src/storage/redis.js';
import type { LiveTimings } from '../../src/live/index.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startPrivateRedis, waitUntil, type RedisProcess } from '../helpers/processes.js';
import { redisAvailable, testPrefix } from '../helpers/redis.js';
import { callbackUrlsOf, callCallback, post } from '../live/webhook-helpers.js';
import { record, wsClient, type Recorded } from '../live/ws-helpers.js';
import { newCallSid } from './harness.js';
import { callFromHistory } from '../../src/live/incoming.js';

const haveRedisServer = (await redisAvailable()) || process.env.REQUIRE_REDIS === '1';

const INCOMING = 'subscription { incomingCalls { sid from to status flow { flowId } } }';
const CALL = 'query($sid: ID!) { call(sid: $sid) { sid from to status flow { flowId } events { status source } } }';
interface Announced { sid: string; from: string; to: string; status: string; flow: { flowId: string | null } | null }

describe.skipIf(!haveRedisServer)('webhooks while Redis is down or stalled', () => {
  let redis: RedisProcess;
  const open = new Set<TestGateway>();
  const clients: Client[] = [];

  beforeAll(async () => {
    // Durable, as a Redis holding acknowledged webhooks is run: what was stored before a stop is there after it.
    redis = await startPrivateRedis({ durable: true });
  });
  afterAll(async () => {
    redis?.resume();
    await Promise.all(clients.map((c) => c.dispose()));
    await Promise.all([...open].map((gw) => gw.stop()));
    await redis?.dispose();
  });

  const start = async (timings: Partial<LiveTimings>, env: Record<string, string> = {}) => {
    const gw = await startGateway(
      { REDIS_URL: redis.url, REDIS_KEY_PREFIX: testPrefix('outage-webhooks'), LOG_LEVEL: 'debug', LIVE_POLL_INTERVAL_MS: '3600000', ...env },
      {},
      { liveTimings: timings },
      { autoStop: false },
    );
    open.add(gw);
    return gw;
  };
  const stop = async (gw: TestGateway) => {
    open.delete(gw);
    await gw.stop();
  };
  /** Redis running again, and the gateway's command connection (the one its webhooks' step uses) answering. */
  const redisBack = async (gw: TestGateway) => {
    if (!redis.current()?.running()) await redis.start();
    await waitUntil(() => gw.storage.ping(), 'the gateway\'s storage answering again', 15_000, 50);
  };
  /** One sample of /metrics; 0 when the series is absent. */
  const metric = async (gw: TestGateway, name: string, labels: Record<string, string> = {}) => {
    const text = await (await fetch(`${gw.url}/metrics`)).text();
    const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
    const line = text.split('\n').find((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && want.every((w) => l.includes(w)));
    return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
  };
  const passthru = async (gw: TestGateway, sid: string, flowId = '228866') => {
    const query = new URLSearchParams({ CallSid: sid, CallFrom: '09876543210', CallTo: '08039591111', Direction: 'incoming', flow_id: flowId });
    const res = await fetch(`${callbackUrlsOf(gw).incomingCall}?${query}`);
    return { status: res.status, text: await res.text() };
  };
  /** An incomingCalls subscriber proven live: a probe call is announced to it first. */
  const liveIncoming = async (gw: TestGateway): Promise<Recorded<Announced>> => {
    const client = wsClient(gw.wsUrl);
    clients.push(client);
    const sub = record<Announced>(client, INCOMING, {}, 'incomingCalls');
    await vi.waitFor(
      async () => {
        expect((await passthru(gw, newCallSid())).status).toBe(200);
        await sub.until((all) => all.length > 0, 300);
      },
      { timeout: 10_000, interval: 20 },
    );
    return sub;
  };
  const logsOf = (gw: TestGateway, msg: string) => gw.logs.filter((l) => typeof l.msg === 'string' && (l.msg as string).startsWith(msg));

  it('announces a Passthru answered 200 while Redis was down once Redis is back, and its call can be queried', async () => {
    const gw = await start({ incomingRetryBaseMs: 200, incomingRetryMaxDelayMs: 500, incomingRetryAttempts: 100 });
    const incoming = await liveIncoming(gw);
    const sid = newCallSid();
    await redis.stop('SIGKILL');
    try {
      expect(await passthru(gw, sid, '771100')).toEqual({ status: 200, text: '' });
      expect(await metric(gw, 'gateway_webhooks_total', { kind: 'incoming-call', outcome: 'unavailable' })).toBe(1);
      expect(await metric(gw, 'gateway_webhook_retries_pending')).toBe(1);
      // Retried while Redis is still down: each failed retry is a debug line, and the request keeps waiting.
      await waitUntil(async () => (await metric(gw, 'gateway_webhook_retries_total', { kind: 'incoming-call' })) >= 2, 'two failed retries');
    } finally {
      await redisBack(gw);
    }
    const [announced] = await incoming.until((all) => all.some((c) => c.sid === sid), 15_000).then((all) => all.filter((c) => c.sid === sid));
    expect(announced).toEqual({ sid, from: '09876543210', to: '08039591111', status: 'IN_PROGRESS', flow: { flowId: '771100' } });
    const { body } = await gw.gql(CALL, { sid });
    expect(body.errors).toBeUndefined();
    expect(body.data.call).toEqual({ sid, from: '09876543210', to: '08039591111', status: 'IN_PROGRESS', flow: { flowId: '771100' }, events: [{ status: 'IN_PROGRESS', source: 'WEBHOOK' }] });
    expect(await metric(gw, 'gateway_webhooks_stored_late_total', { kind: 'incoming-call' })).toBe(1);
    expect(await metric(gw, 'gateway_webhooks_dropped_total')).toBe(0);
    expect(await metric(gw, 'gateway_webhook_retries_pending')).toBe(0);
    // A barrier call announced after it: by then a second announcement of `sid` would have arrived too.
    const barrier = newCallSid();
    expect((await passthru(gw, barrier)).status).toBe(200);
    await incoming.until((all) => all.some((c) => c.sid === barrier), 10_000);
    expect(incoming.items.filter((c) => c.sid === sid)).toHaveLength(1);
    expect(logsOf(gw, 'webhook could not be stored').map((l) => [l.level, l.callSid])).toEqual([['error', sid]]);
    expect(logsOf(gw, 'incoming call stored by a background retry').map((l) => l.callSid)).toEqual([sid]);
    incoming.dispose();
    await stop(gw);
  });

  it('announces once a Passthru whose step timed out on a stalled Redis and then ran when it resumed, though it was retried', async () => {
    const gw = await start({ incomingRetryBaseMs: 100, incomingRetryMaxDelayMs: 200, incomingRetryAttempts: 100 }, { REDIS_COMMAND_TIMEOUT_MS: '300' });
    const incoming = await liveIncoming(gw);
    const sid = newCallSid();
    redis.stall();
    try {
      expect(await passthru(gw, sid)).toEqual({ status: 200, text: '' });
      // Retries sent to the stalled Redis wait in its socket behind the first step.
      await waitUntil(async () => (await metric(gw, 'gateway_webhook_retries_total', { kind: 'incoming-call' })) >= 2, 'two retries');
    } finally {
      redis.resume();
    }
    await waitUntil(async () => (await metric(gw, 'gateway_webhook_retries_pending')) === 0, 'the retries settled', 15_000, 50);
    expect(await metric(gw, 'gateway_webhooks_stored_late_total', { kind: 'incoming-call' })).toBe(1);
    const barrier = newCallSid();
    expect((await passthru(gw, barrier)).status).toBe(200);
    await incoming.until((all) => all.some((c) => c.sid === barrier), 10_000);
    expect(incoming.items.filter((c) => c.sid === sid)).toHaveLength(1);
    // The step that ran late published the status; a retry that ran after it is a repeat, kept as history only.
    const history = await gw.storage.events.callHistory(gw.exotel.accountSid, sid);
    expect(history.map((e) => e.forward)).toEqual([true, ...Array(history.length - 1).fill(false)]);
    expect(history.length).toBeGreaterThan(1);
    expect(new Set(history.map((e) => e.status))).toEqual(new Set(['IN_PROGRESS']));
    incoming.dispose();
    await stop(gw);
  });

  it('keeps at most incomingRetryMaxPending waiting: the oldest is dropped with one log line, the others are announced', async () => {
    const gw = await start({ incomingRetryBaseMs: 200, incomingRetryMaxDelayMs: 500, incomingRetryAttempts: 100, incomingRetryMaxPending: 2 });
    const incoming = await liveIncoming(gw);
    const [first, second, third] = [newCallSid(), newCallSid(), newCallSid()];
    await redis.stop('SIGKILL');
    try {
      for (const sid of [first, second, third]) expect(await passthru(gw, sid)).toEqual({ status: 200, text: '' });
      expect(await metric(gw, 'gateway_webhook_retries_pending')).toBe(2);
      expect(await metric(gw, 'gateway_webhooks_dropped_total', { kind: 'incoming-call', reason: 'overflow' })).toBe(1);
      expect(logsOf(gw, 'incoming call dropped').map((l) => [l.level, l.callSid, l.reason])).toEqual([['error', first, 'overflow']]);
    } finally {
      await redisBack(gw);
    }
    await incoming.until((all) => [second, third].every((sid) => all.some((c) => c.sid === sid)), 15_000);
    await waitUntil(async () => (await metric(gw, 'gateway_webhook_retries_pending')) === 0, 'nothing left waiting', 10_000, 50);
    expect(incoming.items.filter((c) => c.sid === first)).toEqual([]);
    expect(await gw.storage.events.callHistory(gw.exotel.accountSid, first)).toEqual([]);
    expect(await metric(gw, 'gateway_webhooks_stored_late_total', { kind: 'incoming-call' })).toBe(2);
    incoming.dispose();
    await stop(gw);
  });

  it('drops a Passthru, with one log line, once its retries are spent', async () => {
    const gw = await start({ incomingRetryBaseMs: 20, incomingRetryMaxDelayMs: 40, incomingRetryAttempts: 3 });
    const sid = newCallSid();
    await redis.stop('SIGKILL');
    try {
      expect(await passthru(gw, sid)).toEqual({ status: 200, text: '' });
      await waitUntil(async () => (await metric(gw, 'gateway_webhooks_dropped_total', { kind: 'incoming-call', reason: 'attempts' })) === 1, 'the request dropped');
      expect(await metric(gw, 'gateway_webhook_retries_total', { kind: 'incoming-call' })).toBe(3);
      expect(await metric(gw, 'gateway_webhook_retries_pending')).toBe(0);
      expect(logsOf(gw, 'incoming call dropped').map((l) => [l.level, l.callSid, l.reason])).toEqual([['error', sid, 'attempts']]);
    } finally {
      await redisBack(gw);
    }
    await stop(gw);
  });

  it('tries what is waiting once more at shutdown: stored when Redis answers, else logged as dropped, and stop() ends', async () => {
    // Retries that would not come for a minute: only the shutdown's attempt can store these.
    const timings = { incomingRetryBaseMs: 60_000, incomingRetryMaxDelayMs: 60_000 };
    const prefix = testPrefix('outage-webhooks-stop');
    const kept = newCallSid();
    let gw = await start(timings, { REDIS_KEY_PREFIX: prefix });
    await redis.stop('SIGKILL');
    try {
      expect(await passthru(gw, kept)).toEqual({ status: 200, text: '' });
    } finally {
      await redisBack(gw);
    }
    expect(await metric(gw, 'gateway_webhook_retries_pending')).toBe(1);
    await stop(gw);
    expect(logsOf(gw, 'incoming calls waiting for storage were stored at shutdown').map((l) => l.count)).toEqual([1]);
    const storage = await createRedisStorage({ redisUrl: redis.url, keyPrefix: prefix });
    try {
      expect((await storage.events.callHistory(gw.exotel.accountSid, kept)).map((e) => [e.status, e.forward])).toEqual([['IN_PROGRESS', true]]);
    } finally {
      await storage.close();
    }

    const lost = newCallSid();
    gw = await start(timings);
    await redis.stop('SIGKILL');
    try {
      expect(await passthru(gw, lost)).toEqual({ status: 200, text: '' });
      await stop(gw);
    } finally {
      await redis.start();
    }
    expect(logsOf(gw, 'incoming calls dropped at shutdown').map((l) => [l.level, l.callSids])).toEqual([['error', [lost]]]);
  });

  it('at shutdown on a stalled Redis, names each call once and calls its requests not confirmed stored: Redis may run them when it resumes', async () => {
    const prefix = testPrefix('outage-webhooks-stalled-stop');
    const sid = newCallSid();
    const request = async (gw: TestGateway, params: Record<string, string>) => {
      const query = new URLSearchParams({ CallSid: sid, CallFrom: '09876543210', CallTo: '08039591111', Direction: 'incoming', flow_id: '228866', ...params });
      return (await fetch(`${callbackUrlsOf(gw).incomingCall}?${query}`)).status;
    };
    // Retries that would not come for a minute: only the shutdown's attempt tries these again.
    const gw = await start({ incomingRetryBaseMs: 60_000, incomingRetryMaxDelayMs: 60_000 }, { REDIS_KEY_PREFIX: prefix, REDIS_COMMAND_TIMEOUT_MS: '300' });
    await redis.stop('SIGKILL');
    try {
      // Two requests of one call: the caller put through to an agent, then the call over.
      expect(await request(gw, { CallType: 'call-attempt', CurrentTime: '2025-01-10 10:00:00' })).toBe(200);
      expect(await request(gw, { CallType: 'completed', DialCallStatus: 'completed', CurrentTime: '2025-01-10 10:01:30' })).toBe(200);
    } finally {
      await redisBack(gw);
    }
    expect(await metric(gw, 'gateway_webhook_retries_pending')).toBe(2);
    // Another call stored once Redis is back, so the restarted Redis knows the step's script again.
    expect((await passthru(gw, newCallSid())).status).toBe(200);
    redis.stall();
    try {
      await stop(gw);
    } finally {
      redis.resume();
    }
    expect(logsOf(gw, 'incoming calls dropped at shutdown').map((l) => [l.level, l.msg, l.callSids, l.count])).toEqual([
      [
        'error',
        'incoming calls dropped at shutdown: answered 200 but not confirmed stored; storage did not answer their last attempt (a stalled Redis that resumes may still store them)',
        [sid],
        2,
      ],
    ]);
    // The last attempts waited in the stalled Redis's socket and ran once it resumed.
    const storage = await createRedisStorage({ redisUrl: redis.url, keyPrefix: prefix });
    try {
      await waitUntil(async () => (await storage.events.callHistory(gw.exotel.accountSid, sid)).length > 0, 'the call stored after all');
    } finally {
      await storage.close();
    }
  });

  it('waits at shutdown as long as the storage timeouts allow: a Passthru whose last attempt Redis answers late is stored', async () => {
    // A command timeout well above the wait shutdown once had for these attempts, with retries that would
    // not come for a minute: only the shutdown's attempt can store the request.
    const prefix = testPrefix('outage-webhooks-slow-stop');
    const sid = newCallSid();
    const gw = await start({ incomingRetryBaseMs: 60_000, incomingRetryMaxDelayMs: 60_000 }, { REDIS_KEY_PREFIX: prefix, REDIS_COMMAND_TIMEOUT_MS: '10000' });
    await redis.stop('SIGKILL');
    try {
      expect(await passthru(gw, sid)).toEqual({ status: 200, text: '' });
    } finally {
      await redisBack(gw);
    }
    expect(await metric(gw, 'gateway_webhook_retries_pending')).toBe(1);
    redis.stall();
    const stopped = stop(gw);
    try {
      // The last attempt starts right after the HTTP server closes; Redis answers it only some seconds later,
      // well within the command timeout.
      await waitUntil(() => gw.logs.some((l) => l.msg === 'shutdown step done' && l.step === 'http server closed'), 'the HTTP server closed', 10_000, 10);
      await new Promise((r) => setTimeout(r, 4_000));
    } finally {
      redis.resume();
    }
    await stopped;
    expect(logsOf(gw, 'incoming calls dropped at shutdown')).toEqual([]);
    expect(logsOf(gw, 'incoming calls waiting for storage were stored at shutdown').map((l) => l.count)).toEqual([1]);
    const storage = await createRedisStorage({ redisUrl: redis.url, keyPrefix: prefix });
    try {
      expect((await storage.events.callHistory(gw.exotel.accountSid, sid)).map((e) => [e.status, e.forward])).toEqual([['IN_PROGRESS', true]]);
    } finally {
      await storage.close();
    }
  });

  it('a Passthru stored late by its retry does not undo what a later request of the same call said', async () => {
    // Retries that would not come for a minute: the first request is stored by the shutdown's attempt,
    // after the second, made once Redis was back, was stored as it came.
    const timings = { incomingRetryBaseMs: 60_000, incomingRetryMaxDelayMs: 60_000 };
    const prefix = testPrefix('outage-webhooks-late');
    const sid = newCallSid();
    const request = async (gw: TestGateway, params: Record<string, string>) => {
      const query = new URLSearchParams({ CallSid: sid, CallFrom: '09876543210', CallTo: '08039591111', Direction: 'incoming', flow_id: '228866', ...params });
      const res = await fetch(`${callbackUrlsOf(gw).incomingCall}?${query}`);
      return { status: res.status, text: await res.text() };
    };
    let gw = await start(timings, { REDIS_KEY_PREFIX: prefix });
    await redis.stop('SIGKILL');
    try {
      // The flow's first request, as the caller is put through to an agent.
      const first = { CallType: 'call-attempt', StartTime: '2025-01-10 10:00:00', CurrentTime: '2025-01-10 10:00:00', DialWhomNumber: '09800000011' };
      expect(await request(gw, first)).toEqual({ status: 200, text: '' });
    } finally {
      await redisBack(gw);
    }
    // Its last request: the agent answered, the call is over.
    const last = { CallType: 'completed', DialCallStatus: 'completed', StartTime: '2025-01-10 10:00:00', CurrentTime: '2025-01-10 10:01:30', DialWhomNumber: '09800000022' };
    expect(await request(gw, last)).toEqual({ status: 200, text: '' });
    await stop(gw);
    expect(logsOf(gw, 'incoming calls waiting for storage were stored at shutdown').map((l) => l.count)).toEqual([1]);

    gw = await start({}, { REDIS_KEY_PREFIX: prefix });
    const expected = { status: 'COMPLETED', dateUpdated: '2025-01-10T10:01:30+05:30', flow: { callType: 'completed', dialCallStatus: 'COMPLETED', dialWhomNumber: '09800000022', lastRequestAt: '2025-01-10T10:01:30+05:30' } };
    const query = 'query($sid: ID!) { call(sid: $sid) { status dateUpdated flow { callType dialCallStatus dialWhomNumber lastRequestAt } } }';
    // The call as cached after the late request, and as the event log tells it (the cache forgotten).
    const cached = await gw.gql(query, { sid });
    expect(cached.body.errors).toBeUndefined();
    expect(cached.body.data.call).toEqual(expected);
    const history = await gw.storage.events.callHistory(gw.exotel.accountSid, sid);
    expect(history.map((e) => [e.status, e.forward])).toEqual([['COMPLETED', true], ['IN_PROGRESS', false]]);
    const told = callFromHistory(history);
    expect({ status: told?.status, dateUpdated: told?.dateUpdated, flow: { callType: told?.flow?.callType, dialCallStatus: told?.flow?.dialCallStatus, dialWhomNumber: told?.flow?.dialWhomNumber, lastRequestAt: told?.flow?.lastRequestAt } }).toEqual(expected);
    await stop(gw);
  });

  it('logs a status callback answered 503 once per outage, each further one at debug, and again for the next outage', async () => {
    const gw = await start({});
    const url = callbackUrlsOf(gw).callStatus;
    const unstored = () => logsOf(gw, 'webhook could not be stored').map((l) => l.level);
    await redis.stop('SIGKILL');
    try {
      // A call's callbacks and Exotel's retries of them: every one fails while Redis is down.
      for (const status of ['in-progress', 'in-progress', 'completed', 'completed']) {
        expect(await post(url, callCallback(newCallSid(), status))).toEqual({ status: 503, text: 'Service Unavailable: try again' });
      }
      expect(unstored()).toEqual(['error', 'debug', 'debug', 'debug']);
      expect(await metric(gw, 'gateway_webhooks_total', { kind: 'call-status', outcome: 'unavailable' })).toBe(4);
    } finally {
      await redisBack(gw);
    }
    expect(await post(url, callCallback(newCallSid(), 'completed'))).toEqual({ status: 200, text: 'OK' });
    expect(logsOf(gw, 'webhooks are stored again').map((l) => [l.level, l.failures])).toEqual([['info', 4]]);

    // A second outage is news again.
    await redis.stop('SIGKILL');
    try {
      for (let i = 0; i < 2; i++) expect((await post(url, callCallback(newCallSid(), 'completed'))).status).toBe(503);
    } finally {
      await redisBack(gw);
    }
    expect(unstored()).toEqual(['error', 'debug', 'debug', 'debug', 'error', 'debug']);
    expect(gw.logs.filter((l) => l.level === 'error').map((l) => l.msg)).toEqual([
      'webhook could not be stored; answering 503 so Exotel retries; more are logged at debug until a webhook is stored again',
      'webhook could not be stored; answering 503 so Exotel retries; more are logged at debug until a webhook is stored again',
    ]);
    await stop(gw);
  });
});
