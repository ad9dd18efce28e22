/**
 * A private redis-server for a figure (a free port, no persistence, removed afterwards), so what the
 * figure counts on Redis is its own, and a way to count the commands clients send it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

export interface PrivateRedis {
  url: string;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Starts redis-server on a free port; rejects when it is not installed or does not answer. */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'egg-bench-redis-'));
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const failed = new Promise<never>((_, reject) => child.once('error', reject));
  const url = `redis://127.0.0.1:${port}`;
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  // Refusals while the server starts are expected and read from connect()'s rejection below.
  probe.on('error', () => {});
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await Promise.race([probe.connect().then(() => probe.ping()), failed]);
      break;
    } catch (err) {
      probe.disconnect();
      if (Date.now() > deadline || child.exitCode !== null) {
        child.kill('SIGKILL');
        rmSync(dir, { recursive: true, force: true });
        throw err;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  probe.disconnect();
  return {
    url,
    async stop() {
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface CommandCount {
  /** Commands clients sent (round trips), by name. */
  sent: Record<string, number>;
  sentTotal: number;
  /** Commands Lua scripts ran on Redis's side (no round trip). */
  inScripts: number;
}

/**
 * Counts what Redis runs while `work` runs: MONITOR tells the commands clients sent from those a script
 * ran ("lua"), and INFO commandstats (Redis's own count) must agree with it. `ignore` names commands that
 * are not the work's (a blocking reader, this counter's own).
 */
export async function countCommands(url: string, work: () => Promise<void>, ignore: ReadonlySet<string>): Promise<CommandCount> {
  const admin = new Redis(url);
  const conn = new Redis(url);
  try {
    await admin.config('RESETSTAT');
    const seen: Array<{ command: string; lua: boolean }> = [];
    const monitor = await conn.monitor();
    monitor.on('monitor', (_time: string, args: string[], source: string) => seen.push({ command: String(args[0]).toLowerCase(), lua: source === 'lua' }));
    await work();
    await admin.echo('count-commands-end');
    const deadline = Date.now() + 5_000;
    while (!seen.some((s) => s.command === 'echo') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    monitor.disconnect();
    const info = await admin.info('commandstats');
    let statsTotal = 0;
    for (const m of info.matchAll(/^cmdstat_([^:|]+)[^:]*:calls=(\d+)/gm)) if (!ignore.has(m[1]!) && m[1] !== 'echo' && m[1] !== 'monitor') statsTotal += Number(m[2]);
    const counted = seen.filter((s) => !ignore.has(s.command) && s.command !== 'echo');
    if (counted.length !== statsTotal) throw new Error(`MONITOR saw ${counted.length} commands, INFO commandstats counted ${statsTotal}`);
    const sent: Record<string, number> = {};
    for (const s of counted) if (!s.lua) sent[s.command] = (sent[s.command] ?? 0) + 1;
    const sentTotal = Object.values(sent).reduce((a, b) => a + b, 0);
    return { sent, sentTotal, inScripts: counted.length - sentTotal };
  } finally {
    admin.disconnect();
    conn.disconnect();
  }
}
