/**
 * The bound main.ts puts on shutdown (shutdownTimeoutMs in src/server.ts) and the wait for the last
 * attempt of Passthru requests still waiting for storage (incomingRetryStopMs in src/live/index.ts): both
 * follow the storage timeouts, so an operator who raises REDIS_COMMAND_TIMEOUT_MS does not get attempts
 * given up, or the process cut, before Redis was allowed to answer. test/scale/storage-outage-webhooks.test.ts
 * runs the wait against a Redis that answers late.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { incomingRetryStopMs } from '../../src/live/index.js';
import { SHUTDOWN, shutdownTimeoutMs } from '../../src/server.js';

const configs = [
  loadConfig({}),
  loadConfig({ REDIS_COMMAND_TIMEOUT_MS: '20000', REDIS_CACHE_TIMEOUT_MS: '2000' }),
  loadConfig({ REDIS_COMMAND_TIMEOUT_MS: '60000', REDIS_CACHE_TIMEOUT_MS: '60000' }),
];

describe('shutdown timings that follow the storage timeouts', () => {
  it('waits for a Passthru\'s last attempt longer than the attempt may take: a cache read, the atomic step and a cache write', () => {
    for (const config of configs) {
      expect(incomingRetryStopMs(config)).toBeGreaterThan(config.redisCacheTimeoutMs + config.redisCommandTimeoutMs + config.redisCacheTimeoutMs);
    }
  });

  it('lets stop() run longer than its waiting steps may take together, so none is cut short by main.ts', () => {
    for (const config of configs) {
      const storageClose = 2 * config.redisCommandTimeoutMs + config.redisCacheTimeoutMs;
      const steps = SHUTDOWN.wsCloseGraceMs + SHUTDOWN.httpDrainGraceMs + incomingRetryStopMs(config) + storageClose;
      expect(shutdownTimeoutMs(config)).toBeGreaterThan(steps);
    }
  });
});
