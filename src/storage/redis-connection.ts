/**
 * Redis connections for the storage layer, set up to FAIL FAST: with Redis down a command rejects at once
 * (no offline queue, no silent retries) so a webhook can answer 503 in milliseconds instead of hanging,
 * while the connection keeps reconnecting in the background with capped backoff so everything recovers
 * by itself when Redis is back.
 */
import { Redis } from 'ioredis';
import { createClient } from '@keyv/redis';
import type { StorageLogger } from './options.js';
import { withTimeout } from './with-timeout.js';

export const REDIS_DEFAULTS = {
  keyPrefix: 'egg:',
  /** TCP connect timeout of each attempt, ms. */
  connectTimeoutMs: 2000,
  /** A command connection rejects a command Redis has not answered within this, ms (a stalled Redis must not stall webhooks; REDIS_COMMAND_TIMEOUT_MS). */
  commandTimeoutMs: 2000,
  /** A cache command Redis has not answered within this is given up, ms: a read then counts as a miss (REDIS_CACHE_TIMEOUT_MS). */
  cacheTimeoutMs: 250,
  /** Cache commands queued on the cache connection at most; more fail at once (a stalled Redis must not grow the queue without bound). */
  cacheQueueMax: 2000,
  /** The budget script falls back to the per-replica budget after this, ms. */
  budgetTimeoutMs: 500,
  /** ping() answers false when Redis takes longer than this, ms. */
  pingTimeoutMs: 500,
  /** Reconnect backoff: base × 2^attempt, capped, ms. */
  reconnectBaseMs: 50,
  reconnectMaxMs: 2000,
} as const;

/** The delay before reconnect attempt `attempt` (1-based), ms. */
export function reconnectDelayMs(attempt: number): number {
  return Math.min(REDIS_DEFAULTS.reconnectBaseMs * 2 ** Math.min(attempt, 16), REDIS_DEFAULTS.reconnectMaxMs);
}

/** The URL with any password replaced, for logs. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    if (u.username && !u.password) u.username = '***';
    return u.toString();
  } catch {
    return 'redis://[unparseable url]';
  }
}

/** What a connection log listens to: an ioredis client (`status`) or a node-redis one (`isOpen`, `isReady`). */
type ConnectionEvents = { on(event: string, fn: (...args: never[]) => void): unknown; status?: string; isOpen?: boolean; isReady?: boolean };

/**
 * True while a connection is on its way back: opened (not closed on purpose, not yet asked to connect) but
 * not ready. Such a connection may not have reported an error of its own yet.
 */
function isReconnecting(connection: ConnectionEvents): boolean {
  if (connection.status !== undefined) return connection.status !== 'ready' && connection.status !== 'wait' && connection.status !== 'end';
  return connection.isOpen === true && connection.isReady !== true;
}

/** The Redis connections of one storage, logged as one link to Redis (createConnectionLog). */
export interface ConnectionLog {
  /** Listens to one connection's errors and readiness; `role` names it in the outage's first line. */
  watch(connection: ConnectionEvents, role: string): void;
}

/**
 * Logs connection trouble once per outage rather than on every reconnect attempt, and the recovery: one
 * line when the first of the storage's connections fails while all were up (a Redis that goes away fails
 * all three), one when every connection is ready again — those that failed, and any still reconnecting
 * without having reported an error yet. Listening at all matters: an EventEmitter 'error' without a
 * listener would crash the process.
 */
export function createConnectionLog(url: string, logger: StorageLogger): ConnectionLog {
  const redis = redactRedisUrl(url);
  // Roles of the connections that reported an error and are not ready yet.
  const down = new Set<string>();
  const watched: ConnectionEvents[] = [];
  let outage = false;
  return {
    watch(connection, role) {
      watched.push(connection);
      connection.on('error', (err: Error) => {
        if (down.has(role)) return;
        if (!outage) logger.warn({ err: { message: err.message, code: (err as NodeJS.ErrnoException).code }, role, redis }, 'redis connection failed; retrying');
        outage = true;
        down.add(role);
      });
      connection.on('ready', () => {
        down.delete(role);
        if (!outage || down.size > 0 || watched.some(isReconnecting)) return;
        outage = false;
        logger.info({ redis }, 'redis connection restored');
      });
    },
  };
}

