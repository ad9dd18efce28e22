/** Chooses the storage backend: Redis when REDIS_URL is set (many replicas), memory otherwise (one process). */
import type { Config } from '../config.js';
import type { Storage } from './types.js';
import type { StorageLogger } from './options.js';
import { createMemoryStorage, type MemoryStorageOptions } from './memory.js';
import { createRedisStorage, type RedisStorageOptions } from './redis.js';

export type { Storage } from './types.js';
export { createMemoryStorage, type MemoryStorageOptions } from './memory.js';
export { createRedisStorage, type RedisStorageOptions } from './redis.js';
export { STORAGE_DEFAULTS, type StorageOptions, type StorageLogger } from './options.js';

/** The parts of Config storage reads. */
export type StorageConfig = Pick<Config, 'redisUrl' | 'eventRetentionHours' | 'eventRetentionCount'>;

/** Builds the Storage the configuration asks for. `overrides` is for tests and tuning (clock, key prefix, cache cap). */
export async function createStorage(
  config: StorageConfig,
  logger?: StorageLogger,
  overrides: Partial<Omit<RedisStorageOptions, 'redisUrl'> & MemoryStorageOptions> = {},
): Promise<Storage> {
  const options = {
    eventRetentionMs: Math.round(config.eventRetentionHours * 3_600_000),
    eventRetentionCount: config.eventRetentionCount,
    ...(logger ? { logger } : {}),
    ...overrides,
  };
  return config.redisUrl ? createRedisStorage({ ...options, redisUrl: config.redisUrl }) : createMemoryStorage(options);
}
