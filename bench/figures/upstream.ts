/**
 * Upstream efficiency, counted at the simulator: requests per 1,000 distinct cold call
 * lookups (one `callsBySid` query; and 1,000 `call(sid)` queries, 100 in flight at a time), then per
 * 1,000 repeated lookups of the same (terminal) calls. In full runs the concurrent cold case runs on Redis
 * too, when Redis answers (a gateway with a unique key prefix, deleted afterwards).
 */
import { gql, gatewayEnv, seedFinishedCalls, startGateway, startSimulator } from '../lib/env.js';
import { n, table, type BenchContext, type FigureResult } from '../lib/types.js';
import { CALL_QUERY } from './query.js';
import { BENCH_REDIS_URL, deletePrefix, redisPing } from './scaleout.js';

const BY_SID = 'query Many($sids: [ID!]!) { callsBySid(sids: $sids) { sid status } }';

async function inParallel<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

export async function upstreamEfficiency(ctx: BenchContext): Promise<FigureResult> {
  const lookups = ctx.quick ? 200 : 1000;
  const per1000 = (count: number) => Math.round((count * 1000 * 100) / lookups) / 100;
  const sim = await startSimulator();
  const oneQuerySids = seedFinishedCalls(sim, lookups);
  const concurrentSids = seedFinishedCalls(sim, lookups);
  const gateway = await startGateway('gateway-upstream', gatewayEnv(sim));
  const url = gateway.info.url;
  let bad = 0;
  const oneQuery = async () => {
    const r = await gql<{ callsBySid: Array<{ status: string } | null> }>(url, BY_SID, { sids: oneQuerySids });
    bad += (r.data?.callsBySid ?? []).filter((c) => c?.status !== 'COMPLETED').length + (r.data ? 0 : lookups);
  };
  const concurrent = () =>
    inParallel(concurrentSids, 100, async (sid) => {
      const r = await gql<{ call: { status: string } | null }>(url, CALL_QUERY, { sid });
      if (r.data?.call?.status !== 'COMPLETED') bad++;
    });
  const counted = async (fn: () => Promise<void>) => {
    sim.resetRequests();
    await fn();
    return sim.countRequests();
  };
  try {
    const coldOne = await counted(oneQuery);
    const coldMany = await counted(concurrent);
    const warmOne = await counted(oneQuery);
    const warmMany = await counted(concurrent);
    ctx.log(`  cold: ${coldOne} (one query), ${coldMany} (concurrent); warm: ${warmOne}, ${warmMany}; wrong answers: ${bad}`);
    // The same concurrent cold lookups through a gateway on Redis (its own fresh Sids); full runs only, so
    // the quick smoke run stays short.
    let coldManyRedis: number | null = null;
    if (!ctx.quick && (await redisPing(BENCH_REDIS_URL))) {
      const prefix = `egg-bench-upstream-${process.pid}-${Date.now().toString(36)}:`;
      const redisSids = seedFinishedCalls(sim, lookups);
      const onRedis = await startGateway('gateway-upstream-redis', gatewayEnv(sim, { REDIS_URL: BENCH_REDIS_URL, REDIS_KEY_PREFIX: prefix }));
      try {
        coldManyRedis = await counted(() =>
          inParallel(redisSids, 100, async (sid) => {
            const r = await gql<{ call: { status: string } | null }>(onRedis.info.url, CALL_QUERY, { sid });
            if (r.data?.call?.status !== 'COMPLETED') bad++;
          }),
        );
      } finally {
        await onRedis.stop();
        await deletePrefix(BENCH_REDIS_URL, prefix).catch(() => -1);
      }
      ctx.log(`  cold concurrent on Redis: ${coldManyRedis}`);
    }
    const cold = Math.max(per1000(coldOne), per1000(coldMany));
    const warm = per1000(warmOne + warmMany) / 2;
    return {
      id: 'upstream',
      title: '2. Upstream efficiency (requests counted at the simulator)',
      metrics: { upstreamPer1000Cold: cold, upstreamPer1000ColdOneQuery: per1000(coldOne), upstreamPer1000ColdConcurrent: per1000(coldMany), upstreamPer1000Warm: warm, upstreamWrongAnswers: bad, upstreamPer1000ColdConcurrentRedis: coldManyRedis === null ? null : per1000(coldManyRedis) },
      targets: [
        { what: 'upstream per 1,000 cold lookups, one query', target: '10 (floor: 100 Sids per bulk request)', measured: String(per1000(coldOne)), met: per1000(coldOne) <= 10 },
        // One query reaches the floor; concurrent queries arrive in smeared waves, so theirs is a ceiling, on memory and on Redis.
        { what: 'upstream per 1,000 cold lookups, concurrent queries (memory)', target: '≤ 40 (floor 10)', measured: String(per1000(coldMany)), met: per1000(coldMany) <= 40 },
        ...(coldManyRedis === null
          ? []
          : [{ what: 'upstream per 1,000 cold lookups, concurrent queries (Redis)', target: '≤ 40 (floor 10)', measured: String(per1000(coldManyRedis)), met: per1000(coldManyRedis) <= 40 }]),
        { what: 'upstream per 1,000 repeated terminal lookups', target: '0', measured: String(warm), met: warm === 0 },
      ],
      markdown: [
        ...table(
          ['lookups', 'upstream requests', 'per 1,000', 'floor'],
          [
            [`${n(lookups)} distinct, one \`callsBySid\` query (cold)`, coldOne, per1000(coldOne), 10],
            [`${n(lookups)} distinct, one \`call(sid)\` query each, 100 in flight (cold)`, coldMany, per1000(coldMany), 10],
            [`the same ${n(lookups)}, one query (warm, terminal calls)`, warmOne, per1000(warmOne), 0],
            [`the same ${n(lookups)}, concurrent queries (warm)`, warmMany, per1000(warmMany), 0],
            ...(coldManyRedis === null ? [] : [[`${n(lookups)} distinct, one \`call(sid)\` query each, 100 in flight (cold), gateway on Redis`, coldManyRedis, per1000(coldManyRedis), 10]]),
          ],
        ),
        '',
        `\`upstreamPer1000Cold\` is the worse of the two cold cases. Every answer was checked (${bad} wrong).`,
      ],
      details: { lookups, coldOneQuery: coldOne, coldConcurrent: coldMany, coldConcurrentRedis: coldManyRedis, warmOneQuery: warmOne, warmConcurrent: warmMany, wrongAnswers: bad },
    };
  } finally {
    await gateway.stop();
    await sim.stop();
  }
}
