/**
 * The fair share of the Exotel budget between client keys (docs/rate-budget.md).
 * 1. Its cost on the warm path, side by side in one run: warm `call(sid)` req/s of a gateway whose one key
 *    has the whole budget as its share, and of one with three weighted keys and the reserve
 *    (`fairShareWarmOverheadRatio` = the second ÷ the first; a warm answer takes no budget, so ≈ 1).
 * 2. Two keys under a small budget: one floods (`callsBySid` of 1,000 random Sids) while the other makes
 *    cold `call(sid)` lookups; the share of the other key's lookups answered with data
 *    (`fairShareOtherKeyDataRatio`), and the most upstream requests in any window, counted at the simulator.
 */
import { randomBytes } from 'node:crypto';
import { gatewayEnv, seedFinishedCalls, startGateway, startSimulator } from '../lib/env.js';
import { httpLoad } from '../lib/http-load.js';
import { maxInWindow, round } from '../lib/stats.js';
import { n, pct, table, type BenchContext, type FigureResult } from '../lib/types.js';
import { CALL_QUERY } from './query.js';

const secret = () => randomBytes(16).toString('hex');

async function gqlAs<T>(url: string, key: string, query: string, variables: Record<string, unknown>): Promise<{ data?: T; errors?: Array<{ extensions?: { code?: string } }> }> {
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query, variables }),
  });
  return (await res.json()) as { data?: T; errors?: Array<{ extensions?: { code?: string } }> };
}

