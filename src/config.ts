/**
 * The gateway's configuration: every environment variable of the README's configuration table in one typed
 * object, validated once at start. Defaults are declared here and nowhere else.
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { REDIS_DEFAULTS } from './storage/redis-connection.js';

export type Scope = 'read' | 'read+write';

export interface ApiKey {
  /** Human name, used in logs and metrics (never the secret). */
  name: string;
  secret: string;
  scopes: Scope;
  /** Weight in the fair share of the Exotel budget between keys (4th field of the entry; default 1). */
  weight?: number;
}

/** Who may introspect the schema: nobody, any valid client key, or everyone. */
export type IntrospectionMode = 'off' | 'authenticated' | 'on';

export interface ExotelCredentials {
  accountSid: string;
  apiKey: string;
  apiToken: string;
}

export interface Limits {
  /** graphql-armor: maximum selection depth. */
  maxDepth: number;
  /** graphql-armor: maximum aliases per operation. */
  maxAliases: number;
  /** graphql-armor: maximum directives per operation. */
  maxDirectives: number;
  /** graphql-armor: maximum tokens per document. */
  maxTokens: number;
  /** Most values one operation's answer may hold, list items counted (src/graphql/cost.ts); a batch counts as a whole. */
  maxCost: number;
  /** Largest GraphQL answer sent, bytes (HTTP and graphql-ws query results). */
  maxResponseBytes: number;
  /** Largest accepted HTTP request body, bytes (GraphQL and webhooks). */
  maxBodyBytes: number;
  /** Most operations in one batched HTTP request. */
  maxBatchSize: number;
  /** graphql-ws: largest accepted frame, bytes. */
  wsMaxPayloadBytes: number;
  /** graphql-ws: time allowed between socket open and connection_init, ms. */
  wsConnectionInitTimeoutMs: number;
  /** graphql-ws: most concurrent subscriptions on one socket. */
  wsMaxSubscriptionsPerSocket: number;
  /** graphql-ws: most concurrent sockets per client key. */
  wsMaxSocketsPerKey: number;
  /** graphql-ws: most concurrent subscriptions (operations) per client key, over all its sockets. */
  wsMaxSubscriptionsPerKey: number;
  /** Allowed browser Origins for graphql-ws; empty allows every origin. */
  wsAllowedOrigins: string[];
  /** Browser Origins whose pages may read GraphQL-over-HTTP answers (CORS); empty sends no CORS headers. */
  corsAllowedOrigins: string[];
}

