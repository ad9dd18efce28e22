/** Redis for tests: the machine's server at 127.0.0.1:6379, each test file in its own key prefix. */
import { Socket } from 'node:net';
import { Redis } from 'ioredis';

export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** True when something answers PING at TEST_REDIS_URL within a second. */
export function redisAvailable(url = TEST_REDIS_URL): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.connect(Number(port || 6379), hostname, () => socket.write('PING\r\n'));
    socket.once('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

/**
 * For `describe.skipIf(!(await redisOrSkip()))`: true when Redis is there; when it is not, true anyway
 * under REQUIRE_REDIS=1 (so the tests run and fail), false otherwise with a message.
 */
export async function redisOrSkip(): Promise<boolean> {
  if (await redisAvailable()) return true;
  if (process.env.REQUIRE_REDIS === '1') return true;
  console.warn('[tests] skipping Redis tests: no Redis at ' + TEST_REDIS_URL);
  return false;
}

/** A unique key prefix per test file/run so parallel files never collide. */
export function testPrefix(name: string): string {
  return `egg-test:${name}:${process.pid}:${Date.now().toString(36)}:`;
}

/** Removes a run's keys from the shared Redis (the event stream has no expiry of its own). */
export async function deleteKeys(prefix: string, url = TEST_REDIS_URL): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/** One command as MONITOR saw it: its arguments (the name lower-cased) and whether a Lua script ran it. */
export interface MonitoredCommand {
  command: string;
  args: string[];
  fromScript: boolean;
}

/**
 * Starts MONITOR on a connection of its own to `url` (a private redis-server: MONITOR slows a shared one
 * down for everyone). stop() answers every command seen since, its own marker excluded.
 */
export async function monitorCommands(url: string): Promise<{ stop(): Promise<MonitoredCommand[]> }> {
  const conn = new Redis(url);
  const seen: MonitoredCommand[] = [];
  const monitor = await conn.monitor();
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    seen.push({ command: String(args[0]).toLowerCase(), args: args.slice(1).map(String), fromScript: source === 'lua' });
  });
  return {
    async stop() {
      // A marker command: once it shows up, everything before it has been seen.
      const marker = `monitor-marker-${Date.now()}`;
      const probe = new Redis(url);
      try {
        await probe.echo(marker);
      } finally {
        probe.disconnect();
      }
      const isMarker = (c: MonitoredCommand) => c.command === 'echo' && c.args[0] === marker;
      const deadline = Date.now() + 5_000;
      while (!seen.some(isMarker) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      monitor.disconnect();
      conn.disconnect();
      if (!seen.some(isMarker)) throw new Error('MONITOR did not see its marker within 5 s');
      return seen.slice(0, seen.findIndex(isMarker));
    },
  };
}
