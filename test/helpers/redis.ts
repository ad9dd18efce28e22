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
