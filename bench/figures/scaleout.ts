/**
 * Scale-out: the fan-out figure across two gateway replicas sharing the machine's Redis (unique key
 * prefix, deleted afterwards). Subscribers are split evenly over both replicas; every callback goes into
 * replica A, so half the frames cross Redis. Compared with raw `ws` broadcasting to the same number of
 * sockets in this run.
 */
import { Socket } from 'node:net';
import { Redis } from 'ioredis';
import { gatewayEnv, startBaseline, startGateway, startSimulator } from '../lib/env.js';
import { round } from '../lib/stats.js';
import { openFleet } from '../lib/ws-fleet.js';
import { ms, n, pct, table, type BenchContext, type FigureResult } from '../lib/types.js';
import { CALL_EVENTS, gatewayTrigger, measureFanout, rawTrigger, type FanoutRun } from './fanout.js';

export const BENCH_REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';

export function redisPing(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean) => (socket.destroy(), resolve(ok));
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.connect(Number(port || 6379), hostname, () => socket.write('PING\r\n'));
    socket.once('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

export async function deletePrefix(url: string, prefix: string): Promise<number> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  let deleted = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) deleted += await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return deleted;
}

export async function scaleOut(ctx: BenchContext): Promise<FigureResult> {
  const base = { id: 'scaleout', title: '6. Scale-out (fan-out across two replicas on Redis)', metrics: {}, targets: [], markdown: [], details: {} };
  if (!(await redisPing(BENCH_REDIS_URL))) return { ...base, skipped: `no Redis answered PING at ${BENCH_REDIS_URL} (set BENCH_REDIS_URL)` };
  const size = ctx.quick ? 200 : 10_000;
  const events = ctx.quick ? 3 : 15;
  const burst = ctx.quick ? 3 : 10;
  const prefix = `egg-bench:${process.pid}:${Date.now().toString(36)}:`;
  const sim = await startSimulator();
  const env = gatewayEnv(sim, { REDIS_URL: BENCH_REDIS_URL, REDIS_KEY_PREFIX: prefix, GATEWAY_REPLICAS: '2' });
  const [a, b] = await Promise.all([startGateway('gateway-replica-A', env), startGateway('gateway-replica-B', env)]);
  let gw: FanoutRun;
  let raw: FanoutRun;
  try {
    const fleet = await openFleet({ urls: [a.info.wsUrl, b.info.wsUrl], size, protocol: 'graphql-ws', query: CALL_EVENTS });
    try {
      gw = await measureFanout(fleet, gatewayTrigger(a.info.url, a.info.accountSid), events, burst);
    } finally {
      await fleet.close();
    }
    ctx.log(`  two replicas × ${n(size)}: p50 ${gw.latencyMs.p50} ms, p99 ${gw.latencyMs.p99} ms, ${n(gw.framesPerSecond)} frames/s, missing ${gw.missing}`);
  } finally {
    await Promise.all([a.stop(), b.stop()]);
    await sim.stop();
    const deleted = await deletePrefix(BENCH_REDIS_URL, prefix).catch(() => -1);
    ctx.log(`  deleted ${deleted} Redis keys under ${prefix}`);
  }
  const rawServer = await startBaseline('ws-broadcast');
  try {
    const fleet = await openFleet({ urls: [rawServer.info.wsUrl], size, protocol: 'raw' });
    try {
      raw = await measureFanout(fleet, rawTrigger(rawServer.info.url), events, burst);
    } finally {
      await fleet.close();
    }
    ctx.log(`  raw ws × ${n(size)}: p50 ${raw.latencyMs.p50} ms, p99 ${raw.latencyMs.p99} ms, ${n(raw.framesPerSecond)} frames/s`);
  } finally {
    await rawServer.stop();
  }
  const ratio = round(gw.framesPerSecond / raw.framesPerSecond, 3);
  const label = ctx.quick ? String(size) : '10k';
  return {
    ...base,
    metrics: { scaleoutP50Ms10k: gw.latencyMs.p50, scaleoutP99Ms10k: gw.latencyMs.p99, scaleoutRateRatio: ratio, scaleoutMissing: gw.missing },
    targets: [
      { what: `two replicas: fan-out p99 at ${label}`, target: '≤ 50 ms (fan-out target)', measured: ms(gw.latencyMs.p99), met: gw.latencyMs.p99 <= 50 && gw.missing === 0 },
      { what: `two replicas: frames/s vs raw ws at ${label}`, target: '≥ 50% (fan-out target)', measured: pct(ratio), met: ratio >= 0.5 },
    ],
    markdown: [
      ...table(
        ['subscribers', 'server', 'p50', 'p90', 'p99', 'max', 'frames/s (burst)', 'missed'],
        [
          [n(size), 'raw `ws`, one process', ms(raw.latencyMs.p50), ms(raw.latencyMs.p90), ms(raw.latencyMs.p99), ms(raw.latencyMs.max), n(raw.framesPerSecond), raw.missing],
          [n(size), 'two gateway replicas on Redis (half each, callbacks into A)', ms(gw.latencyMs.p50), ms(gw.latencyMs.p90), ms(gw.latencyMs.p99), ms(gw.latencyMs.max), n(gw.framesPerSecond), gw.missing],
        ],
      ),
      '',
      `Frames/s ratio **${pct(ratio)}**. Two replicas share two cores with the bench process and Redis, so this measures correctness and overhead of the Redis hop, not added capacity.`,
    ],
    details: { gateway: gw, raw, redisUrl: BENCH_REDIS_URL.replace(/\/\/.*@/, '//***@') },
  };
}