export interface Config {
  port: number;
  host: string;
  /** Port of a separate listener for GET /metrics (on `host`); undefined → /metrics is served on `port`. */
  metricsPort: number | undefined;
  /** Base URL Exotel can reach; callback URLs are minted under it. */
  publicUrl: string;
  /** Unset → the built-in simulator is started in-process. */
  exotel: ExotelCredentials | undefined;
  exotelRegion: 'singapore' | 'mumbai';
  /** Overrides the region's host, e.g. a simulator on another port. */
  exotelBaseUrl: string | undefined;
  ratePerMinute: number;
  /** Length of the rate window, ms (60 000 in production; tests shrink it). */
  rateWindowMs: number;
  /** How long a request may wait for budget before RATE_LIMITED, ms. */
  rateQueueDeadlineMs: number;
  bulkBatchSize: number;
  /**
   * Cold call lookups of concurrent requests share bulk requests: a batch closes once no Sid has joined
   * it for this long, ms (0: only lookups of the same event-loop turn share one).
   */
  coalesceWindowMs: number;
  /** The longest a shared call batch stays open while Sids keep joining, ms. */
  coalesceMaxWaitMs: number;
  /** While the window's budget is short, the longest a call batch stays open to fill before it queues, ms. */
  batchHoldMs: number;
  /** Share (0–1) of each window a client key over its share of the budget must leave to the other keys. */
  reserveShare: number;
  /** Per-attempt timeout of one upstream request, ms. */
  upstreamTimeoutMs: number;
  webhookSecret: string;
  /** True when WEBHOOK_SECRET was generated for this process. */
  webhookSecretGenerated: boolean;
  apiKeys: ApiKey[];
  /** Live mode with no API keys refuses to start unless this is set (GATEWAY_ALLOW_OPEN=1). */
  allowOpen: boolean;
  redisUrl: string | undefined;
  /** Every Redis command (but the event log's blocking read) fails after this, ms. */
  redisCommandTimeoutMs: number;
  /** A Redis cache read or write slower than this is given up (a read then counts as a miss), ms. */
  redisCacheTimeoutMs: number;
  /** Prefix of every Redis key (REDIS_KEY_PREFIX), so several deployments or test runs can share one Redis. */
  redisKeyPrefix: string;
  /**
   * Replicas expected to share the Exotel budget (GATEWAY_REPLICAS). While Redis is unreachable each
   * replica falls back to limit / replicas in memory, so the fleet stays under the account limit.
   */
  replicas: number;
  livePollIntervalMs: number;
  /** Share of the rate budget the live poller and reconciler may spend (0–1). */
  livePollBudgetShare: number;
  reconcileGraceSeconds: number;
  eventRetentionHours: number;
  /** Most events the event log keeps for replay, whatever their age. */
  eventRetentionCount: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  production: boolean;
  /** INTROSPECTION; default `on`, or `off` with NODE_ENV=production. */
  introspection: IntrospectionMode;
  /** Simulator clock: 1 = real time, 0.01 = a 100× faster call lifecycle. */
  simulatorTimeScale: number;
  limits: Limits;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration: ${problems.join('; ')}`);
    this.name = 'ConfigError';
  }
}

/** A whole number in [min, max]; one message for every way to miss it ("200/min", "1e9", "-1"). */
const int = (min: number, max: number) => {
  const message = `must be a whole number from ${min} to ${max}`;
  return z.coerce.number({ error: message }).int(message).min(min, message).max(max, message);
};
const flag = z
  .enum(['1', '0', 'true', 'false', 'yes', 'no', ''])
  .transform((v) => v === '1' || v === 'true' || v === 'yes');

const apiKeys = z.string().transform((raw, ctx) => {
  const keys: ApiKey[] = [];
  for (const entry of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [name, secret, scopes, weightText, ...rest] = entry.split(':');
    const weight = weightText === undefined ? 1 : Number(weightText);
    if (!name || !secret || (scopes !== 'read' && scopes !== 'read+write') || rest.length > 0) {
      // Never echo the entry, nor its name while its shape is wrong: a missing field shifts the secret into it.
      const problem =
        !name || !secret || scopes === undefined
          ? 'has an empty name or secret, or fewer than 3 fields'
          : rest.length > 0
            ? 'has more than 4 fields (a secret cannot contain ":")'
            : 'has scopes other than read or read+write';
      ctx.addIssue({ code: 'custom', message: `entry ${keys.length + 1} ${problem}; expected name:secret:scopes[:weight], e.g. backend:<secret>:read+write` });
      return z.NEVER;
    }
    // First, and by number: a short secret is most often a name, the entry's name and secret swapped.
    if (secret.length < 16) {
      ctx.addIssue({ code: 'custom', message: `entry ${keys.length + 1} has a secret shorter than 16 characters (name:secret:scopes, in that order)` });
      return z.NEVER;
    }
    if (!(weightText === undefined || (/^\d+(\.\d+)?$/.test(weightText) && weight > 0 && weight <= 1000))) {
      ctx.addIssue({ code: 'custom', message: `key "${name}" has a weight that is not a number above 0 and at most 1000` });
      return z.NEVER;
    }
    // The name tells clients apart (socket caps, logs, shared results): one key per name.
    if (keys.some((k) => k.name === name)) {
      ctx.addIssue({ code: 'custom', message: `key name "${name}" is used twice` });
      return z.NEVER;
    }
    keys.push({ name, secret, scopes, weight });
  }
  return keys;
});

const url = z
  .string()
  .url('must be an absolute URL with its scheme, e.g. https://gw.example.com')
  .transform((u) => u.replace(/\/+$/, ''));

/**
 * WS_ALLOWED_ORIGINS, CORS_ALLOWED_ORIGINS: browser Origins as a browser sends them (scheme://host[:port],
 * no path), so a trailing slash or a wildcard cannot silently turn away every browser (or let in every site).
 */
const origins = (wildcard: string) => z.string().transform((raw, ctx) => {
  const list: string[] = [];
  for (const entry of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (entry === '*') {
      ctx.addIssue({ code: 'custom', message: `"*" is not an origin; ${wildcard}` });
      return z.NEVER;
    }
    let origin: string | undefined;
    try {
      const parsed = new URL(entry);
      if (parsed.origin !== 'null' && (parsed.pathname === '/' || parsed.pathname === '') && !parsed.search && !parsed.hash) origin = parsed.origin;
    } catch {
      origin = undefined;
    }
    if (!origin) {
      ctx.addIssue({ code: 'custom', message: `"${entry}" is not an origin: use scheme://host[:port], e.g. https://app.example.com` });
      return z.NEVER;
    }
    list.push(origin);
  }
  return list;
});

