/**
 * createServer(config) → a running gateway. Wiring only: every piece is built by its own module and
 * torn down by stop() in the reverse order it was started.
 */
import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type { Config } from './config.js';
import { createLogger, fixedFieldsLogger, type Logger } from './logger.js';
import type { ExotelApi, UpstreamRequestEvent } from './exotel/types.js';
import { createExotelClient } from './exotel/client.js';
import { exotelBaseUrlFor } from './exotel/options.js';
import { createSimulator, type Simulator } from './simulator/index.js';
import { createStorage } from './storage/index.js';
import type { Storage } from './storage/types.js';
import { createAuthenticator } from './auth.js';
import { createEntityCache } from './cache/entities.js';
import { createNearEntityCache } from './cache/near.js';
import { createApollo, GRAPHQL_PATH } from './graphql/apollo.js';
import { createWarmAnswers, type WarmAnswers } from './graphql/warm-answers.js';
import { createContextFactory, type GatewayMode } from './graphql/context.js';
import { createIdempotency } from './graphql/idempotency.js';
import { createSchema } from './graphql/schema.js';
import { gatewayVersion } from './graphql/version.js';
import { createSubscriptionResolvers } from './graphql/resolvers/subscription.js';
import { createGraphqlWs } from './graphql/ws.js';
import { createWebhookScrub, WEBHOOK_BASE_PATH } from './live/callback-urls.js';
import { createLive, incomingRetryStopMs, type LiveTimings } from './live/index.js';
import { unreachablePublicUrl } from './live/public-url.js';
import { isWebhookRequest, type WebhookRoute } from './live/webhooks.js';
import { GRAPHIQL_PATH, graphiqlRouter } from './graphiql/route.js';
import { createArmor } from './graphql/armor.js';
import { createIntrospectionPolicy } from './graphql/introspection.js';
import { createCostCheck } from './graphql/cost.js';
import { accessLog } from './http/access-log.js';
import { graphqlGuard } from './http/graphql-guard.js';
import { clientErrorsPlugin } from './http/client-errors.js';
import { corsFor } from './http/cors.js';
import { graphqlHttpHandler, isGraphqlRequest, type GraphqlHttpHandler } from './http/graphql-http.js';
import { responseSizeGuard } from './http/response-size.js';
import { graphqlMetricsPlugin } from './http/graphql-metrics.js';
import { listenMetrics, METRICS_PATH, metricsHandler, type MetricsListener } from './http/metrics-route.js';
import { getOnlyHandler, notFoundHandler } from './http/not-found.js';
import { requestIds } from './http/request-id.js';
import { createUpstreamHealth } from './http/upstream-health.js';
import { createMetrics, type Metrics } from './metrics.js';
import { operationSpansPlugin } from './tracing/graphql.js';
import { tracingEnabled } from './tracing/spans.js';

/** Shutdown timings, declared once. main.ts bounds the whole of stop() at shutdownTimeoutMs(config). */
export const SHUTDOWN = Object.freeze({
  /** How long graphql-ws clients get to answer the 1001 close before their sockets are cut, ms. */
  wsCloseGraceMs: 1_000,
  /** How long in-flight HTTP requests (GraphQL and webhooks) may take to finish before connections are cut, ms. */
  httpDrainGraceMs: 10_000,
  /** The quick steps of stop() together (the loops' last tick, the simulator) and the export of the last spans, ms. */
  otherStepsMs: 1_000,
});

/**
 * How long main.ts lets stop() run before it exits anyway, ms: the sum of what bounds each step that can
 * wait — the graphql-ws close grace, the HTTP drain grace, the last attempt of Passthru requests waiting
 * for storage (incomingRetryStopMs), and storage close (the owed take-backs' last try and the command
 * connection's QUIT, a command timeout each, the cache connection a cache timeout) — plus the rest
 * (SHUTDOWN.otherStepsMs). Raising REDIS_COMMAND_TIMEOUT_MS or REDIS_CACHE_TIMEOUT_MS raises it with them,
 * so no step is cut short of its own bound.
 */
export function shutdownTimeoutMs(config: Pick<Config, 'redisCommandTimeoutMs' | 'redisCacheTimeoutMs'>): number {
  const storageCloseMs = 2 * config.redisCommandTimeoutMs + config.redisCacheTimeoutMs;
  return SHUTDOWN.wsCloseGraceMs + SHUTDOWN.httpDrainGraceMs + incomingRetryStopMs(config) + storageCloseMs + SHUTDOWN.otherStepsMs;
}

