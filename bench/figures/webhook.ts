/**
 * Webhook ingest: acknowledgement latency of call-status callbacks at a steady 500/s (open
 * loop, evenly spaced), each a new call (no duplicates), against a bare express route that only answers 200.
 * The gateway runs twice: on memory storage and on Redis (a private redis-server, so nothing else on the
 * machine shares it), with the Redis commands one stored callback sends before its 200 counted by Redis.
 * Beside it, on the same redis-server, the floor of storing before answering: a bare express route that
 * reads the form and answers 200 once one EVALSHA has appended it to a stream.
 */
import { callStatusUrl, callbackBody, gatewayEnv, newSid, startBaseline, startGateway, startSimulator } from '../lib/env.js';
import { pacedLoad, type HttpLoadResult } from '../lib/http-load.js';
import { countCommands, startPrivateRedis, type CommandCount, type PrivateRedis } from '../lib/redis-server.js';
import { round } from '../lib/stats.js';
import { ms, n, table, type BenchContext, type FigureResult } from '../lib/types.js';

const RATE = 500;
/** Callbacks sent one after the other while Redis counts commands. */
const COUNTED_CALLBACKS = 200;
/** Not a callback's: the event log's blocking reader (after the 200) and the counter's own commands. */
const NOT_PER_CALLBACK = new Set(['xread', 'xrevrange', 'info', 'config', 'client', 'hello', 'select', 'ping']);

/** The Redis part: p99 at 500/s, the floor's, and the commands per stored callback; skipped when redis-server cannot start. */
async function onRedis(
  ctx: BenchContext,
  sim: Awaited<ReturnType<typeof startSimulator>>,
  durationS: number,
): Promise<{ load: HttpLoadResult; floor: HttpLoadResult; commands: CommandCount } | { skipped: string }> {
  let redis: PrivateRedis;
  try {
    redis = await startPrivateRedis();
  } catch (err) {
    return { skipped: `no redis-server to start (${err instanceof Error ? err.message : String(err)})` };
  }
  const gateway = await startGateway('gateway-webhook-redis', gatewayEnv(sim, { REDIS_URL: redis.url, REDIS_KEY_PREFIX: 'egg-bench:' }));
  const floorServer = await startBaseline('express-redis', { BENCH_REDIS_URL: redis.url });
  try {
    const url = callStatusUrl(gateway.info.url, gateway.info.accountSid);
    const headers = { 'content-type': 'application/x-www-form-urlencoded' };
    const load = (target: string, d: number) => pacedLoad({ url: target, headers, bodyFor: () => callbackBody(newSid()), durationS: d, rate: RATE });
    const floorUrl = `${floorServer.info.url}/webhooks/exotel/token/call-status`;
    await load(floorUrl, ctx.quick ? 1 : 2);
    const floor = await load(floorUrl, durationS);
    ctx.log(`  floor (express + one EVALSHA): p50 ${floor.latencyMs.p50} ms, p99 ${floor.latencyMs.p99} ms, non-2xx ${floor.non2xx}`);
    await floorServer.stop();
    await load(url, ctx.quick ? 1 : 2);
    const result = await load(url, durationS);
    ctx.log(`  gateway on Redis: p50 ${result.latencyMs.p50} ms, p99 ${result.latencyMs.p99} ms, non-2xx ${result.non2xx}`);
    const commands = await countCommands(
      redis.url,
      async () => {
        for (let i = 0; i < COUNTED_CALLBACKS; i += 1) {
          const res = await fetch(url, { method: 'POST', headers, body: callbackBody(newSid()) });
          if (res.status !== 200) throw new Error(`callback answered ${res.status}: ${await res.text()}`);
          await res.text();
        }
      },
      NOT_PER_CALLBACK,
    );
    ctx.log(`  Redis commands per stored callback: ${round(commands.sentTotal / COUNTED_CALLBACKS, 2)} (${JSON.stringify(commands.sent)})`);
    return { load: result, floor, commands };
  } finally {
    await floorServer.stop();
    await gateway.stop();
    await redis.stop();
  }
}

