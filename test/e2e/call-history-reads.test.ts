/**
 * A call's status history is read from the event log once per call and request, however many of the
 * fields built from it (`events`, `flow`) a query asks for. Counted by Redis itself: MONITOR on a private
 * redis-server, the gateway on Redis storage over real HTTP. Its background loops (poller, reconciler)
 * first run an interval after start, long after this file is done, so every history read seen is a query's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EMPTY_FLOW } from '../../src/live/incoming.js';
import type { Simulator } from '../../src/simulator/index.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startPrivateRedis, type RedisProcess } from '../helpers/processes.js';
import { monitorCommands, redisAvailable, testPrefix } from '../helpers/redis.js';

const haveRedisServer = (await redisAvailable()) || process.env.REQUIRE_REDIS === '1';

describe.skipIf(!haveRedisServer)('reads of a call\'s history per request', () => {
  let redis: RedisProcess;
  let gw: TestGateway;
  let sim: Simulator;
  const prefix = testPrefix('history-reads');

  beforeAll(async () => {
    redis = await startPrivateRedis({ durable: false });
    gw = await startGateway(
      { REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix, LIVE_POLL_INTERVAL_MS: '3600000', RECONCILE_GRACE_SECONDS: '3600' },
      {},
      {},
      { autoStop: false },
    );
    sim = gw.simulator!;
  }, 60_000);

  afterAll(async () => {
    await gw?.stop();
    await redis?.dispose();
  });

  /** Runs `query` under MONITOR; answers its body and the number of history reads per call Sid. */
  const counted = async (query: string, variables?: Record<string, unknown>) => {
    const watch = await monitorCommands(redis.url);
    const { status, body } = await gw.gql(query, variables);
    const historyKey = `${prefix}call:${sim.accountSid}:`;
    const reads = new Map<string, number>();
    for (const c of await watch.stop()) {
      if (c.fromScript || c.command !== 'lrange' || !c.args[0]!.startsWith(historyKey)) continue;
      const sid = c.args[0]!.slice(historyKey.length);
      reads.set(sid, (reads.get(sid) ?? 0) + 1);
    }
    expect(status).toBe(200);
    expect(body.errors).toBeUndefined();
    return { data: body.data, reads: Object.fromEntries(reads) };
  };

  /** Stores what a flow said of `sid` (as a flow request would), so its `flow` comes from the history. */
  const flowSaid = (sid: string, flowId: string) =>
    gw.storage.events.append({
      kind: 'call', accountSid: sim.accountSid, callSid: sid, status: 'COMPLETED', at: '2026-01-15T10:00:00+05:30', source: 'WEBHOOK', forward: true,
      data: { call: { sid, flow: { ...EMPTY_FLOW, flowId } } },
    });

  /** Exotel's calls whose `flow` is read from the history (a flow never dials them out itself). */
  const flowCalls = () => sim.calls.list().filter((c) => c.Direction !== 'outbound-dial');

  it('is one read for a call whose events and flow are both asked for', async () => {
    const sid = flowCalls()[0]!.Sid;
    await flowSaid(sid, '228866');
    // The call itself is cached by a first lookup, so the count is about the history alone.
    await gw.gql('query($sid: ID!) { call(sid: $sid) { sid } }', { sid });

    const { data, reads } = await counted('query($sid: ID!) { call(sid: $sid) { sid events { status source } flow { flowId } } }', { sid });
    expect(data.call).toEqual({ sid, events: [{ status: 'COMPLETED', source: 'WEBHOOK' }], flow: { flowId: '228866' } });
    expect(reads).toEqual({ [sid]: 1 });

    // The same call asked for twice in one request, each time for one of the fields: still one read.
    const twice = await counted('query($sid: ID!) { a: call(sid: $sid) { events { status } } b: call(sid: $sid) { flow { flowId } } }', { sid });
    expect(twice.data).toEqual({ a: { events: [{ status: 'COMPLETED' }] }, b: { flow: { flowId: '228866' } } });
    expect(twice.reads).toEqual({ [sid]: 1 });
  });

  it('is one read per call of a calls page asking for events and flow', async () => {
    const { data, reads } = await counted('{ calls(first: 8) { nodes { sid direction events { status } flow { flowId } } } }');
    const nodes = data.calls.nodes as Array<{ sid: string; direction: string; flow: unknown }>;
    expect(nodes).toHaveLength(8);
    // Calls whose flow is read from the history are among them, and calls a flow dialled (no flow read).
    expect(nodes.filter((n) => n.direction !== 'OUTBOUND_DIAL').length).toBeGreaterThan(1);
    expect(reads).toEqual(Object.fromEntries(nodes.map((n) => [n.sid, 1])));
  });

  it('reads again in the next request: the history is kept for one request only', async () => {
    const sid = flowCalls()[1]!.Sid;
    const query = 'query($sid: ID!) { call(sid: $sid) { events { status } flow { flowId } } }';
    expect((await counted(query, { sid })).data.call).toEqual({ events: [], flow: null });
    await flowSaid(sid, '4242');
    const { data, reads } = await counted(query, { sid });
    expect(data.call).toEqual({ events: [{ status: 'COMPLETED' }], flow: { flowId: '4242' } });
    expect(reads).toEqual({ [sid]: 1 });
  });
});