/**
 * How long a client may take to send its request, declared once. Node's defaults (a whole request in 300 s)
 * let a slow client hold a socket for minutes; no caller of this gateway needs more than a few seconds.
 */
export const HTTP_RECEIVE_TIMEOUTS = Object.freeze({
  /** Request line and headers, ms. */
  headersTimeout: 10_000,
  /** The whole request, body included (not the answer), ms. */
  requestTimeout: 30_000,
  /** How often Node looks for requests past those limits, ms. */
  connectionsCheckingInterval: 5_000,
});
export type HttpReceiveTimeouts = { -readonly [K in keyof typeof HTTP_RECEIVE_TIMEOUTS]: number };

export interface GatewayDeps {
  logger?: Logger;
  /** Use this Exotel instead of building a client (tests with a fake). */
  exotel?: ExotelApi;
  storage?: Storage;
  /** Observes every upstream request (tests); the gateway's metrics see them too. */
  onUpstreamRequest?: (event: UpstreamRequestEvent) => void;
  /** Use this metrics registry (default: a fresh one per gateway, with Node process metrics). */
  metrics?: Metrics;
  /** Shorter receive timeouts than HTTP_RECEIVE_TIMEOUTS (tests of a slow client). */
  httpReceiveTimeouts?: HttpReceiveTimeouts;
  /** A shorter graphql-ws keep-alive than graphql-ws's 12 s, ms (tests of a client that stops reading). */
  wsKeepAliveMs?: number;
  /** Other live-pipeline timings and sizes than LIVE_DEFAULTS (tests: a small subscriber queue). */
  liveTimings?: Partial<LiveTimings>;
}

export interface Gateway {
  /** http://host:port of the gateway. */
  url: string;
  /** ws://host:port/graphql. */
  wsUrl: string;
  /** Where GET /metrics answers: the main port, or the METRICS_PORT listener. */
  metricsUrl: string;
  mode: GatewayMode;
  config: Config;
  logger: Logger;
  exotel: ExotelApi;
  storage: Storage;
  /** The in-process simulator in simulator mode. */
  simulator: Simulator | undefined;
  httpServer: Server;
  metrics: Metrics;
  /** Queries answered without executing (src/graphql/warm-answers.ts). */
  warmAnswers: WarmAnswers;
  /**
   * Graceful shutdown, in this order: readiness off; graphql-ws sockets closed with 1001 (no new ones);
   * HTTP stops accepting and drains in-flight requests — GraphQL and webhooks, each answered only after its
   * event is stored — for up to SHUTDOWN.httpDrainGraceMs; Passthru requests answered 200 but still waiting
   * for storage get one last attempt (for incomingRetryStopMs), the rest are logged and dropped; the
   * live poller and reconciler stop and subscriptions end; storage is flushed (owed idempotency take-backs,
   * src/storage/take-backs.ts, get a last try) and closed; the simulator stops. Safe to call twice.
   */
  stop(): Promise<void>;
}

type Stopper = () => Promise<void> | void;

/**
 * The teardown order, written once (see Gateway.stop): stop() and a start that failed halfway both run the
 * steps of the parts started so far, in this order, each even if the one before failed.
 */
const TEARDOWN_ORDER = [
  'readiness off',
  'graphql-ws sockets closed with 1001',
  'http drained: no new connections, in-flight GraphQL and webhooks finished',
  'http server closed',
  'metrics listener closed',
  'incoming calls waiting for storage tried once more, the rest dropped',
  'live poller and reconciler stopped, subscriptions ended',
  'event metrics unsubscribed',
  'near-cache unsubscribed',
  'storage flushed and closed',
  'simulator stopped',
] as const;
type TeardownStep = (typeof TEARDOWN_ORDER)[number];

