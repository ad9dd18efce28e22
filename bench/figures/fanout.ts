/**
 * Fan-out, and memory per idle subscription, measured on the same fleets.
 *
 * For each fleet size: N sockets each with one `callEvents` subscription on the gateway (graphql-ws
 * protocol), then N raw `ws` sockets on a baseline that serialises the same `next` frame once and sends it
 * to all, and N subscriptions on graphql-ws's own server with nothing in front of it (one result object
 * per event handed to every subscriber; graphql-ws serialises and writes each frame): the floor of any
 * server that lets graphql-ws send its frames. Latency: one callback at a time (callback POST → each subscriber's frame), all N frames awaited
 * before the next. Rate: a burst of callbacks posted at once, frames received per second until the last.
 * Memory: heap and RSS of the server process after full GCs, before the fleet and with it subscribed.
 * Server CPU per frame: the server process's user + system time over the single events, divided by the
 * frames they delivered. It is what a frame costs the server whatever else the machine is doing, so it is
 * far steadier than a latency tail on a shared two-core machine, where the bench's own 10,000 client
 * sockets compete with the server.
 */
import { performance } from 'node:perf_hooks';
import { callStatusUrl, callbackBody, gatewayEnv, newSid, startBaseline, startGateway, startSimulator } from '../lib/env.js';
import type { Worker } from '../lib/procs.js';
import { round, summarise, type Summary } from '../lib/stats.js';
import { awaitFrames, openFleet, type Fleet } from '../lib/ws-fleet.js';
import { ms, n, pct, table, type BenchContext, type FigureResult } from '../lib/types.js';
import type { MemorySample } from '../workers/ipc.js';

export const CALL_EVENTS = 'subscription { callEvents { id callSid status at source } }';

/** Posts one event into a server: a callback to the gateway, a broadcast request to the raw baseline. */
export type Trigger = (callSid: string) => Promise<void>;

export interface FanoutRun {
  subscribers: number;
  latencyMs: Summary;
  /** Frames per second over a burst. */
  framesPerSecond: number;
  missing: number;
  events: number;
  burst: number;
  /** Server user + system CPU per delivered frame over the single events, µs (when `cpu` was given). */
  cpuUsPerFrame?: number;
}

/** The server's CPU time so far (process.cpuUsage() of the server process), µs. */
export type CpuClock = () => Promise<{ user: number; system: number }>;

export function gatewayTrigger(baseUrl: string, accountSid: string): Trigger {
  const url = callStatusUrl(baseUrl, accountSid);
  return async (callSid) => {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: callbackBody(callSid) });
    await res.text();
    if (res.status !== 200) throw new Error(`callback answered ${res.status}`);
  };
}

export function rawTrigger(baseUrl: string): Trigger {
  return async (callSid) => {
    const res = await fetch(`${baseUrl}/broadcast?callSid=${callSid}`, { method: 'POST', body: '' });
    await res.text();
  };
}

/** Latency over `events` single events, then frames/s over a burst of `burst` events. */
export async function measureFanout(fleet: Fleet, trigger: Trigger, events: number, burst: number, timeoutMs = 60_000, cpu?: CpuClock): Promise<FanoutRun> {
  // Warm-up event: proves every subscription is live before anything is timed.
  {
    const sid = newSid();
    const wait = awaitFrames(fleet, [sid], fleet.size, () => 0, timeoutMs);
    await trigger(sid);
    const d = await wait;
    if (d.missing > 0) throw new Error(`${d.missing} of ${fleet.size} subscribers did not get the warm-up event`);
  }
  const latencies: number[] = [];
  let missing = 0;
  const cpuBefore = await cpu?.();
  for (let e = 0; e < events; e++) {
    const sid = newSid();
    let t0 = 0;
    const wait = awaitFrames(fleet, [sid], fleet.size, () => t0, timeoutMs);
    t0 = performance.now();
    await trigger(sid);
    const d = await wait;
    missing += d.missing;
    for (const v of d.latenciesMs) latencies.push(v);
    await new Promise((r) => setTimeout(r, 20));
  }
  const cpuAfter = await cpu?.();
  const cpuUsPerFrame = cpuBefore && cpuAfter && latencies.length > 0 ? round((cpuAfter.user + cpuAfter.system - cpuBefore.user - cpuBefore.system) / latencies.length, 1) : undefined;
  const sids = Array.from({ length: burst }, newSid);
  let t0 = 0;
  const wait = awaitFrames(fleet, sids, fleet.size * burst, () => t0, timeoutMs);
  t0 = performance.now();
  await Promise.all(sids.map((s) => trigger(s)));
  const d = await wait;
  missing += d.missing;
  const received = fleet.size * burst - d.missing;
  return { subscribers: fleet.size, latencyMs: summarise(latencies), framesPerSecond: Math.round(received / ((d.lastAt - t0) / 1000)), missing, events, burst, cpuUsPerFrame };
}

export interface MemoryGrowth {
  subscribers: number;
  heapBytesPerSubscriber: number;
  rssBytesPerSubscriber: number;
  before: MemorySample;
  after: MemorySample;
}

