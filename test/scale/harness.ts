/**
 * Pieces the scale-out tests share: a fleet of real gateway processes in front of one in-process
 * simulator, GraphQL over HTTP, graphql-ws subscribers that record what they saw, webhook posting the way
 * Exotel does it, and a rolling-window counter for upstream requests.
 */
import { randomBytes } from 'node:crypto';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { callbackToken, type CallbackKind } from '../../src/live/callback-urls.js';
import type { Simulator } from '../../src/simulator/index.js';
import { spawnGateway, type GatewayProcess } from '../helpers/processes.js';

/** Shared by every replica of a fleet: a callback URL minted by one must be accepted by another. */
export const WEBHOOK_SECRET = `scale-test-${randomBytes(16).toString('hex')}`;

/** Environment of a replica talking to `sim` as its Exotel and sharing `redisUrl` under `keyPrefix`. */
export function replicaEnv(sim: Simulator, redisUrl: string, keyPrefix: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    EXOTEL_ACCOUNT_SID: sim.accountSid,
    EXOTEL_API_KEY: sim.apiKey,
    EXOTEL_API_TOKEN: sim.apiToken,
    EXOTEL_BASE_URL: sim.url,
    WEBHOOK_SECRET,
    GATEWAY_ALLOW_OPEN: '1',
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: keyPrefix,
    GATEWAY_REPLICAS: '2',
    LOG_LEVEL: 'info',
    ...extra,
  };
}

/** Starts replicas A and B in parallel (two cores: starting them one after the other doubles the wait). */
export async function spawnPair(env: Record<string, string>): Promise<[GatewayProcess, GatewayProcess]> {
  const [a, b] = await Promise.all([spawnGateway('replica-A', env), spawnGateway('replica-B', env)]);
  return [a, b];
}

export interface GqlResult<T> {
  status: number;
  data?: T;
  errors?: Array<{ message: string; extensions?: Record<string, unknown> }>;
}

