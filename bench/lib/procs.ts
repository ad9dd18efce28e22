/**
 * Servers under test run in child processes (fork + IPC), so the load generator in the bench process
 * never shares an event loop with them. Each worker is bundled once per run with esbuild (node_modules
 * left external) and run by plain `node`, as production runs `node dist/main.js`: under tsx every
 * runtime `require` would go through its resolver hooks, a cost production does not pay. A worker announces itself with `{ type: 'ready', info }` and then
 * answers requests `{ id, op, args }` with `{ id, result }` or `{ id, error }` (see workers/ipc.ts).
 * Every child is tracked and killed when the bench process exits, however it exits.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { build } from 'esbuild';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The repository root (this file is bench/lib/procs.ts). */
export const REPO_ROOT = resolve(import.meta.dirname, '..', '..');
/** Child logs go here (gitignored by name: bench/results/logs/). */
export const LOG_DIR = join(REPO_ROOT, 'bench', 'results', 'logs');

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    for (const child of children) child.kill('SIGKILL');
    process.exit(130);
  });
}

/** A running worker: its ready info, a request channel, and stop(). */
export interface Worker<Info> {
  name: string;
  pid: number;
  info: Info;
  /** Sends `op` to the worker and resolves with its answer. */
  call<T = unknown>(op: string, args?: unknown): Promise<T>;
  /** Asks the worker to stop cleanly (so --cpu-prof files get written); SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

export interface SpawnOptions {
  /** Extra environment on top of the bench process's. */
  env?: Record<string, string>;
  /** Extra node flags, e.g. --expose-gc, --cpu-prof. */
  nodeFlags?: string[];
  /** Arguments for the worker script. */
  args?: string[];
  startTimeoutMs?: number;
}

const bundles = new Map<string, Promise<string>>();

/** bench/workers/`script` bundled to plain ESM under LOG_DIR/build (once per run). */
function bundle(script: string): Promise<string> {
  let out = bundles.get(script);
  if (!out) {
    const outfile = join(LOG_DIR, 'build', script.replace(/\.ts$/, '.mjs'));
    out = build({
      entryPoints: [join(REPO_ROOT, 'bench', 'workers', script)],
      outfile,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      sourcemap: 'linked',
      logLevel: 'error',
    }).then(() => outfile);
    bundles.set(script, out);
  }
  return out;
}

/** Forks bench/workers/`script` (bundled, plain node) and resolves once it reported ready. */
export async function spawnWorker<Info>(name: string, script: string, options: SpawnOptions = {}): Promise<Worker<Info>> {
  mkdirSync(LOG_DIR, { recursive: true });
  const entry = await bundle(script);
  const logFd = openSync(join(LOG_DIR, `${name}.log`), 'w');
  const child = fork(entry, options.args ?? [], {
    cwd: REPO_ROOT,
    execArgv: ['--enable-source-maps', ...(options.nodeFlags ?? [])],
    env: { ...process.env, ...options.env },
    stdio: ['ignore', logFd, logFd, 'ipc'],
  });
  closeSync(logFd);
  children.add(child);
  const exited = new Promise<void>((r) => child.once('exit', () => (children.delete(child), r())));

  let nextId = 1;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  child.on('message', (msg: { id?: number; result?: unknown; error?: string }) => {
    if (msg.id === undefined) return;
    const p = pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id);
    if (msg.error !== undefined) p.reject(new Error(`${name}: ${msg.error}`));
    else p.resolve(msg.result);
  });
  void exited.then(() => {
    for (const p of pending.values()) p.reject(new Error(`${name} exited`));
    pending.clear();
  });

  const info = await new Promise<Info>((resolveReady, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start within ${options.startTimeoutMs ?? 60_000} ms (see ${LOG_DIR}/${name}.log)`)), options.startTimeoutMs ?? 60_000);
    const onMessage = (msg: { type?: string; info?: Info }) => {
      if (msg.type !== 'ready') return;
      clearTimeout(timer);
      child.off('message', onMessage);
      resolveReady(msg.info as Info);
    };
    child.on('message', onMessage);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`${name} exited before it was ready (see ${LOG_DIR}/${name}.log)`));
    });
  });

  return {
    name,
    pid: child.pid!,
    info,
    call<T>(op: string, args?: unknown) {
      return new Promise<T>((resolveCall, reject) => {
        const id = nextId++;
        pending.set(id, { resolve: resolveCall as (v: unknown) => void, reject });
        child.send({ id, op, args });
      });
    },
    async stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.send({ id: 0, op: 'stop' });
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
