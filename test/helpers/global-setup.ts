/**
 * Runs once before all test files: makes sure Redis is there when it is required (CI), so tests that
 * need it fail loudly rather than skip.
 */
import { redisAvailable } from './redis.js';

export default async function setup(): Promise<void> {
  const ok = await redisAvailable();
  if (!ok && process.env.REQUIRE_REDIS === '1') {
    throw new Error('REQUIRE_REDIS=1 but Redis is not reachable at 127.0.0.1:6379 (start it: redis-server --daemonize yes --port 6379 --save "" --appendonly no)');
  }
  if (!ok) console.warn('[tests] Redis not reachable at 127.0.0.1:6379: Redis tests will skip (set REQUIRE_REDIS=1 to make them fail).');
}
