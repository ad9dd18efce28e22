/**
 * Prometheus metrics (prom-client), one registry per gateway so tests can run several side by side.
 * Labels never carry secrets, Sids or phone numbers: only bounded values (operation names, endpoints,
 * statuses, outcomes).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { UpstreamRequestEvent } from './exotel/types.js';

export interface Metrics {
  registry: Registry;
  graphqlOperations: Counter<'operation' | 'type' | 'outcome'>;
  graphqlDuration: Histogram<'operation' | 'type'>;
  upstreamRequests: Counter<'endpoint' | 'method' | 'status'>;
  upstreamDuration: Histogram<'endpoint'>;
  rateBudgetRemaining: Gauge;
  rateBudgetQueued: Gauge;
  cacheRequests: Counter<'result'>;
  webhooks: Counter<'kind' | 'outcome'>;
  /** Background attempts to store a webhook answered 200 before it was stored (a Passthru; src/live/incoming-retries.ts). */
  webhookRetries: Counter<'kind'>;
  /** Webhooks answered 200 before they were stored that a background retry stored. */
  webhooksStoredLate: Counter<'kind'>;
  /** Webhooks answered 200 before they were stored that were given up: `reason` attempts, overflow or shutdown. */
  webhooksDropped: Counter<'kind' | 'reason'>;
  /** Webhooks waiting for a background retry, read at scrape. */
  webhookRetriesPending: Gauge;
  /** Idempotency take-backs lost (src/storage/take-backs.ts): `reason` overflow (too many owed) or shutdown. */
  takeBacksLost: Counter<'reason'>;
  eventsPublished: Counter<'kind' | 'source'>;
  activeSockets: Gauge;
  activeSubscriptions: Gauge;
  /** 1 while a shared dependency (storage, Exotel) answers, else 0: what /readyz reports without failing on it. */
  dependencyUp: Gauge<'dependency'>;
  reconcilerRecoveries: Counter<'kind'>;
  /** Open items the reconciler let go unfinished, by kind and why (src/live/reconciler.ts GiveUpReason). */
  reconcilerGivenUp: Counter<'kind' | 'reason'>;
  /** Client mistakes by kind (errors.ts clientErrorKind): logged at info or below, counted here. */
  clientErrors: Counter<'kind'>;
  /** Counts one GraphQL operation (HTTP or graphql-ws); the name is made label-safe here. */
  observeOperation(operation: { name: string | null | undefined; type: string; outcome: string; durationSeconds: number }): void;
  /** Counts one request to Exotel (createExotelClient's onRequest). */
  observeUpstream(event: UpstreamRequestEvent): void;
  /** Sets a counter that mirrors a running total kept elsewhere (cache hits and misses). */
  syncTotal(counter: Counter<'result'>, result: string, total: number): void;
  /** Content-Type of render()'s text. */
  contentType: string;
  /** The Prometheus text exposition. */
  render(): Promise<string>;
}

/** Distinct operation names kept as labels; later new names count as "other" (bounded cardinality). */
export const MAX_OPERATION_NAMES = 200;

/**
 * A label-safe operation name. Names are chosen by clients, so only GraphQL names of modest length are
 * kept, and none that looks like a phone number or a Sid (a long run of digits or hex).
 */
export function operationLabel(name: string | null | undefined): string {
  if (!name) return 'anonymous';
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(name) || /\d{5,}/.test(name) || /[0-9a-f]{16,}/i.test(name)) return 'invalid';
  return name;
}

