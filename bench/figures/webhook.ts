/**
 * Figure 3 — webhook ingest: acknowledgement latency of call-status callbacks at a steady 500/s (open
 * loop, evenly spaced), each a new call (no duplicates), against a bare express route that only answers 200.
 */
import { callStatusUrl, callbackBody, gatewayEnv, newSid, startBaseline, startGateway, startSimulator } from '../lib/env.js';
import { pacedLoad } from '../lib/http-load.js';
import { ms, n, table, type BenchContext, type FigureResult } from '../lib/types.js';

const RATE = 500;

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
    return {
      id: 'webhook',
      title: '3. Webhook ingest (ack latency at 500 callbacks/s)',
      metrics: { webhookAckP50Ms: g.latencyMs.p50, webhookAckP99Ms: g.latencyMs.p99, webhookBaselineP50Ms: b.latencyMs.p50, webhookBaselineP99Ms: b.latencyMs.p99, webhookNon2xx: g.non2xx + g.errors },
      targets: [{ what: 'webhook ack p99 at 500/s', target: '≤ 5 ms', measured: ms(g.latencyMs.p99), met: g.latencyMs.p99 <= 5 && g.non2xx + g.errors === 0 }],
      markdown: [
        ...table(
          ['server', 'callbacks', 'rate', 'p50', 'p90', 'p99', 'max', 'non-2xx/errors'],
          [
            ['bare express route answering 200', n(b.requests), `${n(b.rps)}/s`, ms(b.latencyMs.p50), ms(b.latencyMs.p90), ms(b.latencyMs.p99), ms(b.latencyMs.max), b.non2xx + b.errors],
            ['gateway webhook (token, parse, dedup, store, publish)', n(g.requests), `${n(g.rps)}/s`, ms(g.latencyMs.p50), ms(g.latencyMs.p90), ms(g.latencyMs.p99), ms(g.latencyMs.max), g.non2xx + g.errors],
          ],
        ),
        '',
        `Each callback is a distinct call's \`completed\` (form-urlencoded, as Exotel posts it), so every one is stored and published; memory storage; ${durationS} s per side, open loop at a steady ${RATE}/s (one request every ${1000 / RATE} ms over keep-alive connections; autocannon's \`overallRate\` would send each second's quota as one burst).`,
      ],
      details: { baseline: b, gateway: g, rate: RATE },
    };
  } finally {
    await Promise.all([baseline.stop(), gateway.stop()]);
    await sim.stop();
  }
}
