/** Options of the Exotel client, with every default declared once. */
import type { RateBudget } from '../storage/types.js';
import type { UpstreamRequestEvent } from './types.js';

/** The subset of a pino logger the client uses; messages never carry credentials, URLs or headers. */
export interface ExotelLogger {
  debug(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
}

/** Exotel's clusters (Exotel's API docs; docs/exotel-fidelity.md). */
export const EXOTEL_REGION_BASE_URLS = {
  singapore: 'https://api.exotel.com',
  mumbai: 'https://api.in.exotel.com',
} as const;
export type ExotelRegion = keyof typeof EXOTEL_REGION_BASE_URLS;

/** The Exotel a client talks to: `baseUrl` when set, else its region's cluster. */
export function exotelBaseUrlFor(region: ExotelRegion, baseUrl?: string): string {
  return baseUrl ?? EXOTEL_REGION_BASE_URLS[region];
}

export interface ExotelClientOptions {
  accountSid: string;
  /** Basic-auth user. Sent only in the Authorization header. */
  apiKey: string;
  /** Basic-auth password. Sent only in the Authorization header; never logged or put in errors. */
  apiToken: string;
  /** Which Exotel cluster; ignored when `baseUrl` is set. */
  region?: ExotelRegion;
  /** Overrides the region's host, e.g. the simulator's URL. Must not carry credentials. */
  baseUrl?: string;
  /** The account's rolling-window budget; every attempt (retries included) takes from it. */
  budget: RateBudget;
  /** How long a request may wait in the FIFO queue for budget before RATE_LIMITED, ms. */
  queueDeadlineMs?: number;
  /** Per-attempt timeout (connect, answer and body), ms. */
  timeoutMs?: number;
  /** Most tries of one request while Exotel answers 429 (Exotel's advice: 1 + up to 4 retries = 5). */
  maxAttempts429?: number;
  /** The longest single Retry-After / backoff the client sits through; beyond it, RATE_LIMITED right away, ms. */
  maxRetryWaitMs?: number;
  /** First step of the exponential backoff, ms (Exotel: 1 s; tests shrink it). */
  backoffBaseMs?: number;
  /** Cap of one backoff step, ms. */
  backoffMaxMs?: number;
  /** Most tries of a GET on 5xx, timeout or network error. */
  maxAttemptsGet?: number;
  /** GET retries may add at most this share of extra requests over `retryBudgetWindowMs`. */
  getRetryRatio?: number;
  /** GET retries always allowed per window, whatever the ratio. */
  getRetryMinPerWindow?: number;
  /** Window of the GET retry budget, ms. */
  retryBudgetWindowMs?: number;
  /** Share (0–1) of the budget that 'background' requests (poller, reconciler) may use. */
  backgroundShare?: number;
  /** Weight of each client key in the fair share of the budget; a key not named weighs 1. */
  clientWeights?: Readonly<Record<string, number>>;
  /** Share (0–1) of each window a client key over its share must leave to the other keys. */
  reserveShare?: number;
  /** Told about every attempt sent upstream (metrics, tests). */
  onRequest?: (event: UpstreamRequestEvent) => void;
  /** Wall clock for Retry-After dates, budgets of retries and durations (tests inject one). */
  clock?: { now(): number };
  /** Randomness of the backoff jitter, [0, 1). */
  random?: () => number;
  logger?: ExotelLogger;
  /**
   * Scrubs the gateway's own secrets from Exotel's words before they reach an error (a client, a log),
   * after the key and token: an error that echoes a StatusCallback URL would carry its webhook token.
   */
  scrub?: (text: string) => string;
}

/** The defaults, in one place. */
export const EXOTEL_CLIENT_DEFAULTS = {
  region: 'singapore',
  queueDeadlineMs: 10_000,
  timeoutMs: 10_000,
  maxAttempts429: 5,
  maxRetryWaitMs: 10_000,
  backoffBaseMs: 1_000,
  backoffMaxMs: 8_000,
  maxAttemptsGet: 3,
  getRetryRatio: 0.1,
  getRetryMinPerWindow: 5,
  retryBudgetWindowMs: 60_000,
  backgroundShare: 0.2,
  clientWeights: {},
  reserveShare: 0.25,
} as const satisfies Partial<ExotelClientOptions>;

const silentLogger: ExotelLogger = { debug: () => {}, warn: () => {} };

export type ResolvedExotelClientOptions = Required<Omit<ExotelClientOptions, 'baseUrl' | 'onRequest'>> &
  Pick<ExotelClientOptions, 'onRequest'> & { baseUrl: string };

/** Fills defaults and checks the options; errors name the option, never a credential's value. */
export function resolveExotelClientOptions(options: ExotelClientOptions): ResolvedExotelClientOptions {
  for (const name of ['accountSid', 'apiKey', 'apiToken'] as const) {
    if (typeof options[name] !== 'string' || options[name].trim() === '') throw new TypeError(`Exotel client: ${name} is required`);
  }
  const region = options.region ?? EXOTEL_CLIENT_DEFAULTS.region;
  if (!(region in EXOTEL_REGION_BASE_URLS)) throw new TypeError(`Exotel client: unknown region ${JSON.stringify(region)} (singapore or mumbai)`);
  const baseUrl = checkBaseUrl(exotelBaseUrlFor(region, options.baseUrl));
  const resolved: ResolvedExotelClientOptions = {
    ...EXOTEL_CLIENT_DEFAULTS,
    clock: { now: () => Date.now() },
    random: Math.random,
    logger: silentLogger,
    scrub: (text: string) => text,
    ...(definedOnly(options) as ExotelClientOptions),
    region,
    baseUrl,
  };
  if (!(resolved.backgroundShare >= 0 && resolved.backgroundShare <= 1)) throw new RangeError('Exotel client: backgroundShare must be between 0 and 1');
  if (!(resolved.reserveShare >= 0 && resolved.reserveShare < 1)) throw new RangeError('Exotel client: reserveShare must be at least 0 and below 1');
  for (const [name, weight] of Object.entries(resolved.clientWeights)) {
    if (!(Number.isFinite(weight) && weight > 0)) throw new RangeError(`Exotel client: the weight of client "${name}" must be a positive number`);
  }
  for (const name of ['queueDeadlineMs', 'timeoutMs', 'maxRetryWaitMs', 'backoffBaseMs', 'backoffMaxMs', 'retryBudgetWindowMs'] as const) {
    if (!(resolved[name] >= 0)) throw new RangeError(`Exotel client: ${name} must be a non-negative number of ms`);
  }
  for (const name of ['maxAttempts429', 'maxAttemptsGet'] as const) {
    if (!Number.isInteger(resolved[name]) || resolved[name] < 1) throw new RangeError(`Exotel client: ${name} must be an integer ≥ 1`);
  }
  return resolved;
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function checkBaseUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new TypeError('Exotel client: baseUrl is not a valid URL');
  }
  // Credentials in a URL end up in proxies' and servers' access logs (docs/exotel-fidelity.md): refuse them outright.
  if (url.username || url.password) throw new TypeError('Exotel client: baseUrl must not contain credentials; pass apiKey/apiToken');
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new TypeError('Exotel client: baseUrl must be http(s)');
  return url.origin + url.pathname.replace(/\/+$/, '');
}
