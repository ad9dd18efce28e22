/**
 * Rate discipline under overload: ten times the account budget of demand, as distinct cold
 * `call(sid)` lookups sent at a steady rate (open loop) for one budget window. Counted at the simulator,
 * which enforces the same budget and answers 429 beyond it: the most upstream requests in any rolling
 * window, the 429s, and how every GraphQL request was answered (`overloadDataRatio`: the share answered
 * with data, which depends on cold lookups waiting in open bulk batches rather than leaving one by one).
 */
import { performance } from 'node:perf_hooks';
import { gatewayEnv, gql, seedFinishedCalls, startGateway, startSimulator } from '../lib/env.js';
import { maxInWindow, summarise } from '../lib/stats.js';
import { n, table, type BenchContext, type FigureResult } from '../lib/types.js';
import { CALL_QUERY } from './query.js';

export async function overload(ctx: BenchContext): Promise<FigureResult> {
  // Full run: Exotel's real budget and window (200 per 60 s) for a whole minute. Quick: a 3 s window.
  const budget = ctx.quick ? 20 : 200;
  const windowMs = ctx.quick ? 3000 : 60_000;
  const demand = budget * 10;
  const sim = await startSimulator({ ratePerMinute: budget, rateWindowMs: windowMs });
  const sids = seedFinishedCalls(sim, demand);
  const gateway = await startGateway(
    'gateway-overload',
    gatewayEnv(sim, { EXOTEL_RATE_LIMIT_PER_MIN: String(budget), EXOTEL_RATE_WINDOW_MS: String(windowMs), EXOTEL_RATE_QUEUE_MS: ctx.quick ? '1000' : '10000' }),
  );
  const outcomes = new Map<string, number>();
  const latencies: number[] = [];
  let wrong = 0;
  try {
    sim.resetRequests();
    const started = performance.now();
    const startedWall = Date.now();
    const intervalMs = windowMs / demand;
    const pending: Array<Promise<void>> = [];
    for (let i = 0; i < demand; i++) {
      const due = started + i * intervalMs;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      const sid = sids[i]!;
      const t = performance.now();
      pending.push(
        gql<{ call: { sid: string; status: string } | null }>(gateway.info.url, CALL_QUERY, { sid }).then(
          (r) => {
            latencies.push(performance.now() - t);
            const code = r.errors?.[0]?.extensions?.code ?? (r.data?.call ? 'OK' : 'EMPTY');
            if (code === 'OK' && r.data?.call?.sid !== sid) wrong++;
            outcomes.set(code, (outcomes.get(code) ?? 0) + 1);
          },
          () => void outcomes.set('NO_ANSWER', (outcomes.get('NO_ANSWER') ?? 0) + 1),
        ),
      );
    }
    const sentInS = (performance.now() - started) / 1000;
    await Promise.all(pending);
    const requests = sim.requests.filter((r) => r.at >= startedWall - 1000);
    const maxWindow = maxInWindow(requests.map((r) => r.at), windowMs);
    const upstream429 = requests.filter((r) => r.status === 429).length;
    const answered = (outcomes.get('OK') ?? 0) + (outcomes.get('RATE_LIMITED') ?? 0);
    const perMin = Math.round((maxWindow * 60_000) / windowMs);
    // Lookups answered with data ÷ demand: how well batches that wait for budget use the scarce requests.
    const dataRatio = Math.round(((outcomes.get('OK') ?? 0) / demand) * 1000) / 1000;
    ctx.log(`  ${demand} requests in ${sentInS.toFixed(1)} s; upstream ${requests.length} (max ${maxWindow} in any ${windowMs} ms), 429s ${upstream429}; outcomes ${JSON.stringify(Object.fromEntries(outcomes))}`);
    const lat = summarise(latencies);
    return {
      id: 'overload',
      title: '7. Rate discipline under overload (10× the budget for one window)',
      metrics: {
        overloadUpstreamPerMin: perMin,
        overloadBudgetPerMin: Math.round((budget * 60_000) / windowMs),
        overloadUpstreamMaxInWindow: maxWindow,
        overloadUpstream429s: upstream429,
        overloadAnswered: answered,
        overloadUnanswered: demand - answered,
        overloadDataRatio: dataRatio,
      },
      targets: [
        { what: 'overload: upstream requests in any window', target: `≤ budget (${budget} per ${windowMs / 1000} s)`, measured: `${maxWindow}`, met: maxWindow <= budget },
        { what: 'overload: upstream 429s', target: '0', measured: String(upstream429), met: upstream429 === 0 },
        { what: 'overload: lookups answered with data ÷ demand', target: '≥ 0.99', measured: String(dataRatio), met: dataRatio >= 0.99 },
        { what: 'overload: requests answered with data or RATE_LIMITED', target: `all ${n(demand)}`, measured: `${n(answered)} (${wrong} wrong data)`, met: answered === demand && wrong === 0 },
      ],
      markdown: [
        ...table(
          ['demand', 'budget', 'upstream (max in any window)', 'upstream 429s', 'answered with data', 'RATE_LIMITED', 'other'],
          [[`${n(demand)} distinct cold lookups over ${(windowMs / 1000).toFixed(0)} s`, `${budget} per ${windowMs / 1000} s`, maxWindow, upstream429, outcomes.get('OK') ?? 0, outcomes.get('RATE_LIMITED') ?? 0, demand - answered]],
        ),
        '',
        `Answer latency p50 ${lat.p50} ms, p99 ${lat.p99} ms (queued requests wait up to EXOTEL_RATE_QUEUE_MS before RATE_LIMITED). ` +
          `Outcomes: ${[...outcomes].map(([k, v]) => `${k} ${v}`).join(', ')}. \`overloadUpstreamPerMin\` is the busiest window scaled to a minute (budget ${Math.round((budget * 60_000) / windowMs)}/min).`,
      ],
      details: { budget, windowMs, demand, sentInS, upstreamTotal: requests.length, maxWindow, upstream429, outcomes: Object.fromEntries(outcomes), answerLatencyMs: lat, wrongData: wrong },
    };
  } finally {
    await gateway.stop();
    await sim.stop();
  }
}