/** Each variable with its default; the names are the public contract (the README's configuration table). */
const schema = z.object({
  PORT: int(0, 65535).default(4000),
  HOST: z.string().min(1).default('0.0.0.0'),
  METRICS_PORT: int(0, 65535).optional(),
  PUBLIC_URL: url.optional(),
  EXOTEL_ACCOUNT_SID: z.string().min(1).optional(),
  EXOTEL_API_KEY: z.string().min(1).optional(),
  EXOTEL_API_TOKEN: z.string().min(1).optional(),
  EXOTEL_REGION: z.enum(['singapore', 'mumbai']).default('singapore'),
  EXOTEL_BASE_URL: url.optional(),
  EXOTEL_RATE_LIMIT_PER_MIN: int(1, 100_000).default(200),
  EXOTEL_RATE_WINDOW_MS: int(100, 3_600_000).default(60_000),
  EXOTEL_RATE_QUEUE_MS: int(0, 600_000).default(10_000),
  // Exotel bulk call details: ≤ 100 Sids per request.
  EXOTEL_BULK_BATCH_SIZE: int(1, 100).default(100),
  // A few ms of waiting is small next to an Exotel round trip, and saves requests of a 200/min budget.
  EXOTEL_COALESCE_MS: int(0, 1000).default(5),
  EXOTEL_COALESCE_MAX_MS: int(0, 10_000).default(50),
  // Two seconds of filling turns ~60 one-Sid requests of a busy minute into one (docs/rate-budget.md).
  EXOTEL_BATCH_HOLD_MS: int(0, 60_000).default(2000),
  EXOTEL_RESERVE_SHARE: z.coerce.number().min(0).lt(1).default(0.25),
  EXOTEL_TIMEOUT_MS: int(100, 120_000).default(10_000),
  WEBHOOK_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
  GATEWAY_API_KEYS: apiKeys.optional(),
  GATEWAY_ALLOW_OPEN: flag.default(false),
  REDIS_URL: z.string().regex(/^rediss?:\/\//, 'must start with redis:// or rediss://').optional(),
  REDIS_COMMAND_TIMEOUT_MS: int(10, 60_000).default(REDIS_DEFAULTS.commandTimeoutMs),
  REDIS_CACHE_TIMEOUT_MS: int(10, 60_000).default(REDIS_DEFAULTS.cacheTimeoutMs),
  REDIS_KEY_PREFIX: z.string().min(1).max(200).regex(/^\S+$/, 'must not contain spaces').default('egg:'),
  GATEWAY_REPLICAS: int(1, 1000).default(1),
  LIVE_POLL_INTERVAL_MS: int(50, 3_600_000).default(5000),
  LIVE_POLL_BUDGET_SHARE: z.coerce.number().min(0).max(1).default(0.2),
  RECONCILE_GRACE_SECONDS: int(0, 86_400).default(120),
  EVENT_RETENTION_HOURS: z.coerce.number().min(0.001).max(24 * 90).default(24),
  EVENT_RETENTION_COUNT: int(1000, 100_000_000).default(100_000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  NODE_ENV: z.string().optional(),
  INTROSPECTION: z.enum(['off', 'authenticated', 'on']).optional(),
  SIMULATOR_TIME_SCALE: z.coerce.number().positive().max(100).default(1),
  MAX_DEPTH: int(1, 100).default(8),
  MAX_ALIASES: int(1, 1000).default(60),
  MAX_DIRECTIVES: int(1, 1000).default(20),
  MAX_TOKENS: int(100, 1_000_000).default(5000),
  // Values of one answer (list items counted): 1,000 calls with every scalar field and their events fit.
  MAX_COST: int(100, 10_000_000).default(100_000),
  MAX_RESPONSE_BYTES: int(1024, 1024 * 1024 * 1024).default(16 * 1024 * 1024),
  MAX_BODY_BYTES: int(1024, 64 * 1024 * 1024).default(256 * 1024),
  MAX_BATCH_OPERATIONS: int(1, 100).default(10),
  WS_MAX_PAYLOAD_BYTES: int(1024, 16 * 1024 * 1024).default(64 * 1024),
  WS_CONNECTION_INIT_TIMEOUT_MS: int(100, 120_000).default(5000),
  WS_MAX_SUBSCRIPTIONS_PER_SOCKET: int(1, 100_000).default(100),
  WS_MAX_SOCKETS_PER_KEY: int(1, 1_000_000).default(1000),
  // With the memory a subscription costs (the bench's fan-out figure measures it), 5,000 bound one key to
  // about 100 MB (docs/security.md).
  WS_MAX_SUBSCRIPTIONS_PER_KEY: int(1, 10_000_000).default(5000),
  WS_ALLOWED_ORIGINS: origins('leave WS_ALLOWED_ORIGINS unset to allow every origin').optional(),
  CORS_ALLOWED_ORIGINS: origins('list the origins of the browser apps that call the gateway').optional(),
});

/** Variables whose values are never printed, even when invalid. */
const SECRET_VARS = new Set(['EXOTEL_API_KEY', 'EXOTEL_API_TOKEN', 'WEBHOOK_SECRET', 'GATEWAY_API_KEYS', 'REDIS_URL']);
/** Issue codes whose message states the rule broken and never the value. */
const RULE_ISSUES = new Set<string>(['custom', 'too_small', 'too_big', 'invalid_format']);

export interface LoadConfigOptions {
  /**
   * False for a command that serves no client (`npm run webhook-urls`): GATEWAY_API_KEYS, which only
   * guards the GraphQL API, is then not required in live mode. Default true: the gateway itself.
   */
  servesClients?: boolean;
}

/**
 * Reads the environment into a Config. Throws ConfigError listing every bad variable at once;
 * messages name the variable and never contain a secret's value.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, options: LoadConfigOptions = {}): Config {
  // Empty strings count as unset, as in most twelve-factor services.
  const input = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = schema.safeParse(input);
  const problems = parsed.success
    ? []
    : parsed.error.issues.map((issue) => {
        const name = String(issue.path[0] ?? 'environment');
        // A secret's value is never printed; the messages declared in this file (custom ones, lengths,
        // formats) name only the rule, so they are shown, and anything else is only "invalid value".
        const detail = SECRET_VARS.has(name) && !RULE_ISSUES.has(issue.code) ? 'invalid value' : issue.message;
        return `${name}: ${detail}`;
      });

  // Rules across variables, checked on the raw input so they are reported together with the rest.
  const has = (name: string) => typeof input[name] === 'string';
  const credentialCount = ['EXOTEL_ACCOUNT_SID', 'EXOTEL_API_KEY', 'EXOTEL_API_TOKEN'].filter(has).length;
  if (credentialCount > 0 && credentialCount < 3) {
    problems.push('EXOTEL_ACCOUNT_SID, EXOTEL_API_KEY, EXOTEL_API_TOKEN: set all three for live mode, or none for the simulator');
  }
  if (parsed.success && parsed.data.METRICS_PORT !== undefined && parsed.data.METRICS_PORT !== 0 && parsed.data.METRICS_PORT === parsed.data.PORT) {
    problems.push(`METRICS_PORT: is PORT (${parsed.data.PORT}); give /metrics a port of its own, or leave METRICS_PORT unset to serve it on PORT`);
  }
  if (credentialCount === 3) {
    if (!has('WEBHOOK_SECRET')) problems.push('WEBHOOK_SECRET: required in live mode (callback URLs must survive restarts)');
    const open = parsed.success && parsed.data.GATEWAY_ALLOW_OPEN;
    if (!has('GATEWAY_API_KEYS') && !open && options.servesClients !== false) {
      problems.push('GATEWAY_API_KEYS: required in live mode; set GATEWAY_ALLOW_OPEN=1 to run without client auth on purpose');
    }
  }
  if (!parsed.success || problems.length > 0) throw new ConfigError(problems);
  const e = parsed.data;
  const exotel =
    credentialCount === 3 ? { accountSid: e.EXOTEL_ACCOUNT_SID!, apiKey: e.EXOTEL_API_KEY!, apiToken: e.EXOTEL_API_TOKEN! } : undefined;
  const apiKeyList = e.GATEWAY_API_KEYS ?? [];

  const port = e.PORT;
  return {
    port,
    host: e.HOST,
    metricsPort: e.METRICS_PORT,
    publicUrl: e.PUBLIC_URL ?? `http://localhost:${port}`,
    exotel,
    exotelRegion: e.EXOTEL_REGION,
    exotelBaseUrl: e.EXOTEL_BASE_URL,
    ratePerMinute: e.EXOTEL_RATE_LIMIT_PER_MIN,
    rateWindowMs: e.EXOTEL_RATE_WINDOW_MS,
    rateQueueDeadlineMs: e.EXOTEL_RATE_QUEUE_MS,
    bulkBatchSize: e.EXOTEL_BULK_BATCH_SIZE,
    coalesceWindowMs: e.EXOTEL_COALESCE_MS,
    coalesceMaxWaitMs: e.EXOTEL_COALESCE_MAX_MS,
    batchHoldMs: e.EXOTEL_BATCH_HOLD_MS,
    reserveShare: e.EXOTEL_RESERVE_SHARE,
    upstreamTimeoutMs: e.EXOTEL_TIMEOUT_MS,
    webhookSecret: e.WEBHOOK_SECRET ?? randomBytes(32).toString('base64url'),
    webhookSecretGenerated: !e.WEBHOOK_SECRET,
    apiKeys: apiKeyList,
    allowOpen: e.GATEWAY_ALLOW_OPEN,
    redisUrl: e.REDIS_URL,
    redisKeyPrefix: e.REDIS_KEY_PREFIX,
    redisCommandTimeoutMs: e.REDIS_COMMAND_TIMEOUT_MS,
    redisCacheTimeoutMs: e.REDIS_CACHE_TIMEOUT_MS,
    replicas: e.GATEWAY_REPLICAS,
    livePollIntervalMs: e.LIVE_POLL_INTERVAL_MS,
    livePollBudgetShare: e.LIVE_POLL_BUDGET_SHARE,
    reconcileGraceSeconds: e.RECONCILE_GRACE_SECONDS,
    eventRetentionHours: e.EVENT_RETENTION_HOURS,
    eventRetentionCount: e.EVENT_RETENTION_COUNT,
    logLevel: e.LOG_LEVEL,
    production: e.NODE_ENV === 'production',
    introspection: e.INTROSPECTION ?? (e.NODE_ENV === 'production' ? 'off' : 'on'),
    simulatorTimeScale: e.SIMULATOR_TIME_SCALE,
    limits: {
      maxDepth: e.MAX_DEPTH,
      maxAliases: e.MAX_ALIASES,
      maxDirectives: e.MAX_DIRECTIVES,
      maxTokens: e.MAX_TOKENS,
      maxCost: e.MAX_COST,
      maxResponseBytes: e.MAX_RESPONSE_BYTES,
      maxBodyBytes: e.MAX_BODY_BYTES,
      maxBatchSize: e.MAX_BATCH_OPERATIONS,
      wsMaxPayloadBytes: e.WS_MAX_PAYLOAD_BYTES,
      wsConnectionInitTimeoutMs: e.WS_CONNECTION_INIT_TIMEOUT_MS,
      wsMaxSubscriptionsPerSocket: e.WS_MAX_SUBSCRIPTIONS_PER_SOCKET,
      wsMaxSocketsPerKey: e.WS_MAX_SOCKETS_PER_KEY,
      wsMaxSubscriptionsPerKey: e.WS_MAX_SUBSCRIPTIONS_PER_KEY,
      wsAllowedOrigins: e.WS_ALLOWED_ORIGINS ?? [],
      corsAllowedOrigins: e.CORS_ALLOWED_ORIGINS ?? [],
    },
  };
}

/** A Config for tests and embedding: the defaults, overridden field by field. */
export function configFrom(env: Record<string, string | undefined>, overrides: Partial<Config> = {}): Config {
  return { ...loadConfig(env as NodeJS.ProcessEnv), ...overrides };
}

/** For command-line entry points: the Config, or one `config error:` line per problem on stderr and exit 1. */
export function loadConfigOrExit(env: NodeJS.ProcessEnv = process.env, options: LoadConfigOptions = {}): Config {
  try {
    return loadConfig(env, options);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const problem of err.problems) console.error(`config error: ${problem}`);
    process.exit(1);
  }
}