export async function webhookIngest(ctx: BenchContext): Promise<FigureResult> {
  const sim = await startSimulator();
  const gateway = await startGateway('gateway-webhook', gatewayEnv(sim));
  const baseline = await startBaseline('express-200');
  try {
    const durationS = ctx.quick ? 2 : 10;
    const headers = { 'content-type': 'application/x-www-form-urlencoded' };
    const gwUrl = callStatusUrl(gateway.info.url, gateway.info.accountSid);
    const baseUrl = `${baseline.info.url}/webhooks/exotel/token/call-status`;
    const load = (url: string, d: number) => pacedLoad({ url, headers, bodyFor: () => callbackBody(newSid()), durationS: d, rate: RATE });
    ctx.log('  warm-up (JIT) of both servers');
    await load(baseUrl, ctx.quick ? 1 : 2);
    await load(gwUrl, ctx.quick ? 1 : 2);
    const b = await load(baseUrl, durationS);
    ctx.log(`  baseline: p50 ${b.latencyMs.p50} ms, p99 ${b.latencyMs.p99} ms`);
    const g = await load(gwUrl, durationS);
    ctx.log(`  gateway: p50 ${g.latencyMs.p50} ms, p99 ${g.latencyMs.p99} ms, non-2xx ${g.non2xx}`);
    await gateway.stop();
    const r = await onRedis(ctx, sim, durationS);
    const redisRun = 'load' in r ? r : undefined;
    const ratio = redisRun ? round(redisRun.load.latencyMs.p99 / b.latencyMs.p99, 2) : null;
    const perCallback = redisRun ? round(redisRun.commands.sentTotal / COUNTED_CALLBACKS, 2) : null;
    const floorRatio = redisRun ? round(redisRun.load.latencyMs.p99 / redisRun.floor.latencyMs.p99, 2) : null;
    const row = (name: string, x: HttpLoadResult) => [name, n(x.requests), `${n(x.rps)}/s`, ms(x.latencyMs.p50), ms(x.latencyMs.p90), ms(x.latencyMs.p99), ms(x.latencyMs.max), x.non2xx + x.errors];
    return {
      id: 'webhook',
      title: '3. Webhook ingest (ack latency at 500 callbacks/s)',
      metrics: {
        webhookAckP50Ms: g.latencyMs.p50,
        webhookAckP99Ms: g.latencyMs.p99,
        webhookBaselineP50Ms: b.latencyMs.p50,
        webhookBaselineP99Ms: b.latencyMs.p99,
        webhookNon2xx: g.non2xx + g.errors,
        ...(redisRun
          ? {
              webhookAckP99MsRedis: redisRun.load.latencyMs.p99,
              webhookAckP99RatioRedis: ratio!,
              webhookNon2xxRedis: redisRun.load.non2xx + redisRun.load.errors,
              webhookRedisCommandsPerCallback: perCallback!,
              webhookFloorP50MsRedis: redisRun.floor.latencyMs.p50,
              webhookFloorP99MsRedis: redisRun.floor.latencyMs.p99,
              webhookFloorP99RatioRedis: round(redisRun.floor.latencyMs.p99 / b.latencyMs.p99, 2),
              webhookAckP99VsFloorRedis: floorRatio!,
            }
          : {}),
      },
      targets: [
        { what: 'webhook ack p99 at 500/s', target: '≤ 5 ms', measured: ms(g.latencyMs.p99), met: g.latencyMs.p99 <= 5 && g.non2xx + g.errors === 0 },
        ...(redisRun
          ? [
              { what: 'webhook ack p99 on Redis ÷ bare route p99', target: '≤ 3', measured: String(ratio), met: ratio! <= 3 && redisRun.load.non2xx + redisRun.load.errors === 0 },
              { what: 'Redis commands per stored callback before its 200', target: '≤ 3', measured: String(perCallback), met: perCallback! <= 3 },
            ]
          : []),
      ],
      markdown: [
        ...table(
          ['server', 'callbacks', 'rate', 'p50', 'p90', 'p99', 'max', 'non-2xx/errors'],
          [
            row('bare express route answering 200', b),
            row('gateway webhook on memory (token, parse, atomic ingest, publish)', g),
            ...(redisRun
              ? [row('floor on Redis: bare express route storing the form with one EVALSHA', redisRun.floor), row('gateway webhook on Redis (the same, one Lua script)', redisRun.load)]
              : []),
          ],
        ),
        '',
        redisRun
          ? `On Redis: p99 ${ratio}× the bare route's and ${floorRatio}× the floor's (the floor's own p99 is ${round(redisRun.floor.latencyMs.p99 / b.latencyMs.p99, 2)}× the bare route's); ${perCallback} commands per stored callback sent before the 200 (${Object.entries(redisRun.commands.sent).map(([k, v]) => `${k} ${v}`).join(', ')} for ${COUNTED_CALLBACKS} callbacks; ${redisRun.commands.inScripts} more ran inside the script), counted by Redis (MONITOR, checked against INFO commandstats) on a private redis-server without persistence.`
          : `Redis part skipped: ${'skipped' in r ? r.skipped : ''}.`,
        '',
        `Each callback is a distinct call's \`completed\` (form-urlencoded, as Exotel posts it), so every one is stored and published; ${durationS} s per side, open loop at a steady ${RATE}/s (one request every ${1000 / RATE} ms over keep-alive connections; autocannon's \`overallRate\` would send each second's quota as one burst).`,
      ],
      details: { baseline: b, gateway: g, rate: RATE, ...(redisRun ? { redis: redisRun.load, redisFloor: redisRun.floor, redisCommands: redisRun.commands } : {}) },
    };
  } finally {
    await Promise.all([baseline.stop(), gateway.stop()]);
    await sim.stop();
  }
}