export async function createServer(config: Config, deps: GatewayDeps = {}): Promise<Gateway> {
  const logger = deps.logger ?? createLogger({ level: config.logLevel, secrets: secretsOf(config) });
  const mode: GatewayMode = config.exotel || deps.exotel ? 'LIVE' : 'SIMULATOR';
  const { authenticate } = createAuthenticator(config.apiKeys);
  // Every long-lived part registers how it stops as soon as it has started.
  const started = new Map<TeardownStep, Stopper>();
  const onStop = (step: TeardownStep, stop: Stopper) => void started.set(step, stop);
  const teardown = async () => {
    const t0 = Date.now();
    for (const step of TEARDOWN_ORDER) {
      const run = started.get(step);
      if (!run) continue;
      started.delete(step);
      try {
        await run();
        logger.debug({ step, elapsedMs: Date.now() - t0 }, 'shutdown step done');
      } catch (err) {
        logger.warn({ err, step }, 'error while stopping');
      }
    }
  };

  // Gauges that are read, not pushed, are filled in right before each scrape (below, once the parts exist).
  const scrapeSources: Array<() => Promise<void> | void> = [];
  const metrics =
    deps.metrics ??
    createMetrics({
      beforeScrape: async () => {
        for (const source of scrapeSources) await source();
      },
    });

  try {
    const storage =
      deps.storage ??
      (await createStorage(
        config,
        logger,
        config.redisUrl
          ? {
              keyPrefix: config.redisKeyPrefix,
              expectedReplicas: config.replicas,
              commandTimeoutMs: config.redisCommandTimeoutMs,
              cacheTimeoutMs: config.redisCacheTimeoutMs,
              onTakeBackLost: (reason, count) => metrics.takeBacksLost.inc({ reason }, count),
            }
          : {},
      ));
    if (!deps.storage) onStop('storage flushed and closed', () => storage.close());

    let simulator: Simulator | undefined;
    // Which Exotel this gateway talks to, named in the start log and in a credentials refusal.
    let exotelBaseUrl: string | undefined = deps.exotel ? undefined : exotelBaseUrlFor(config.exotelRegion, config.exotelBaseUrl);
    const upstreamHealth = createUpstreamHealth({ logger: logger.child({ component: 'exotel' }), baseUrl: exotelBaseUrl });
    // The simulator plays incoming calls into the gateway's own Passthru URL, known once live is built.
    let incomingCallUrl: (() => string) | undefined;
    let exotel = deps.exotel;
    if (!exotel) {
      let credentials = config.exotel;
      let baseUrl = config.exotelBaseUrl;
      if (!credentials) {
        simulator = await createSimulator({
          port: 0,
          host: '127.0.0.1',
          timeScale: config.simulatorTimeScale,
          log: (line) => logger.info({ component: 'simulator' }, line),
          incomingCallUrl: () => incomingCallUrl?.(),
        });
        onStop('simulator stopped', () => simulator?.stop());
        credentials = { accountSid: simulator.accountSid, apiKey: simulator.apiKey, apiToken: simulator.apiToken };
        baseUrl = simulator.url;
        exotelBaseUrl = simulator.url;
        logger.warn({ simulatorUrl: simulator.url }, 'SIMULATOR MODE: no Exotel credentials set; calls and SMS go to the built-in Exotel simulator');
        // Nothing else makes an incoming call in simulator mode: say how, for GraphiQL's IncomingCalls example.
        logger.info({ simulatorUrl: simulator.url }, `play an incoming call through a flow: curl -XPOST ${simulator.url}/__sim/incoming-calls (docs/simulator.md)`);
      }
      exotel = createExotelClient({
        ...credentials,
        region: config.exotelRegion,
        baseUrl,
        budget: storage.rateBudget(`exotel:${credentials.accountSid}`, config.ratePerMinute, config.rateWindowMs),
        queueDeadlineMs: config.rateQueueDeadlineMs,
        timeoutMs: config.upstreamTimeoutMs,
        backgroundShare: config.livePollBudgetShare,
        // The fair share between client keys (docs/rate-budget.md); with no keys, every request is `anonymous`'s.
        clientWeights: Object.fromEntries(config.apiKeys.map((k) => [k.name, k.weight ?? 1])),
        reserveShare: config.reserveShare,
        logger: logger.child({ component: 'exotel' }),
        scrub: createWebhookScrub(config.webhookSecret, credentials.accountSid),
        onRequest: (event) => {
          upstreamHealth.observe(event);
          metrics.observeUpstream(event);
          deps.onUpstreamRequest?.(event);
        },
      });
    }

    let nearCacheStats: { hits: number } | undefined;
    const exotelApi = exotel;
    scrapeSources.push(async () => {
      metrics.dependencyUp.set({ dependency: 'storage' }, (await storage.ping().catch(() => false)) ? 1 : 0);
      metrics.dependencyUp.set({ dependency: 'exotel' }, upstreamHealth.problem() ? 0 : 1);
      // Budget first: on Redis it is one round trip; a failure leaves the last values rather than failing the scrape.
      const rate = await exotelApi.rateLimit().catch(() => undefined);
      if (rate) {
        metrics.rateBudgetRemaining.set(rate.remaining);
        metrics.rateBudgetQueued.set(rate.queued);
      }
      // Reads the replica's near-cache answered are hits too; its misses are the shared cache's reads.
      metrics.syncTotal(metrics.cacheRequests, 'hit', storage.cache.stats.hits + (nearCacheStats?.hits ?? 0));
      metrics.syncTotal(metrics.cacheRequests, 'miss', storage.cache.stats.misses);
    });
    // Every forward event this replica fans out to its subscribers (on Redis: every replica's events).
    const stopCountingEvents = storage.events.subscribe((event) => {
      if (event.forward && event.accountSid === exotelApi.accountSid) metrics.eventsPublished.inc({ kind: event.kind, source: event.source });
    });
    onStop('event metrics unsubscribed', stopCountingEvents);

    const app = express();
    app.disable('x-powered-by');
    // One exact path per route, as /graphql and the webhooks have on node:http: `/healthz/` or `/HEALTHZ` is
    // the JSON 404 of a path nothing is served at, not a second name a proxy rule for `/healthz` would miss.
    // Set before the first route: express builds its router, with these options, on first use.
    app.set('strict routing', true);
    app.set('case sensitive routing', true);
    // GraphQL over HTTP is answered on node:http in front of express (src/http/graphql-http.ts), once Apollo
    // has started; every other path is express's. graphql-ws upgrades on the same server.
    let graphqlRoute: GraphqlHttpHandler | undefined;
    // Webhooks too (src/live/webhooks.ts): Exotel's callbacks are the gateway's steadiest traffic.
    let webhookRoute: WebhookRoute | undefined;
    const httpServer = createHttpServer(deps.httpReceiveTimeouts ?? { ...HTTP_RECEIVE_TIMEOUTS }, (req, res) => {
      if (graphqlRoute && isGraphqlRequest(req.url, GRAPHQL_PATH)) graphqlRoute(req, res);
      else if (webhookRoute && isWebhookRequest(req.url, WEBHOOK_BASE_PATH)) webhookRoute(req, res);
      else app(req, res);
    });
    // First: every request gets its id and one access-log line, whatever answers it (the GraphQL route too).
    const accessLogger = fixedFieldsLogger(logger, { component: 'http' });
    app.use(requestIds(), accessLog(accessLogger));
    const onScrapeError = (err: unknown) => logger.warn({ err }, 'metrics scrape failed');
    const onClientError = (kind: string) => metrics.clientErrors.inc({ kind });
    // The GET-only routes below answer another method 405, not the 404 of a path nothing is served at.
    const notAllowed = getOnlyHandler(onClientError);
    // With METRICS_PORT, /metrics lives only on its own listener (started below, next to the main one).
    if (config.metricsPort === undefined) {
      const scrape = metricsHandler(metrics, onScrapeError);
      app.route(METRICS_PATH).get((req, res) => void scrape(req, res)).all(notAllowed);
    }

    let ready = false;
    app
      .route('/healthz')
      .get((_req, res) => {
        res.json({ status: 'ok' });
      })
      .all(notAllowed);
    app.route('/readyz').get(async (_req, res) => {
      const storageOk = await storage.ping().catch(() => false);
      const upstreamProblem = upstreamHealth.problem();
      const reasons = [
        ...(ready ? [] : ['the gateway is starting or stopping']),
        ...(storageOk ? [] : ['storage is unreachable']),
        ...(upstreamProblem ? [upstreamProblem] : []),
      ];
      res.status(reasons.length === 0 ? 200 : 503).json({
        status: reasons.length === 0 ? 'ready' : 'not ready',
        checks: { started: ready, storage: storageOk, upstream: !upstreamProblem },
        ...(reasons.length > 0 ? { reason: reasons.join('; ') } : {}),
      });
    }).all(notAllowed);

    // Live status: webhooks → ingest → event log → subscriptions, plus the poller and the
    // reconciler. With PORT=0 the default PUBLIC_URL names no real port, so callbacks then go to the
    // address actually bound.
    let boundUrl: string | undefined;
    // Exotel objects, held near on this replica in front of the shared cache; the event log keeps it coherent.
    const entityCache = createNearEntityCache(createEntityCache(storage.cache, exotel.accountSid), { events: storage.events, accountSid: exotel.accountSid });
    nearCacheStats = entityCache.stats;
    onStop('near-cache unsubscribed', () => entityCache.close());
    const live = createLive({
      config,
      storage,
      exotel,
      logger,
      accessLogger,
      entities: entityCache,
      durationScale: simulator ? config.simulatorTimeScale : 1,
      publicUrl: () => (boundUrl && /:0$/.test(config.publicUrl) ? boundUrl : config.publicUrl),
      onWebhook: (kind, outcome) => metrics.webhooks.inc({ kind, outcome }),
      onReconciled: (kind) => metrics.reconcilerRecoveries.inc({ kind }),
      onReconcilerGaveUp: (kind, reason) => metrics.reconcilerGivenUp.inc({ kind, reason }),
      onIncomingRetry: (event) => {
        const kind = 'incoming-call';
        if (event.outcome === 'retried') metrics.webhookRetries.inc({ kind });
        else if (event.outcome === 'stored') metrics.webhooksStoredLate.inc({ kind });
        else metrics.webhooksDropped.inc({ kind, reason: event.reason });
      },
      ...(deps.liveTimings ? { timings: deps.liveTimings } : {}),
    });
    onStop('live poller and reconciler stopped, subscriptions ended', () => live.stop());
    // After the HTTP drain, so no webhook adds one; before storage closes, so the last attempts can still store.
    onStop('incoming calls waiting for storage tried once more, the rest dropped', () => live.incomingRetries.stop());
    scrapeSources.push(() => metrics.webhookRetriesPending.set(live.incomingRetries.pending));
    incomingCallUrl = () => live.callbackUrls.incomingCall;
    webhookRoute = live.webhookRoute;

    // GraphQL over HTTP. One schema and one context factory, shared with graphql-ws.
    const graphqlSchema = createSchema({ Subscription: createSubscriptionResolvers(live.feed) });
    const contextFactory = createContextFactory({
      config,
      logger,
      exotel,
      storage,
      cache: entityCache,
      idempotency: createIdempotency(storage.idempotency),
      mode,
      version: gatewayVersion(),
      callbackUrls: live.callbackUrls,
      live: live.hooks,
    });
    // Abuse limits: the same rules on HTTP and graphql-ws, all checked before execution.
    // Warm answers: made before Apollo, which later wraps the schema's resolvers.
    const warmAnswers = createWarmAnswers({ schema: graphqlSchema, near: entityCache });
    const armor = createArmor({ limits: config.limits, production: config.production });
    // Cost with list items counted (MAX_COST, list caps): needs the variables, so it runs beside validation.
    const cost = createCostCheck(graphqlSchema, config.limits.maxCost);
    // Client mistakes are counted, never logged as errors (src/http/client-errors.ts).
    const onResponseWithheld = (bytes: number) => {
      onClientError('limit');
      logger.info({ bytes, maxResponseBytes: config.limits.maxResponseBytes }, 'answer over MAX_RESPONSE_BYTES withheld');
    };
    const graphql = await createApollo({
      schema: graphqlSchema,
      config,
      logger,
      httpServer,
      validationRules: armor.validationRules,
      allowBatchedHttpRequests: true,
      plugins: [graphqlMetricsPlugin(metrics), warmAnswers.plugin, clientErrorsPlugin({ onClientError }), ...(tracingEnabled() ? [operationSpansPlugin()] : [])],
      drainGraceMs: SHUTDOWN.httpDrainGraceMs,
    });
    onStop('http drained: no new connections, in-flight GraphQL and webhooks finished', () => graphql.stop());
    graphqlRoute = graphqlHttpHandler({
      apollo: graphql.apollo,
      contextFactory,
      authenticate,
      maxBodyBytes: config.limits.maxBodyBytes,
      guard: graphqlGuard({ maxBatchSize: config.limits.maxBatchSize, checkTokens: armor.checkTokens, cost, production: config.production, onClientError }),
      responseSize: responseSizeGuard({ maxBytes: config.limits.maxResponseBytes, onWithheld: onResponseWithheld }),
      cors: corsFor(config.limits.corsAllowedOrigins),
      accessLogger,
      logger,
      onClientError,
      // Operation spans (src/tracing/graphql.ts) only while tracing is on: otherwise nothing is added.
      tracing: tracingEnabled(),
    });
    // Self-hosted GraphiQL (no CDN); Apollo's own landing page is disabled in src/graphql/apollo.ts.
    app.use(graphiqlRouter({ mode, exampleCallSid: simulator ? latestFinishedCall(simulator) : undefined }));
    // Last: a path nothing answered gets a JSON 404 naming where GraphQL is (src/http/not-found.ts).
    app.use(notFoundHandler({ graphqlPath: GRAPHQL_PATH, graphiqlPath: GRAPHIQL_PATH, onClientError }));
    const graphqlWs = createGraphqlWs({
      httpServer,
      path: GRAPHQL_PATH,
      schema: graphqlSchema,
      contextFactory,
      authenticate,
      limits: config.limits,
      production: config.production,
      logger: logger.child({ component: 'graphql-ws' }),
      validationRules: armor.wsValidationRules,
      introspection: createIntrospectionPolicy(config.introspection),
      checkTokens: armor.checkTokens,
      cost,
      onClientError,
      onResponseWithheld,
      maskMessage: armor.maskSuggestions,
      onOperation: (operation) => metrics.observeOperation(operation),
      closeGraceMs: SHUTDOWN.wsCloseGraceMs,
      keepAliveMs: deps.wsKeepAliveMs,
    });
    scrapeSources.push(() => {
      metrics.activeSockets.set(graphqlWs.socketCount());
      metrics.activeSubscriptions.set(graphqlWs.operationCount());
    });

    await new Promise<void>((resolve, reject) => {
      httpServer.once('error', reject);
      httpServer.listen(config.port, config.host, () => {
        httpServer.off('error', reject);
        resolve();
      });
    });
    onStop('http server closed', () => closeHttp(httpServer));
    let metricsListener: MetricsListener | undefined;
    if (config.metricsPort !== undefined) {
      metricsListener = await listenMetrics(metrics, { host: config.host, port: config.metricsPort, onError: onScrapeError });
      onStop('metrics listener closed', () => metricsListener?.close());
    }

    const { port } = httpServer.address() as AddressInfo;
    const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
    const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
    boundUrl = url;
    // Before the HTTP server closes: open sockets would hold it open.
    onStop('graphql-ws sockets closed with 1001', () => graphqlWs.close());
    ready = true;
    onStop('readiness off', () => void (ready = false));
    const shutdown = async () => {
      const t0 = Date.now();
      await teardown();
      logger.info({ elapsedMs: Date.now() - t0 }, 'gateway stopped');
    };

    const metricsUrl = metricsListener?.url ?? `${url}${METRICS_PATH}`;
    // Where to scrape, said at start: with METRICS_PORT it is not the port the clients use.
    logger.info({ url, metricsUrl, mode, storage: storage.kind, exotelBaseUrl: exotelBaseUrl ?? 'injected' }, 'gateway listening');
    const unreachable = config.exotel && exotelBaseUrl ? unreachablePublicUrl(config.publicUrl, exotelBaseUrl) : undefined;
    if (unreachable) logger.warn(unreachable);
    let stopping: Promise<void> | undefined;
    return {
      url,
      wsUrl: `${url.replace(/^http/, 'ws')}/graphql`,
      metricsUrl,
      mode,
      config,
      logger,
      exotel,
      storage,
      simulator,
      httpServer,
      metrics,
      warmAnswers,
      stop: () => (stopping ??= shutdown()),
    };
  } catch (err) {
    await teardown();
    throw err;
  }
}

/** The newest finished call of the simulator's seeded history: GraphiQL's `call(sid:)` example answers with it. */
function latestFinishedCall(simulator: Simulator): string | undefined {
  let latest: { Sid: string; DateCreated: string } | undefined;
  for (const call of simulator.calls.list()) {
    if (call.Status === 'completed' && (!latest || call.DateCreated > latest.DateCreated)) latest = call;
  }
  return latest?.Sid;
}

function closeHttp(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // Idle keep-alive sockets would hold close() open; in-flight requests finish first.
    server.closeIdleConnections();
  });
}

/** Values scrubbed from every log line as a last line of defence. */
export function secretsOf(config: Config): string[] {
  return [
    config.exotel?.apiToken,
    config.exotel?.apiKey,
    config.webhookSecret,
    ...config.apiKeys.map((k) => k.secret),
  ].filter((s): s is string => Boolean(s));
}