const growth = (count: number, before: MemorySample, after: MemorySample): MemoryGrowth => ({
  subscribers: count,
  heapBytesPerSubscriber: Math.round((after.heapUsed - before.heapUsed) / count),
  rssBytesPerSubscriber: Math.round((after.rss - before.rss) / count),
  before,
  after,
});

interface SideResult {
  run: FanoutRun;
  memory: MemoryGrowth;
}

interface Row {
  size: number;
  gw: SideResult;
  raw: SideResult;
  floor: SideResult;
}

async function side(ctx: BenchContext, what: string, server: Worker<{ wsUrl: string }>, protocol: 'graphql-ws' | 'raw', size: number, trigger: Trigger, events: number, burst: number): Promise<SideResult> {
  const before = await server.call<MemorySample>('memory');
  const t = performance.now();
  const fleet = await openFleet({ urls: [server.info.wsUrl], size, protocol, query: CALL_EVENTS });
  ctx.log(`  ${what}: ${n(size)} sockets open in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  try {
    const run = await measureFanout(fleet, trigger, events, burst, undefined, () => server.call('cpu'));
    // After the warm-up and the measured events: what stays is the subscriptions' own cost.
    const after = await server.call<MemorySample>('memory');
    ctx.log(`  ${what}: p50 ${run.latencyMs.p50} ms, p99 ${run.latencyMs.p99} ms, ${n(run.framesPerSecond)} frames/s, server CPU ${run.cpuUsPerFrame} µs/frame, missing ${run.missing}`);
    return { run, memory: growth(size, before, after) };
  } finally {
    await fleet.close();
  }
}

const cpuCell = (run: FanoutRun) => (run.cpuUsPerFrame === undefined ? '–' : `${run.cpuUsPerFrame} µs`);

export async function fanOut(ctx: BenchContext): Promise<FigureResult> {
  const sizes = ctx.quick ? [100, 300] : [1000, 10_000];
  const sim = await startSimulator();
  const gateway = await startGateway('gateway-fanout', gatewayEnv(sim), ['--expose-gc']);
  const raw = await startBaseline('ws-broadcast', {}, ['--expose-gc']);
  const floor = await startBaseline('graphql-ws-floor', {}, ['--expose-gc']);
  const rows: Row[] = [];
  try {
    const gwTrigger = gatewayTrigger(gateway.info.url, gateway.info.accountSid);
    const rawTrig = rawTrigger(raw.info.url);
    const floorTrig = rawTrigger(floor.info.url);
    for (const size of sizes) {
      const events = ctx.quick ? 3 : size >= 10_000 ? 15 : 30;
      const burst = ctx.quick ? 3 : 10;
      const r = await side(ctx, `raw ws × ${size}`, raw, 'raw', size, rawTrig, events, burst);
      const g = await side(ctx, `gateway × ${size}`, gateway, 'graphql-ws', size, gwTrigger, events, burst);
      const f = await side(ctx, `graphql-ws floor × ${size}`, floor, 'graphql-ws', size, floorTrig, events, burst);
      rows.push({ size, gw: g, raw: r, floor: f });
    }
  } finally {
    await Promise.all([gateway.stop(), raw.stop(), floor.stop()]);
    await sim.stop();
  }

  const big = rows.at(-1)!;
  const rateRatio = round(big.gw.run.framesPerSecond / big.raw.run.framesPerSecond, 3);
  const p99VsRaw = round(big.gw.run.latencyMs.p99 / big.raw.run.latencyMs.p99, 3);
  const floorP99VsRaw = round(big.floor.run.latencyMs.p99 / big.raw.run.latencyMs.p99, 3);
  const bytesPerSub = big.gw.memory.rssBytesPerSubscriber;
  const cpuRatio = (a: SideResult, b: SideResult) => (a.run.cpuUsPerFrame && b.run.cpuUsPerFrame ? round(a.run.cpuUsPerFrame / b.run.cpuUsPerFrame, 3) : null);
  const heapPerSub = big.gw.memory.heapBytesPerSubscriber;
  const label = ctx.quick ? `${big.size}` : '10k';
  return {
    id: 'fanout',
    title: '4–5. Fan-out (callback → subscriber) and memory per idle subscription',
    metrics: {
      fanoutP50Ms10k: big.gw.run.latencyMs.p50,
      fanoutP99Ms10k: big.gw.run.latencyMs.p99,
      fanoutP50Ms1k: rows[0]!.gw.run.latencyMs.p50,
      fanoutP99Ms1k: rows[0]!.gw.run.latencyMs.p99,
      fanoutRawP99Ms10k: big.raw.run.latencyMs.p99,
      fanoutP99VsRaw: p99VsRaw,
      fanoutFloorP99Ms10k: big.floor.run.latencyMs.p99,
      fanoutFloorP99VsRaw: floorP99VsRaw,
      fanoutP99VsFloor: round(big.gw.run.latencyMs.p99 / big.floor.run.latencyMs.p99, 3),
      fanoutFramesPerSecond10k: big.gw.run.framesPerSecond,
      fanoutRawFramesPerSecond10k: big.raw.run.framesPerSecond,
      fanoutRateRatio: rateRatio,
      fanoutRateRatio1k: round(rows[0]!.gw.run.framesPerSecond / rows[0]!.raw.run.framesPerSecond, 3),
      bytesPerSubscription: bytesPerSub,
      heapBytesPerSubscription: heapPerSub,
      rawWsBytesPerSocket: big.raw.memory.rssBytesPerSubscriber,
      fanoutCpuUsPerFrame10k: big.gw.run.cpuUsPerFrame ?? null,
      fanoutRawCpuUsPerFrame10k: big.raw.run.cpuUsPerFrame ?? null,
      fanoutFloorCpuUsPerFrame10k: big.floor.run.cpuUsPerFrame ?? null,
      fanoutCpuVsRaw: cpuRatio(big.gw, big.raw),
      fanoutCpuVsFloor: cpuRatio(big.gw, big.floor),
      fanoutFloorCpuVsRaw: cpuRatio(big.floor, big.raw),
    },
    targets: [
      { what: `fan-out p99 at ${label} subscribers`, target: '≤ 50 ms', measured: ms(big.gw.run.latencyMs.p99), met: big.gw.run.latencyMs.p99 <= 50 && big.gw.run.missing === 0 },
      { what: `fan-out p99 vs raw ws at ${label}, same run`, target: '≤ 1.15×', measured: `${p99VsRaw}×`, met: p99VsRaw <= 1.15 && big.gw.run.missing === 0 },
      { what: `fan-out frames/s vs raw ws at ${label}`, target: '≥ 50%', measured: pct(rateRatio), met: rateRatio >= 0.5 },
      { what: 'memory per idle subscription (RSS growth, socket included)', target: '≤ 16 KB', measured: `${(bytesPerSub / 1024).toFixed(1)} KB (heap ${(heapPerSub / 1024).toFixed(1)} KB)`, met: bytesPerSub <= 16 * 1024 && heapPerSub <= 16 * 1024 },
    ],
    markdown: [
      ...table(
        ['subscribers', 'server', 'p50', 'p90', 'p99', 'max', 'frames/s (burst)', 'server CPU / frame', 'missed', 'heap / subscriber', 'RSS / subscriber'],
        rows.flatMap(({ size, gw, raw, floor }) => [
          [n(size), 'raw `ws`, frame serialised once', ms(raw.run.latencyMs.p50), ms(raw.run.latencyMs.p90), ms(raw.run.latencyMs.p99), ms(raw.run.latencyMs.max), n(raw.run.framesPerSecond), cpuCell(raw.run), raw.run.missing, `${n(raw.memory.heapBytesPerSubscriber)} B`, `${n(raw.memory.rssBytesPerSubscriber)} B`],
          [n(size), 'graphql-ws floor (one result object per event, graphql-ws writes each frame)', ms(floor.run.latencyMs.p50), ms(floor.run.latencyMs.p90), ms(floor.run.latencyMs.p99), ms(floor.run.latencyMs.max), n(floor.run.framesPerSecond), cpuCell(floor.run), floor.run.missing, `${n(floor.memory.heapBytesPerSubscriber)} B`, `${n(floor.memory.rssBytesPerSubscriber)} B`],
          [n(size), 'gateway `callEvents` (graphql-ws)', ms(gw.run.latencyMs.p50), ms(gw.run.latencyMs.p90), ms(gw.run.latencyMs.p99), ms(gw.run.latencyMs.max), n(gw.run.framesPerSecond), cpuCell(gw.run), gw.run.missing, `${n(gw.memory.heapBytesPerSubscriber)} B`, `${n(gw.memory.rssBytesPerSubscriber)} B`],
        ]),
      ),
      '',
      `One socket per subscriber (no multiplexing), all sockets in the bench process, each server in its own process. ` +
        `Latency: ${rows.map((r) => `${r.gw.run.events} events at ${n(r.size)}`).join(', ')}, one at a time, from the callback POST to each frame's arrival. ` +
        `p99 vs raw ws at ${n(big.size)}: **${p99VsRaw}×**; the graphql-ws floor's own p99 vs raw ws: ${floorP99VsRaw}×. Server CPU per frame at ${n(big.size)} (user + system over the single events): gateway ${cpuRatio(big.gw, big.raw) ?? '–'}× raw ws and ${cpuRatio(big.gw, big.floor) ?? '–'}× the graphql-ws floor, which is itself ${cpuRatio(big.floor, big.raw) ?? '–'}× raw ws. Rate: ${big.gw.run.burst} callbacks posted at once; frames/s ratio at ${n(big.size)}: **${pct(rateRatio)}**, at ${n(rows[0]!.size)}: ${pct(rows[0]!.gw.run.framesPerSecond / rows[0]!.raw.run.framesPerSecond)}. ` +
        'Memory: server process after two full GCs, before the fleet connected and with it connected, subscribed and past the events (socket included, as a subscriber costs one).',
    ],
    details: { rows },
  };
}