/**
 * An ioredis connection that fails fast. `role` names it in logs and CLIENT LIST. Retries per request are
 * 0 on purpose: replaying a command whose reply was lost could append an event twice; the caller gets
 * the error and decides.
 */
export function createIoRedis(url: string, role: string, log: ConnectionLog, options: { commandTimeoutMs?: number } = {}): Redis {
  const redis = new Redis(url, {
    // Every command is bounded: a stalled Redis (up but not answering) must not hang a request or a webhook.
    // A blocking XREAD's own connection passes its BLOCK time plus this.
    commandTimeout: options.commandTimeoutMs ?? REDIS_DEFAULTS.commandTimeoutMs,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: REDIS_DEFAULTS.connectTimeoutMs,
    retryStrategy: reconnectDelayMs,
    connectionName: `egg-${role}`,
  });
  log.watch(redis, role);
  return redis;
}

/** Connects, giving up (without throwing) after the first failed attempt; reconnection continues in the background. */
export async function connectIoRedis(redis: Redis): Promise<void> {
  await redis.connect().catch(() => {});
}

/** Quits politely when connected; otherwise drops the socket and stops reconnecting. Never throws. */
export async function closeIoRedis(redis: Redis): Promise<void> {
  if (redis.status === 'ready') {
    try {
      await redis.quit();
      return;
    } catch {
      // fall through to disconnect
    }
  }
  redis.disconnect();
}

/**
 * The node-redis client @keyv/redis needs, with the same fail-fast settings. The caller bounds how long it
 * waits for each operation (createKeyvCache's opTimeoutMs): node-redis's own per-command timeout would
 * only cover a command not yet written, and costs an AbortSignal timer that fires for every command.
 * Its queue is bounded instead, so a stalled Redis cannot make it grow without limit.
 */
export function createNodeRedis(url: string, role: string, log: ConnectionLog, options: { queueMax?: number } = {}) {
  const client = createClient({
    url,
    disableOfflineQueue: true,
    commandsQueueMaxLength: options.queueMax ?? REDIS_DEFAULTS.cacheQueueMax,
    socket: { connectTimeout: REDIS_DEFAULTS.connectTimeoutMs, reconnectStrategy: (retries: number) => reconnectDelayMs(retries + 1) },
  });
  log.watch(client as unknown as ConnectionEvents, role);
  return client;
}

export type NodeRedisClient = ReturnType<typeof createNodeRedis>;

/**
 * Starts a node-redis client and waits for the first outcome: ready, or the first error (then it keeps
 * reconnecting in the background). node-redis's connect() itself stays pending through an outage.
 */
export async function connectNodeRedis(client: NodeRedisClient): Promise<void> {
  await new Promise<void>((resolve) => {
    const done = () => {
      client.off('ready', done);
      client.off('error', done);
      resolve();
    };
    client.on('ready', done);
    client.on('error', done);
    client.connect().catch(done);
  });
}

/**
 * Closes a node-redis client: gracefully when Redis answers within `waitMs`, otherwise drop it. Never
 * throws. A graceful close waits for the answers of every command already sent, which a stalled Redis
 * never gives (their callers gave up on them after the cache timeout), and once begun it cannot be cut
 * short; so a PING goes first. Redis answers in order: once the PING is answered, so is everything sent
 * before it, and the close has nothing left to wait for.
 */
export async function closeNodeRedis(client: NodeRedisClient, waitMs: number): Promise<void> {
  if (!client.isOpen) return;
  if (client.isReady) {
    try {
      await withTimeout(client.ping(), waitMs, 'redis cache connection');
      await client.close();
      return;
    } catch {
      // fall through
    }
  }
  client.destroy();
}

export { withTimeout } from './with-timeout.js';
