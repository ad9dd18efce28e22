/** Chooses the storage backend: Redis when REDIS_URL is set (many replicas), memory otherwise (one process). */
import type { Config } from '../config.js';
import type { Storage } from './types.js';
import type { StorageLogger } from './options.js';
import { createMemoryStorage, type MemoryStorageOptions } from './memory.js';

export type { Storage } from './types.js';
export { createMemoryStorage } from './memory.js';
export { STORAGE_DEFAULTS, type StorageOptions, type StorageLogger } from './options.js';

/** The parts of Config storage reads. */
export type StorageConfig = Pick<Config, 'redisUrl' | 'eventRetentionHours' | 'eventRetentionCount'>;

/** Builds the Storage the configuration asks for. `overrides` is for tests (clock, key prefix). */
export async function createStorage(
  config: StorageConfig,
  logger?: StorageLogger,
  overrides: Partial<MemoryStorageOptions> = {},
): Promise<Storage> {
  const options = {
    eventRetentionMs: Math.round(config.eventRetentionHours * 3_600_000),
    eventRetentionCount: config.eventRetentionCount,
    ...(logger ? { logger } : {}),
    ...overrides,
  };
  // TEMPORARY until redis.ts lands (next commit).
  if (config.redisUrl) throw new Error('Redis storage is not available yet');
  return createMemoryStorage(options);
}
