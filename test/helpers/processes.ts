/**
 * Real processes for scale-out tests: gateway replicas (`node --import tsx src/main.ts`) and private
 * redis-server instances. Every child is registered so one `stopAllProcesses()` in afterAll (and a last
 * synchronous kill on exit) leaves nothing running, and every child's output is captured for diagnosis.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** The repository root (this file is test/helpers/processes.ts). */
export const REPO_ROOT = resolve(import.meta.dirname, '..', '..');

const live = new Set<ChildProcess>();
process.once('exit', () => {
  // Last resort when a test run dies without its afterAll: no orphan gateways or redis-servers.
  for (const child of live) child.kill('SIGKILL');
});

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A spawned child with its captured output. */
export interface ManagedProcess {
  name: string;
  child: ChildProcess;
  pid: number;
  /** stdout + stderr so far. */
  output(): string;
  /** Settles when the process has exited. */
  exited: Promise<ExitInfo>;
  /** True until the process has exited. */
  running(): boolean;
  /** Sends `signal` (default SIGTERM) and waits for the exit; SIGKILL after `graceMs`. Safe when already gone. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<ExitInfo>;
}

function manage(name: string, child: ChildProcess): ManagedProcess {
  if (child.pid === undefined) throw new Error(`${name}: could not spawn`);
  live.add(child);
  let text = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (text += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (text += d));
  let done = false;
  const exited = new Promise<ExitInfo>((resolveExit) => {
    child.once('exit', (code, signal) => {
      done = true;
      live.delete(child);
      resolveExit({ code, signal });
    });
  });
  return {
    name,
    child,
    pid: child.pid,
    output: () => text,
    exited,
    running: () => !done,
    async stop(signal = 'SIGTERM', graceMs = 5000) {
      if (done) return exited;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** Stops every child this helper started (SIGKILL after a short grace). */
export async function stopAllProcesses(): Promise<void> {
  await Promise.all([...live].map((child) => {
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    return gone.finally(() => clearTimeout(timer));
  }));
}

/** A port nothing listens on right now (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

/** Resolves when `check` is true, polling every `everyMs`; rejects with `what` after `timeoutMs`. */
export async function waitUntil(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000, everyMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

// ─────────────────────────────── gateways ───────────────────────────────

export interface GatewayProcess extends ManagedProcess {
  /** http://127.0.0.1:port */
  url: string;
  /** ws://127.0.0.1:port/graphql */
  wsUrl: string;
  /** Every JSON log line so far, parsed (non-JSON lines are skipped). */
  logs(): Array<Record<string, unknown>>;
}

/** Variables of the parent that must not leak into a replica (the test gives the replica's own). */
const GATEWAY_VARS = /^(PORT|HOST|PUBLIC_URL|EXOTEL_|WEBHOOK_SECRET|GATEWAY_|REDIS_|LIVE_|RECONCILE_|EVENT_|LOG_LEVEL|NODE_ENV|SIMULATOR_|MAX_|WS_)/;

/**
 * Spawns one gateway replica with `env` (over a clean copy of the parent's environment) and resolves
 * once it logs 'gateway listening'. Rejects with its output when it exits or does not listen in time.
 */
export async function spawnGateway(name: string, env: Record<string, string>, options: { startTimeoutMs?: number } = {}): Promise<GatewayProcess> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !GATEWAY_VARS.test(k)));
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: REPO_ROOT,
    env: { ...base, PORT: '0', HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proc = manage(name, child);
  const logs = () =>
    proc
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      });

  const timeoutMs = options.startTimeoutMs ?? 30_000;
  const url = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      void proc.stop('SIGKILL');
      reject(new Error(`${name} did not log 'gateway listening' within ${timeoutMs} ms; output:\n${proc.output()}`));
    }, timeoutMs);
    const onData = () => {
      const line = logs().find((l) => l.msg === 'gateway listening' && typeof l.url === 'string');
      if (line) {
        cleanup();
        resolveUrl(line.url as string);
      }
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
    };
    child.stdout?.on('data', onData);
    void proc.exited.then((info) => {
      cleanup();
      reject(new Error(`${name} exited (${info.code ?? info.signal}) before listening; output:\n${proc.output()}`));
    });
  });
  return Object.assign(proc, { url, wsUrl: `${url.replace(/^http/, 'ws')}/graphql`, logs });
}

// ─────────────────────────────── redis ───────────────────────────────

export interface RedisProcess {
  port: number;
  url: string;
  /** The current redis-server process (a new one after each start()). */
  current(): ManagedProcess | undefined;
  /** Starts redis-server on the same port and data directory; resolves once it answers PING. */
  start(): Promise<void>;
  /** Stops it with `signal` (SIGKILL = crash) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** SIGSTOP: its sockets stay open and nothing answers. */
  stall(): void;
  /** SIGCONT after stall(); harmless when it is not stalled or not running. */
  resume(): void;
  /** Stops it for good and removes its data directory. */
  dispose(): Promise<void>;
}

/** True when a Redis at `port` answers PING. */
export function redisPing(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolvePing) => {
    const socket = new Socket();
    const done = (ok: boolean) => {
      socket.destroy();
      resolvePing(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.connect(port, host, () => socket.write('PING\r\n'));
    socket.once('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

/**
 * A private redis-server on a free port, for tests that stop and restart Redis (never the machine's
 * shared one). With `durable` (default) it writes an append-only file fsynced on every write, the way a
 * production Redis that must not lose acknowledged webhooks is run, so a SIGKILL loses nothing Redis
 * acknowledged; without it a restart starts empty.
 */
export async function startPrivateRedis(options: { durable?: boolean } = {}): Promise<RedisProcess> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'egg-redis-'));
  const durable = options.durable ?? true;
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning'];
  args.push(...(durable ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']));
  let proc: ManagedProcess | undefined;
  let starts = 0;
  const handle: RedisProcess = {
    port,
    url: `redis://127.0.0.1:${port}`,
    current: () => proc,
    async start() {
      if (proc?.running()) throw new Error(`redis on ${port} is already running`);
      starts += 1;
      proc = manage(`redis:${port}#${starts}`, spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] }));
      const p = proc;
      await waitUntil(async () => {
        if (!p.running()) throw new Error(`redis-server on ${port} exited at start:\n${p.output()}`);
        return redisPing(port);
      }, `redis-server on ${port}`, 10_000, 20);
    },
    async stop(signal = 'SIGTERM') {
      await proc?.stop(signal);
    },
    stall() {
      process.kill(proc!.pid, 'SIGSTOP');
    },
    resume() {
      if (proc?.running()) process.kill(proc.pid, 'SIGCONT');
    },
    async dispose() {
      await proc?.stop('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await handle.start();
  return handle;
}
