/**
 * The hot paths under the V8 CPU profiler (what `node --cpu-prof` records, but started over the inspector
 * after warm-up so start-up and module loading are not sampled): a gateway child per path, driven the way
 * its figure drives it. Summarised as self time by function and by package. Profiling slows the process,
 * so these runs are separate from the measured figures.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { callStatusUrl, callbackBody, gatewayEnv, gql, newSid, seedFinishedCalls, startGateway, startSimulator } from '../lib/env.js';
import { summariseProfile, type ProfileSummary } from '../lib/cpuprofile.js';
import { httpLoad, pacedLoad } from '../lib/http-load.js';
import { LOG_DIR } from '../lib/procs.js';
import { openFleet } from '../lib/ws-fleet.js';
import { table, type BenchContext, type FigureResult } from '../lib/types.js';
import { CALL_EVENTS, gatewayTrigger, measureFanout } from './fanout.js';
import { CALL_QUERY } from './query.js';

type Gw = { url: string; wsUrl: string; accountSid: string };
/** Runs the workload twice: once to warm up (JIT, caches), once under the profiler. */
type Driver = (gateway: Gw, sid: string, phase: 'warm-up' | 'profiled') => Promise<string>;

async function profiled(name: string, drive: Driver): Promise<ProfileSummary & { workload: string }> {
  mkdirSync(LOG_DIR, { recursive: true });
  const path = join(LOG_DIR, `profile-${name}.cpuprofile`);
  rmSync(path, { force: true });
  const sim = await startSimulator();
  const [sid] = seedFinishedCalls(sim, 1);
  const gateway = await startGateway(`gateway-profile-${name}`, gatewayEnv(sim));
  let workload: string;
  try {
    await drive(gateway.info, sid!, 'warm-up');
    await gateway.call('profileStart', { intervalUs: 200 });
    workload = await drive(gateway.info, sid!, 'profiled');
    await gateway.call('profileStop', { path });
  } finally {
    await gateway.stop();
    await sim.stop();
  }
  return { ...summariseProfile(path), workload };
}

/** What a native function name stands for, where it is not obvious. */
const NATIVE_MEANING: Record<string, string> = {
  writev: 'writev — socket and log writes',
  writeString: 'writeString — socket and log writes',
  '(garbage collector)': 'garbage collection',
};

/** The three most expensive functions, leaving out V8's "(program)" and the microtask pump. */
function topThree(p: ProfileSummary): string {
  return p.topFunctions
    .filter((f) => f.name !== '(program)' && f.name !== 'runMicrotasks')
    .slice(0, 3)
    .map((f) => `${NATIVE_MEANING[f.name] ?? `\`${f.name}\``} (${(f.share * 100).toFixed(0)}%)`)
    .join(', ');
}

export async function profile(ctx: BenchContext): Promise<FigureResult> {
  const seconds = ctx.quick ? 1 : 6;
  const query = await profiled('query', async (gw, sid, phase) => {
    if (phase === 'warm-up') await gql(gw.url, CALL_QUERY, { sid });
    const body = JSON.stringify({ query: CALL_QUERY, variables: { sid }, operationName: 'Call' });
    const r = await httpLoad({ url: `${gw.url}/graphql`, headers: { 'content-type': 'application/json' }, body, connections: 20, durationS: phase === 'warm-up' ? 2 : seconds });
    return `warm \`call(sid)\`, 20 connections, ${seconds} s (${r.requests} requests)`;
  });
  ctx.log(`  query path profiled: ${query.topModules.slice(0, 3).map((m) => `${m.name} ${(m.share * 100).toFixed(0)}%`).join(', ')}`);
  const webhook = await profiled('webhook', async (gw, _sid, phase) => {
    const r = await pacedLoad({ url: callStatusUrl(gw.url, gw.accountSid), headers: { 'content-type': 'application/x-www-form-urlencoded' }, bodyFor: () => callbackBody(newSid()), durationS: phase === 'warm-up' ? 2 : seconds, rate: 500 });
    return `call-status callbacks at 500/s, ${seconds} s (${r.requests} callbacks)`;
  });
  ctx.log(`  webhook path profiled: ${webhook.topModules.slice(0, 3).map((m) => `${m.name} ${(m.share * 100).toFixed(0)}%`).join(', ')}`);
  const subscribers = ctx.quick ? 100 : Number(process.env.BENCH_PROFILE_SUBSCRIBERS ?? 1000);
  let fleet: Awaited<ReturnType<typeof openFleet>> | undefined;
  const fanout = await profiled('fanout', async (gw, _sid, phase) => {
    // One fleet for both phases: connecting is not the path being profiled.
    fleet ??= await openFleet({ urls: [gw.wsUrl], size: subscribers, protocol: 'graphql-ws', query: CALL_EVENTS });
    if (phase === 'warm-up') {
      await measureFanout(fleet, gatewayTrigger(gw.url, gw.accountSid), 5, 5);
      return '';
    }
    try {
      const events = ctx.quick ? 3 : 30;
      await measureFanout(fleet, gatewayTrigger(gw.url, gw.accountSid), events, 10);
      return `${subscribers} callEvents subscribers, ${events} single events and a burst of 10`;
    } finally {
      await fleet.close();
    }
  });
  ctx.log(`  fan-out path profiled: ${fanout.topModules.slice(0, 3).map((m) => `${m.name} ${(m.share * 100).toFixed(0)}%`).join(', ')}`);

  const section = (title: string, p: ProfileSummary & { workload: string }) => [
    `### ${title}`,
    '',
    `Workload: ${p.workload}; ${p.busyMs} ms of busy samples. **Top three costs** (functions by self time): ${topThree(p)}; by package: ${p.topModules
      .slice(0, 3)
      .map((m) => `${m.name} (${(m.share * 100).toFixed(0)}%)`)
      .join(', ')}.`,
    '',
    ...table(['by package / module', 'self ms', 'share'], p.topModules.slice(0, 8).map((m) => [m.name, m.selfMs, `${(m.share * 100).toFixed(1)}%`])),
    '',
    ...table(['by function', 'self ms', 'share'], p.topFunctions.slice(0, 12).map((f) => [`\`${f.name}\``, f.selfMs, `${(f.share * 100).toFixed(1)}%`])),
    '',
  ];
  return {
    id: 'profile',
    title: 'Profile of the hot paths (node --cpu-prof, self time)',
    metrics: {},
    targets: [],
    markdown: [
      'Separate runs of a gateway child, each warmed up and then sampled by the V8 CPU profiler (200 µs interval; the `--cpu-prof` profiler, started over the inspector so start-up is excluded), driven as its figure drives it. Shares are of non-idle time of the gateway process. `.cpuprofile` files: bench/results/logs/ (not committed; open in Chrome DevTools).',
      '',
      ...section('Query path (query figure)', query),
      ...section('Webhook ingest (webhook figure)', webhook),
      ...section('Fan-out (fan-out figure)', fanout),
    ],
    details: { query, webhook, fanout },
  };
}
