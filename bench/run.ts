/**
 * `npm run bench`: every figure against its baseline, measured in this one run, then
 * bench/results/latest.json and latest.md. `--quick` shrinks everything (smoke test); `--only=a,b` runs
 * some figures; `--out=dir` writes elsewhere than bench/results.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { REPO_ROOT } from './lib/procs.js';
import type { BenchContext, FigureResult } from './lib/types.js';
import { renderMarkdown } from './lib/render.js';
import { queryOverhead } from './figures/query.js';
import { upstreamEfficiency } from './figures/upstream.js';
import { webhookIngest } from './figures/webhook.js';
import { fanOut } from './figures/fanout.js';
import { scaleOut } from './figures/scaleout.js';
import { overload } from './figures/overload.js';
import { fairShare } from './figures/fairshare.js';
import { profile } from './figures/profile.js';

/** The figures in the order they run; the name is what --only takes. */
const FIGURES: Array<[string, (ctx: BenchContext) => Promise<FigureResult>]> = [
  ['query', queryOverhead],
  ['upstream', upstreamEfficiency],
  ['webhook', webhookIngest],
  ['fanout', fanOut],
  ['scaleout', scaleOut],
  ['overload', overload],
  ['fairshare', fairShare],
  ['profile', profile],
];

/** Keys latest.json always has (docs/benchmarks.md), null when their figure did not run. */
const REQUIRED_KEYS = [
  'queryThroughputRatio',
  'queryVsApollo',
  'queryVsApolloRedis',
  'queryP99Ms',
  'baselineP99Ms',
  'upstreamPer1000Cold',
  'upstreamPer1000Warm',
  'webhookAckP99Ms',
  'webhookAckP99RatioRedis',
  'webhookRedisCommandsPerCallback',
  'fanoutP50Ms10k',
  'fanoutP99Ms10k',
  'fanoutP99VsRaw',
  'fanoutRateRatio',
  'bytesPerSubscription',
  'overloadUpstreamPerMin',
  'overloadUpstream429s',
  'overloadDataRatio',
  'fairShareWarmOverheadRatio',
] as const;

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const only = args.find((a) => a.startsWith('--only='))?.slice('--only='.length).split(',');
  const outDir = args.find((a) => a.startsWith('--out='))?.slice('--out='.length) ?? join(REPO_ROOT, 'bench', 'results');
  const started = performance.now();
  const log = (m: string) => console.log(`[bench ${((performance.now() - started) / 1000).toFixed(0).padStart(3)} s] ${m}`);
  const ctx: BenchContext = { quick, log };

  const results: FigureResult[] = [];
  for (const [name, run] of FIGURES) {
    if (only && !only.includes(name)) continue;
    log(`${name}…`);
    const t0 = performance.now();
    try {
      const result = await run(ctx);
      results.push(result);
      log(`${name} done in ${((performance.now() - t0) / 1000).toFixed(1)} s${result.skipped ? ` (skipped: ${result.skipped})` : ''}`);
    } catch (err) {
      log(`${name} FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      results.push({ id: name, title: name, metrics: {}, targets: [], markdown: [], details: {}, skipped: `failed: ${err instanceof Error ? err.message : String(err)}` });
    }
  }

  const metrics: Record<string, number | null> = Object.fromEntries(REQUIRED_KEYS.map((k) => [k, null]));
  for (const r of results) Object.assign(metrics, r.metrics);
  const report = {
    date: new Date().toISOString(),
    quick,
    machine: { cores: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', node: process.version, platform: `${process.platform} ${process.arch}` },
    durationS: Math.round((performance.now() - started) / 1000),
    ...metrics,
    targets: results.flatMap((r) => r.targets.map((t) => ({ figure: r.id, ...t }))),
    figures: Object.fromEntries(results.map((r) => [r.id, { title: r.title, skipped: r.skipped ?? null, metrics: r.metrics, details: r.details }])),
  };
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(outDir, 'latest.md'), renderMarkdown(report, results));
  log(`wrote ${join(outDir, 'latest.json')} and latest.md`);
  // Sockets and timers of finished figures must not keep the run alive.
  process.exit(0);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