export interface MetricsOptions {
  /** Node process metrics (event loop lag, heap, GC); off in tests that make many gateways. */
  defaultMetrics?: boolean;
  /** Called right before each scrape to refresh gauges that are read, not pushed. */
  beforeScrape?: () => Promise<void> | void;
}

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) {
    // The standard Node runtime names (process_*, nodejs_*), unprefixed, as every Prometheus client library
    // and the usual Node dashboards have them; the gateway's own metrics are gateway_*.
    collectDefaultMetrics({ register: registry });
    // Gauges named *_total break Prometheus naming (only counters end in _total); each is the sum of its
    // labelled sibling without the suffix (nodejs_active_handles…), so nothing is lost.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(name);
  }
  const registers = [registry];
  const m = {
    registry,
    graphqlOperations: new Counter({
      name: 'gateway_graphql_operations_total',
      help: 'GraphQL operations by operation name, type and outcome (ok, or the error code)',
      labelNames: ['operation', 'type', 'outcome'] as const,
      registers,
    }),
    graphqlDuration: new Histogram({
      name: 'gateway_graphql_operation_duration_seconds',
      help: 'GraphQL operation latency',
      labelNames: ['operation', 'type'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    upstreamRequests: new Counter({
      name: 'gateway_upstream_requests_total',
      help: 'Requests to Exotel by endpoint, method and HTTP status (timeout and network-error included)',
      labelNames: ['endpoint', 'method', 'status'] as const,
      registers,
    }),
    upstreamDuration: new Histogram({
      name: 'gateway_upstream_request_duration_seconds',
      help: 'Latency of requests to Exotel',
      labelNames: ['endpoint'] as const,
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    rateBudgetRemaining: new Gauge({ name: 'gateway_rate_budget_remaining', help: 'Exotel requests left in the current rolling window', registers }),
    rateBudgetQueued: new Gauge({ name: 'gateway_rate_budget_queued', help: 'Requests waiting for Exotel budget', registers }),
    cacheRequests: new Counter({ name: 'gateway_cache_requests_total', help: 'Cache lookups by result (hit, miss)', labelNames: ['result'] as const, registers }),
    webhooks: new Counter({
      name: 'gateway_webhooks_total',
      help: 'Exotel callbacks by kind and outcome (accepted, duplicate, backward, rejected, unavailable)',
      labelNames: ['kind', 'outcome'] as const,
      registers,
    }),
    webhookRetries: new Counter({
      name: 'gateway_webhook_retries_total',
      help: 'Background attempts to store a webhook answered 200 before it could be stored (incoming-call: Exotel never retries a Passthru)',
      labelNames: ['kind'] as const,
      registers,
    }),
    webhooksStoredLate: new Counter({
      name: 'gateway_webhooks_stored_late_total',
      help: 'Webhooks answered 200 before they could be stored that a background retry stored',
      labelNames: ['kind'] as const,
      registers,
    }),
    webhooksDropped: new Counter({
      name: 'gateway_webhooks_dropped_total',
      help: 'Webhooks answered 200 before they could be stored that were given up and are lost (reason: attempts, overflow, shutdown)',
      labelNames: ['kind', 'reason'] as const,
      registers,
    }),
    webhookRetriesPending: new Gauge({ name: 'gateway_webhook_retries_pending', help: 'Webhooks answered 200 but not yet stored, waiting for a background retry', registers }),
    takeBacksLost: new Counter({
      name: 'gateway_idempotency_take_backs_lost_total',
      help: 'Idempotency take-backs owed to Redis and given up: their keys read as in progress until they expire (reason: overflow, shutdown)',
      labelNames: ['reason'] as const,
      registers,
    }),
    eventsPublished: new Counter({ name: 'gateway_events_published_total', help: 'Status events published to subscribers', labelNames: ['kind', 'source'] as const, registers }),
    activeSockets: new Gauge({ name: 'gateway_ws_sockets', help: 'Open graphql-ws sockets', registers }),
    activeSubscriptions: new Gauge({ name: 'gateway_ws_subscriptions', help: 'Active GraphQL subscriptions', registers }),
    dependencyUp: new Gauge({ name: 'gateway_dependency_up', help: 'Whether a shared dependency answers (storage, exotel): 1 up, 0 down', labelNames: ['dependency'] as const, registers }),
    clientErrors: new Counter({
      name: 'gateway_client_errors_total',
      help: 'Client mistakes (syntax, validation, variables, limit, auth, input, path, protocol) on HTTP and graphql-ws; logged at info or below, never as errors',
      labelNames: ['kind'] as const,
      registers,
    }),
    reconcilerRecoveries: new Counter({
      name: 'gateway_reconciler_recoveries_total',
      help: 'Calls and SMS whose final status the reconciler fetched because no callback came',
      labelNames: ['kind'] as const,
      registers,
    }),
    reconcilerGivenUp: new Counter({
      name: 'gateway_reconciler_given_up_total',
      help: 'Open calls, SMS and unknown outcomes the reconciler let go unfinished (reason: unfinished a day after DateCreated, lookup-failing a day after listing)',
      labelNames: ['kind', 'reason'] as const,
      registers,
    }),
  };
  const names = new Set<string>();
  const totals = new Map<string, number>();
  return {
    ...m,
    observeOperation({ name, type, outcome, durationSeconds }) {
      let operation = operationLabel(name);
      if (!names.has(operation)) {
        if (names.size >= MAX_OPERATION_NAMES) operation = 'other';
        else names.add(operation);
      }
      m.graphqlOperations.inc({ operation, type, outcome });
      m.graphqlDuration.observe({ operation, type }, durationSeconds);
    },
    observeUpstream(event) {
      m.upstreamRequests.inc({ endpoint: event.endpoint, method: event.method, status: String(event.status) });
      m.upstreamDuration.observe({ endpoint: event.endpoint }, event.durationMs / 1000);
    },
    syncTotal(counter, result, total) {
      const key = `${(counter as unknown as { name: string }).name}|${result}`;
      const delta = total - (totals.get(key) ?? 0);
      // A total that went down (storage swapped, counter reset) starts over rather than going negative.
      if (delta > 0) counter.inc({ result }, delta);
      totals.set(key, total);
    },
    contentType: registry.contentType,
    async render() {
      await options.beforeScrape?.();
      return registry.metrics();
    },
  };
}