export async function fairShare(ctx: BenchContext): Promise<FigureResult> {
  const sim = await startSimulator();
  const [sid] = seedFinishedCalls(sim, 1);
  const one = secret();
  const [a, b, c] = [secret(), secret(), secret()];
  const single = await startGateway('gateway-one-key', gatewayEnv(sim, { GATEWAY_API_KEYS: `only:${one}:read` }));
  const shared = await startGateway('gateway-three-keys', gatewayEnv(sim, { GATEWAY_API_KEYS: `a:${a}:read:3,b:${b}:read,c:${c}:read`, EXOTEL_RESERVE_SHARE: '0.25' }));
  let warm: { single: number; shared: number; ratio: number };
  try {
    for (const [gw, key] of [[single, one], [shared, a]] as const) {
      const first = await gqlAs<{ call: { status: string } }>(gw.info.url, key, CALL_QUERY, { sid });
      if (first.data?.call?.status !== 'COMPLETED') throw new Error(`warm-up query failed: ${JSON.stringify(first)}`);
    }
    const body = JSON.stringify({ query: CALL_QUERY, variables: { sid }, operationName: 'Call' });
    const durationS = ctx.quick ? 1 : 5;
    const rounds = ctx.quick ? 1 : 2;
    const load = (url: string, key: string, d: number) =>
      httpLoad({ url: `${url}/graphql`, headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body, connections: 20, durationS: d });
    await load(single.info.url, one, 1);
    await load(shared.info.url, a, 1);
    let singleReq = 0;
    let sharedReq = 0;
    let seconds = 0;
    for (let r = 0; r < rounds; r++) {
      const s1 = await load(single.info.url, one, durationS);
      const s2 = await load(shared.info.url, a, durationS);
      singleReq += s1.requests;
      sharedReq += s2.requests;
      seconds += durationS;
      ctx.log(`  warm round ${r + 1}: one key ${s1.rps} req/s, three weighted keys ${s2.rps} req/s`);
    }
    warm = { single: Math.round(singleReq / seconds), shared: Math.round(sharedReq / seconds), ratio: round(sharedReq / singleReq, 3) };
  } finally {
    await Promise.all([single.stop(), shared.stop()]);
    await sim.stop();
  }

  // Two keys under a small budget, the simulator enforcing the same one.
  const budget = 40;
  const windowMs = ctx.quick ? 5_000 : 20_000;
  const limited = await startSimulator({ ratePerMinute: budget, rateWindowMs: windowMs });
  const calmSids = seedFinishedCalls(limited, ctx.quick ? 10 : 20);
  const [flood, calm] = [secret(), secret()];
  const gw = await startGateway(
    'gateway-fair-share',
    gatewayEnv(limited, {
      GATEWAY_API_KEYS: `flood:${flood}:read,calm:${calm}:read`,
      EXOTEL_RATE_LIMIT_PER_MIN: String(budget),
      EXOTEL_RATE_WINDOW_MS: String(windowMs),
      EXOTEL_RATE_QUEUE_MS: String(windowMs / 5),
    }),
  );
  try {
    limited.resetRequests();
    const startedWall = Date.now();
    const flooding = gqlAs<{ callsBySid: unknown[] }>(gw.info.url, flood, 'query($s: [ID!]!) { callsBySid(sids: $s) { sid } }', {
      s: Array.from({ length: 1000 }, () => randomBytes(16).toString('hex')),
    });
    // The other key's lookups, spread over the first part of the window while the flood spends.
    const spacingMs = windowMs / 4 / calmSids.length;
    const calmAnswers = await Promise.all(
      calmSids.map(async (s, i) => {
        await new Promise((r) => setTimeout(r, i * spacingMs));
        return gqlAs<{ call: { sid: string } | null }>(gw.info.url, calm, CALL_QUERY, { sid: s });
      }),
    );
    const floodAnswer = await flooding;
    const calmWithData = calmAnswers.filter((r, i) => r.data?.call?.sid === calmSids[i]).length;
    const floodLimited = (floodAnswer.errors ?? []).filter((e) => e.extensions?.code === 'RATE_LIMITED').length;
    const requests = limited.requests.filter((r) => r.at >= startedWall - 1000);
    const maxWindow = maxInWindow(requests.map((r) => r.at), windowMs);
    const upstream429 = requests.filter((r) => r.status === 429).length;
    const dataRatio = round(calmWithData / calmSids.length, 3);
    ctx.log(`  flood: ${floodLimited} RATE_LIMITED of 1,000; other key: ${calmWithData}/${calmSids.length} with data; upstream max ${maxWindow} in a window, 429s ${upstream429}`);
    return {
      id: 'fairshare',
      title: '8. Fair share of the Exotel budget between keys',
      metrics: { fairShareWarmOverheadRatio: warm.ratio, fairShareOtherKeyDataRatio: dataRatio, fairShareUpstreamMaxInWindow: maxWindow, fairShareUpstream429s: upstream429 },
      targets: [
        { what: 'fair share: warm req/s with three weighted keys ÷ one key', target: '≈ 1 (≥ 0.9)', measured: String(warm.ratio), met: warm.ratio >= 0.9 },
        { what: "fair share: the other key's cold lookups answered with data while one key floods", target: 'all', measured: `${calmWithData}/${calmSids.length}`, met: calmWithData === calmSids.length },
        { what: 'fair share: upstream requests in any window / 429s', target: `≤ ${budget} / 0`, measured: `${maxWindow} / ${upstream429}`, met: maxWindow <= budget && upstream429 === 0 },
      ],
      markdown: [
        ...table(
          ['case', 'measured'],
          [
            ['warm `call(sid)`, one key (its share: the whole budget)', `${n(warm.single)} req/s`],
            ['warm `call(sid)`, three weighted keys, reserve 25 %', `${n(warm.shared)} req/s (${pct(warm.ratio)})`],
            [`one key floods 1,000 unknown Sids, budget ${budget} per ${windowMs / 1000} s`, `${floodLimited} of its lookups RATE_LIMITED`],
            ["the other key's cold lookups meanwhile", `${calmWithData}/${calmSids.length} with data`],
            ['upstream: most in any window / 429s', `${maxWindow} / ${upstream429}`],
          ],
        ),
        '',
        'A warm answer takes no budget, so the fair share is not on the warm path; the ratio shows the noise between two identical paths.',
      ],
      details: { warm, budget, windowMs, calm: { asked: calmSids.length, withData: calmWithData }, flood: { rateLimited: floodLimited }, upstream: { total: requests.length, maxWindow, upstream429 } },
    };
  } finally {
    await gw.stop();
    await limited.stop();
  }
}