/** One GraphQL request over HTTP; the body is always read and parsed. */
export async function gql<T = Record<string, unknown>>(baseUrl: string, query: string, variables?: Record<string, unknown>): Promise<GqlResult<T>> {
  const res = await fetch(`${baseUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  const text = await res.text();
  let body: { data?: T; errors?: GqlResult<T>['errors'] };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    throw new Error(`non-JSON GraphQL answer (${res.status}): ${text.slice(0, 300)}`);
  }
  return { status: res.status, ...body };
}

/** The callback URL of `kind` on one replica, as the gateway mints it (HMAC of the shared secret). */
export function webhookUrl(replicaUrl: string, accountSid: string, kind: CallbackKind): string {
  return `${replicaUrl}/webhooks/exotel/${callbackToken(WEBHOOK_SECRET, accountSid, kind)}/${kind}`;
}

/** A call-status callback as Exotel sends it (form-urlencoded). */
export interface CallCallback {
  callSid: string;
  /** Exotel's spelling: ringing, in-progress, completed, busy, failed, no-answer. */
  status: string;
}

/** Posts one call-status callback; answers the HTTP status and body, or 0 when the connection failed. */
export async function postCallback(replicaUrl: string, accountSid: string, cb: CallCallback): Promise<{ status: number; body: string }> {
  try {
    const res = await fetch(webhookUrl(replicaUrl, accountSid, 'call-status'), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ CallSid: cb.callSid, Status: cb.status, DateUpdated: '2026-01-15 10:00:00' }).toString(),
      signal: AbortSignal.timeout(10_000),
    });
    return { status: res.status, body: await res.text() };
  } catch {
    return { status: 0, body: '' };
  }
}

/** GraphQL status name of an Exotel callback status, as subscribers see it. */
export const GRAPHQL_STATUS: Record<string, string> = {
  ringing: 'RINGING',
  'in-progress': 'IN_PROGRESS',
  completed: 'COMPLETED',
};

/** A unique-per-run call Sid (Exotel Sids are 32 hex characters). */
export function newCallSid(): string {
  return randomBytes(16).toString('hex');
}

export interface SeenEvent {
  id: string;
  callSid: string;
  status: string;
  source: string;
}

/** A graphql-ws callEvents subscriber that records every event, and how its stream ended. */
export interface Subscriber {
  events: SeenEvent[];
  /** Settles when the stream ends: completed, or an error/close (e.g. its replica died). */
  ended: Promise<{ error?: unknown }>;
  /** Resolves once `predicate` holds for the events seen so far. */
  waitFor(predicate: (events: SeenEvent[]) => boolean, what: string, timeoutMs?: number): Promise<void>;
  dispose(): Promise<void>;
}

const CALL_EVENTS = `subscription($after: ID, $sids: [ID!]) {
  callEvents(after: $after, filter: { callSids: $sids }) { id callSid status source }
}`;

/**
 * Subscribes to callEvents on `wsUrl` (optionally replaying after `after`, optionally only `callSids`)
 * and resolves once the server acknowledged the connection, so events posted afterwards are not missed.
 */
export async function subscribeCallEvents(wsUrl: string, options: { after?: string; callSids?: string[] } = {}): Promise<Subscriber> {
  const events: SeenEvent[] = [];
  const watchers = new Set<() => void>();
  let connected!: () => void;
  let failedToConnect!: (err: unknown) => void;
  const connectedP = new Promise<void>((resolve, reject) => {
    connected = resolve;
    failedToConnect = reject;
  });
  const client: Client = createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    lazy: false,
    // The subscription's own sink reports a lost socket; the default would also print it to stderr.
    onNonLazyError: () => {},
    on: {
      connected: () => connected(),
      closed: (event) => failedToConnect(new Error(`socket closed before connection_ack: ${JSON.stringify(event)}`)),
      error: (err) => failedToConnect(err),
    },
  });
  await connectedP;
  const ended = new Promise<{ error?: unknown }>((resolve) => {
    client.subscribe<{ callEvents: SeenEvent }>(
      { query: CALL_EVENTS, variables: { after: options.after ?? null, sids: options.callSids ?? null } },
      {
        next: (msg) => {
          if (msg.data?.callEvents) events.push(msg.data.callEvents);
          else if (msg.errors) events.push({ id: 'error', callSid: '', status: JSON.stringify(msg.errors), source: '' });
          for (const w of [...watchers]) w();
        },
        error: (error) => resolve({ error }),
        complete: () => resolve({}),
      },
    );
  });
  void ended.then(() => {
    for (const w of [...watchers]) w();
  });
  let endedYet = false;
  void ended.then(() => (endedYet = true));
  return {
    events,
    ended,
    waitFor(predicate, what, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (predicate(events)) {
            done();
            resolve();
          } else if (endedYet) {
            done();
            reject(new Error(`subscription ended while waiting for ${what}; saw ${events.length} events`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; saw ${events.length} events: ${JSON.stringify(events.slice(-5))}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          watchers.delete(check);
        };
        watchers.add(check);
        check();
      });
    },
    async dispose() {
      await client.dispose();
    },
  };
}

/** A callStatusChanged subscriber on `wsUrl`, resolved once its first event (the SNAPSHOT) arrived. */
export async function subscribeCallStatus(wsUrl: string, sid: string): Promise<{ statuses: string[]; dispose(): Promise<void> }> {
  const client = createClient({ url: wsUrl, webSocketImpl: WebSocket, retryAttempts: 0, lazy: true, onNonLazyError: () => {} });
  const statuses: string[] = [];
  await new Promise<void>((resolve, reject) => {
    client.subscribe<{ callStatusChanged: { status: string; source: string } }>(
      { query: 'subscription($sid: ID!) { callStatusChanged(sid: $sid) { status source } }', variables: { sid } },
      {
        next: (msg) => {
          if (msg.errors) reject(new Error(JSON.stringify(msg.errors)));
          if (msg.data) statuses.push(`${msg.data.callStatusChanged.status}/${msg.data.callStatusChanged.source}`);
          resolve();
        },
        error: reject,
        complete: () => resolve(),
      },
    );
  });
  return { statuses, dispose: () => client.dispose() as Promise<void> };
}

/** The most timestamps falling in any half-open window of `windowMs` (t - windowMs, t]. */
export function maxInRollingWindow(timesMs: number[], windowMs: number): number {
  const t = [...timesMs].sort((x, y) => x - y);
  let max = 0;
  let start = 0;
  for (let end = 0; end < t.length; end++) {
    while (t[start]! <= t[end]! - windowMs) start++;
    max = Math.max(max, end - start + 1);
  }
  return max;
}

/** "callSid/STATUS" keys of events, for exactly-once comparisons. */
export const keyOf = (e: { callSid: string; status: string }) => `${e.callSid}/${e.status}`;

/** Counts of each key: duplicates show up as a count above 1. */
export function countKeys(keys: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const k of keys) counts.set(k, (counts.get(k) ?? 0) + 1);
  return counts;
}

/** The subscribers a suite opened, disposed together in its teardown. */
export function subscriberPool() {
  const open: Subscriber[] = [];
  return {
    async subscribe(...args: Parameters<typeof subscribeCallEvents>): Promise<Subscriber> {
      const subscriber = await subscribeCallEvents(...args);
      open.push(subscriber);
      return subscriber;
    },
    disposeAll: () => Promise.all(open.splice(0).map((s) => s.dispose())),
  };
}
