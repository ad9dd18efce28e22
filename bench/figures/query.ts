/**
 * Query overhead: warm-cache `call(sid)` over HTTP, side by side in one run, against
 * - a bare node:http server answering the very same response bytes (the physical floor), and
 * - a plain Apollo Server 5 + DataLoader + keyv service fetching from the same simulator (what a team writes
 *   in a day; bench/workers/baseline.ts `apollo-dataloader`),
 * with the gateway on memory storage and, when Redis answers, on Redis. Every server runs in its own child
 * process; autocannon runs here. Rounds alternate between the servers so drift of the shared machine hits all.
 */
import { randomBytes } from 'node:crypto';
import { gql, gatewayEnv, seedFinishedCalls, startBaseline, startGateway, startSimulator } from '../lib/env.js';
import type { Worker } from '../lib/procs.js';
import { BENCH_REDIS_URL, deletePrefix, redisPing } from './scaleout.js';
import { httpLoad, type HttpLoadResult } from '../lib/http-load.js';
import { round } from '../lib/stats.js';
import { ms, n, pct, table, type BenchContext, type FigureResult } from '../lib/types.js';

export const CALL_QUERY = 'query Call($sid: ID!) { call(sid: $sid) { sid status from to direction startTime endTime durationSeconds price } }';
const CONNECTIONS = 20;

function combine(runs: HttpLoadResult[]) {
  const requests = runs.reduce((s, r) => s + r.requests, 0);
  const seconds = runs.reduce((s, r) => s + r.durationS, 0);
  return {
    rps: Math.round(requests / seconds),
    // Percentiles of rounds are not additive; the worse round is reported.
    p50Ms: Math.max(...runs.map((r) => r.latencyMs.p50)),
    p99Ms: Math.max(...runs.map((r) => r.latencyMs.p99)),
    non2xx: runs.reduce((s, r) => s + r.non2xx + r.errors, 0),
    rounds: runs,
  };
}

interface Server {
  label: string;
  url: string;
  runs: HttpLoadResult[];
}

