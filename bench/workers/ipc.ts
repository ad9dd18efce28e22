/**
 * The worker side of bench/lib/procs.ts: report ready, answer requests by op name, stop on 'stop'.
 * Every worker answers `memory` (heap and RSS after two full GCs when --expose-gc is on), `cpu` (its
 * process.cpuUsage(), µs) and `profileStart` / `profileStop` (the V8 CPU profiler over the inspector,
 * written as a .cpuprofile).
 */

/** Heap and RSS of this process, bytes. */
export interface MemorySample {
  heapUsed: number;
  rss: number;
  external: number;
  arrayBuffers: number;
  /** False when the process was started without --expose-gc (numbers then include garbage). */
  collected: boolean;
}

import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';

type Handler = (args: unknown) => unknown;

let session: Session | undefined;

/** Starts the V8 CPU profiler in this process (the workload only: start-up is not sampled). */
async function profileStart(args: unknown): Promise<void> {
  session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: (args as { intervalUs?: number })?.intervalUs ?? 200 });
  await session.post('Profiler.start');
}

/** Stops the profiler and writes the .cpuprofile to `args.path`. */
async function profileStop(args: unknown): Promise<string> {
  if (!session) throw new Error('profiler not started');
  const { profile } = await session.post('Profiler.stop');
  session.disconnect();
  session = undefined;
  const path = (args as { path: string }).path;
  writeFileSync(path, JSON.stringify(profile));
  return path;
}

/** Memory after collecting garbage, so growth measures what is retained. */
export async function memorySample(): Promise<MemorySample> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) {
    // Two passes with a turn between them: weak references and finalizers release on the second.
    gc();
    await new Promise((r) => setImmediate(r));
    gc();
  }
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, rss: m.rss, external: m.external, arrayBuffers: m.arrayBuffers, collected: Boolean(gc) };
}

/** Serves `handlers` over IPC; `stop` runs `onStop` and exits 0 (so --cpu-prof is written). */
export function serveIpc(info: unknown, handlers: Record<string, Handler>, onStop: () => Promise<void>): void {
  const all: Record<string, Handler> = { memory: () => memorySample(), cpu: () => process.cpuUsage(), profileStart, profileStop, ...handlers };
  process.on('message', async (msg: { id: number; op: string; args?: unknown }) => {
    if (msg.op === 'stop') {
      try {
        await onStop();
      } finally {
        process.exit(0);
      }
    }
    const handler = all[msg.op];
    try {
      if (!handler) throw new Error(`unknown op ${msg.op}`);
      const result = await handler(msg.args);
      process.send?.({ id: msg.id, result });
    } catch (err) {
      process.send?.({ id: msg.id, error: err instanceof Error ? err.message : String(err) });
    }
  });
  // The bench process going away must take its servers with it.
  process.on('disconnect', () => void onStop().finally(() => process.exit(0)));
  process.send?.({ type: 'ready', info });
}
