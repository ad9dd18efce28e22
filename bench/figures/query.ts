/**
 * Figure 1 — query overhead: warm-cache `call(sid)` over HTTP against a bare node:http server answering
 * the very same response bytes. Both servers run in their own child process; autocannon runs here.
 * Rounds alternate (baseline, gateway, baseline, gateway) so drift of the shared machine hits both.
 */
import { gql, gatewayEnv, seedFinishedCalls, startBaseline, startGateway, startSimulator } from '../lib/env.js';
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

export async function queryOverhead(ctx: BenchContext): Promise<FigureResult> {
  const sim = await startSimulator();
  const [sid] = seedFinishedCalls(sim, 1);
  const gateway = await startGateway('gateway-query', gatewayEnv(sim));
  try {
    const first = await gql<{ call: { status: string } }>(gateway.info.url, CALL_QUERY, { sid });
    if (first.data?.call?.status !== 'COMPLETED') throw new Error(`warm-up query failed: ${JSON.stringify(first)}`);
    const body = JSON.stringify({ query: CALL_QUERY, variables: { sid }, operationName: 'Call' });
    // The exact bytes the gateway answers warm, for the baseline to answer too.
    const res = await fetch(`${gateway.info.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const warmBody = await res.text();
    const baseline = await startBaseline('http-json', { BENCH_JSON_BODY: warmBody });
    try {
      const headers = { 'content-type': 'application/json' };
      const durationS = ctx.quick ? 1 : 8;
      const rounds = ctx.quick ? 1 : 2;
      const load = (url: string, d: number) => httpLoad({ url: `${url}/graphql`, headers, body, connections: CONNECTIONS, durationS: d });
      ctx.log('  warm-up (JIT) of both servers');
      await load(baseline.info.url, ctx.quick ? 1 : 2);
      await load(gateway.info.url, ctx.quick ? 1 : 2);
      const base: HttpLoadResult[] = [];
      const gw: HttpLoadResult[] = [];
      for (let r = 0; r < rounds; r++) {
        base.push(await load(baseline.info.url, durationS));
        ctx.log(`  baseline round ${r + 1}: ${base.at(-1)!.rps} req/s, p99 ${base.at(-1)!.latencyMs.p99} ms`);
        gw.push(await load(gateway.info.url, durationS));
        ctx.log(`  gateway round ${r + 1}: ${gw.at(-1)!.rps} req/s, p99 ${gw.at(-1)!.latencyMs.p99} ms`);
      }
      const after = await gql<{ call: { status: string } }>(gateway.info.url, CALL_QUERY, { sid });
      const b = combine(base);
      const g = combine(gw);
      const ratio = round(g.rps / b.rps, 3);
      const upstream = sim.countRequests();
      return {
        id: 'query',
        title: '1. Query overhead (warm `call(sid)` over HTTP)',
        metrics: { queryThroughputRatio: ratio, queryRps: g.rps, baselineRps: b.rps, queryP99Ms: g.p99Ms, baselineP99Ms: b.p99Ms, queryP50Ms: g.p50Ms, baselineP50Ms: b.p50Ms },
        targets: [{ what: 'query throughput vs bare node:http', target: '≥ 35%', measured: pct(ratio), met: ratio >= 0.35 }],
        markdown: [
          ...table(
            ['server', 'requests/s', 'p50', 'p99', 'non-2xx/errors'],
            [
              ['bare node:http, same JSON', n(b.rps), ms(b.p50Ms), ms(b.p99Ms), b.non2xx],
              ['gateway `call(sid)` warm', n(g.rps), ms(g.p50Ms), ms(g.p99Ms), g.non2xx],
            ],
          ),
          '',
          `Throughput ratio **${pct(ratio)}** (target ≥ 35%); p99 ${ms(g.p99Ms)} vs ${ms(b.p99Ms)}. ${CONNECTIONS} connections, ${rounds}×${durationS} s per side, alternating; ` +
            `response ${warmBody.length} bytes; upstream requests during the whole figure: ${upstream} (the first lookup only).`,
        ],
        details: { baseline: b, gateway: g, responseBytes: warmBody.length, upstreamRequests: upstream, answerAfterLoad: after.data ?? after.errors },
      };
    } finally {
      await baseline.stop();
    }
  } finally {
    await gateway.stop();
    await sim.stop();
  }
}