export async function queryOverhead(ctx: BenchContext): Promise<FigureResult> {
  const sim = await startSimulator();
  const [sid] = seedFinishedCalls(sim, 1);
  const workers: Array<Worker<{ url: string }>> = [];
  const redisPrefix = `bench-query-${randomBytes(4).toString('hex')}:`;
  const redisUp = await redisPing(BENCH_REDIS_URL);
  try {
    const gateway = await startGateway('gateway-query', gatewayEnv(sim));
    workers.push(gateway);
    const first = await gql<{ call: { status: string } }>(gateway.info.url, CALL_QUERY, { sid });
    if (first.data?.call?.status !== 'COMPLETED') throw new Error(`warm-up query failed: ${JSON.stringify(first)}`);
    const body = JSON.stringify({ query: CALL_QUERY, variables: { sid }, operationName: 'Call' });
    // The exact bytes the gateway answers warm, for the bare baseline to answer too.
    const res = await fetch(`${gateway.info.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const warmBody = await res.text();
    const baseline = await startBaseline('http-json', { BENCH_JSON_BODY: warmBody });
    workers.push(baseline);
    const apollo = await startBaseline('apollo-dataloader', {
      NODE_ENV: 'production',
      BENCH_EXOTEL_BASE_URL: sim.url,
      BENCH_EXOTEL_ACCOUNT_SID: sim.accountSid,
      BENCH_EXOTEL_AUTH: Buffer.from(`${sim.apiKey}:${sim.apiToken}`).toString('base64'),
    });
    workers.push(apollo);
    const apolloFirst = await gql<{ call: { status: string } }>(apollo.info.url, CALL_QUERY, { sid });
    if (apolloFirst.data?.call?.status !== 'COMPLETED') throw new Error(`Apollo baseline query failed: ${JSON.stringify(apolloFirst)}`);
    let onRedis: Worker<{ url: string }> | undefined;
    if (redisUp) {
      onRedis = await startGateway('gateway-query-redis', gatewayEnv(sim, { REDIS_URL: BENCH_REDIS_URL, REDIS_KEY_PREFIX: redisPrefix }));
      workers.push(onRedis);
      await gql(onRedis.info.url, CALL_QUERY, { sid });
    }
    const servers: Server[] = [
      { label: 'bare node:http, same JSON', url: baseline.info.url, runs: [] },
      { label: 'plain Apollo Server 5 + DataLoader + keyv', url: apollo.info.url, runs: [] },
      { label: 'gateway `call(sid)` warm, memory', url: gateway.info.url, runs: [] },
      ...(onRedis ? [{ label: 'gateway `call(sid)` warm, Redis', url: onRedis.info.url, runs: [] }] : []),
    ];
    const headers = { 'content-type': 'application/json' };
    const durationS = ctx.quick ? 1 : 8;
    const rounds = ctx.quick ? 1 : 2;
    const load = (url: string, d: number) => httpLoad({ url: `${url}/graphql`, headers, body, connections: CONNECTIONS, durationS: d });
    ctx.log('  warm-up (JIT) of every server');
    for (const server of servers) await load(server.url, ctx.quick ? 1 : 2);
    for (let r = 0; r < rounds; r++) {
      for (const server of servers) {
        server.runs.push(await load(server.url, durationS));
        ctx.log(`  ${server.label} round ${r + 1}: ${server.runs.at(-1)!.rps} req/s, p99 ${server.runs.at(-1)!.latencyMs.p99} ms`);
      }
    }
    const after = await gql<{ call: { status: string } }>(gateway.info.url, CALL_QUERY, { sid });
    const [b, a, g, gr] = servers.map((s) => combine(s.runs));
    const ratio = round(g!.rps / b!.rps, 3);
    const vsApollo = round(g!.rps / a!.rps, 3);
    const vsApolloRedis = gr ? round(gr.rps / a!.rps, 3) : null;
    const upstream = sim.countRequests();
    return {
      id: 'query',
      title: '1. Query overhead (warm `call(sid)` over HTTP)',
      metrics: {
        queryThroughputRatio: ratio,
        queryRps: g!.rps,
        baselineRps: b!.rps,
        queryP99Ms: g!.p99Ms,
        baselineP99Ms: b!.p99Ms,
        queryP50Ms: g!.p50Ms,
        baselineP50Ms: b!.p50Ms,
        apolloBaselineRps: a!.rps,
        queryVsApollo: vsApollo,
        queryVsApolloRedis: vsApolloRedis,
        ...(gr ? { queryRedisRps: gr.rps, queryRedisP99Ms: gr.p99Ms } : {}),
      },
      targets: [
        { what: 'query throughput vs bare node:http', target: '≥ 35%', measured: pct(ratio), met: ratio >= 0.35 },
        { what: 'gateway (memory) vs plain Apollo + DataLoader + keyv', target: '≥ 1.2×', measured: `${vsApollo}×`, met: vsApollo >= 1.2 },
        {
          what: 'gateway (Redis) vs plain Apollo + DataLoader + keyv',
          target: '≥ 1.0×',
          measured: vsApolloRedis === null ? 'no Redis' : `${vsApolloRedis}×`,
          met: vsApolloRedis !== null && vsApolloRedis >= 1,
        },
      ],
      markdown: [
        ...table(
          ['server', 'requests/s', 'p50', 'p99', 'non-2xx/errors'],
          servers.map((s, i) => {
            const c = [b, a, g, gr][i]!;
            return [s.label, n(c.rps), ms(c.p50Ms), ms(c.p99Ms), c.non2xx];
          }),
        ),
        '',
        `Gateway vs bare node:http **${pct(ratio)}** (target ≥ 35%); vs plain Apollo **${vsApollo}×** on memory (target ≥ 1.2×)` +
          `${vsApolloRedis === null ? ' (no Redis: the Redis row is missing)' : `, **${vsApolloRedis}×** on Redis (target ≥ 1.0×)`}. ` +
          `${CONNECTIONS} connections, ${rounds}×${durationS} s per server, alternating; response ${warmBody.length} bytes; ` +
          `upstream requests during the whole figure: ${upstream} (the first lookup of each server only).`,
      ],
      details: { baseline: b, apollo: a, gateway: g, gatewayRedis: gr ?? null, responseBytes: warmBody.length, upstreamRequests: upstream, answerAfterLoad: after.data ?? after.errors },
    };
  } finally {
    for (const worker of workers.reverse()) await worker.stop();
    await sim.stop();
    if (redisUp) await deletePrefix(BENCH_REDIS_URL, redisPrefix).catch(() => 0);
  }
}
