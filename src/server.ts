/**
 * createServer(config) → a running gateway. Wiring only: every piece is built by its own module and
 * torn down by stop() in the reverse order it was started.
 */
import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type { Config } from './config.js';
import { createLogger, type Logger } from './logger.js';
import type { ExotelApi, UpstreamRequestEvent } from './exotel/types.js';
import { createExotelClient } from './exotel/client.js';
import { createSimulator, type Simulator } from './simulator/index.js';
import { createStorage } from './storage/index.js';
import type { Storage } from './storage/types.js';
import { createAuthenticator } from './auth.js';
import { createEntityCache } from './cache/entities.js';
import { createApolloHandler } from './graphql/apollo.js';
import { createContextFactory } from './graphql/context.js';
import { createIdempotency } from './graphql/idempotency.js';
import { createSchema } from './graphql/schema.js';
import { gatewayVersion } from './graphql/version.js';
import { GRAPHQL_PATH } from './graphql/apollo.js';
import { createSubscriptionResolvers } from './graphql/resolvers/subscription.js';
import { createGraphqlWs } from './graphql/ws.js';
import { WEBHOOK_BASE_PATH } from './live/callback-urls.js';
import { createLive } from './live/index.js';
import { graphiqlRouter } from './graphiql/route.js';

export interface GatewayDeps {
  logger?: Logger;
  /** Use this Exotel instead of building a client (tests with a fake). */
  exotel?: ExotelApi;
  storage?: Storage;
  /** Observes every upstream request (metrics, tests). */
  onUpstreamRequest?: (event: UpstreamRequestEvent) => void;
}

export interface Gateway {
  /** http://host:port of the gateway. */
  url: string;
  /** ws://host:port/graphql. */
  wsUrl: string;
  mode: 'SIMULATOR' | 'LIVE';
  config: Config;
  logger: Logger;
  exotel: ExotelApi;
  storage: Storage;
  /** The in-process simulator in simulator mode. */
  simulator: Simulator | undefined;
  httpServer: Server;
  /** Stops accepting, drains, closes sockets and storage. Safe to call twice. */
  stop(): Promise<void>;
}

type Stopper = () => Promise<void> | void;

export async function createServer(config: Config, deps: GatewayDeps = {}): Promise<Gateway> {
  const logger = deps.logger ?? createLogger({ level: config.logLevel, secrets: secretsOf(config) });
  // Torn down last-in first-out: the order things were started in is the order they depend on each other.
  const stoppers: Stopper[] = [];
  const stopAll = async () => {
    for (const stop of stoppers.splice(0).reverse()) {
      try {
        await stop();
      } catch (err) {
        logger.warn({ err }, 'error while stopping');
      }
    }
  };

  try {
    const storage =
      deps.storage ??
      (await createStorage(config, logger, config.redisUrl ? { keyPrefix: config.redisKeyPrefix, expectedReplicas: config.replicas } : {}));
    if (!deps.storage) stoppers.push(() => storage.close());

    let simulator: Simulator | undefined;
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
        });
        stoppers.push(() => simulator?.stop());
        credentials = { accountSid: simulator.accountSid, apiKey: simulator.apiKey, apiToken: simulator.apiToken };
        baseUrl = simulator.url;
        logger.warn({ simulatorUrl: simulator.url }, 'SIMULATOR MODE: no Exotel credentials set; calls and SMS go to the built-in Exotel simulator');
      }
      exotel = createExotelClient({
        ...credentials,
        region: config.exotelRegion,
        baseUrl,
        budget: storage.rateBudget(`exotel:${credentials.accountSid}`, config.ratePerMinute, config.rateWindowMs),
        queueDeadlineMs: config.rateQueueDeadlineMs,
        timeoutMs: config.upstreamTimeoutMs,
        backgroundShare: config.livePollBudgetShare,
        logger: logger.child({ component: 'exotel' }),
        onRequest: deps.onUpstreamRequest,
      });
    }

    const app = express();
    app.disable('x-powered-by');
    const httpServer = createHttpServer(app);

    let ready = false;
    app.get('/healthz', (_req, res) => {
      res.json({ status: 'ok' });
    });
    app.get('/readyz', async (_req, res) => {
      const storageOk = await storage.ping().catch(() => false);
      const ok = ready && storageOk;
      res.status(ok ? 200 : 503).json({ status: ok ? 'ready' : 'not ready', checks: { started: ready, storage: storageOk } });
    });

    // Live status (issue #5): webhooks → ingest → event log → subscriptions, plus the poller and the
    // reconciler. With PORT=0 the default PUBLIC_URL names no real port, so callbacks then go to the
    // address actually bound.
    let boundUrl: string | undefined;
    const live = createLive({
      config,
      storage,
      exotel,
      logger,
      durationScale: simulator ? config.simulatorTimeScale : 1,
      publicUrl: () => (boundUrl && /:0$/.test(config.publicUrl) ? boundUrl : config.publicUrl),
    });
    stoppers.push(() => live.stop());
    app.use(WEBHOOK_BASE_PATH, live.router);

    // GraphQL over HTTP (issue #4). One schema and one context factory, shared with graphql-ws.
    const entityCache = createEntityCache(storage.cache, exotel.accountSid);
    const graphqlSchema = createSchema({ Subscription: createSubscriptionResolvers(live.feed) });
    const contextFactory = createContextFactory({
      config,
      logger,
      exotel,
      storage,
      cache: entityCache,
      idempotency: createIdempotency(storage.idempotency, { onStoreError: (err) => logger.warn({ err }, 'idempotency record not written') }),
      mode: config.exotel || deps.exotel ? 'LIVE' : 'SIMULATOR',
      version: gatewayVersion(),
      callbackUrls: live.callbackUrls,
      live: live.hooks,
    });
    const graphql = await createApolloHandler({
      schema: graphqlSchema,
      contextFactory,
      config,
      logger,
      httpServer,
      authenticate: createAuthenticator(config.apiKeys).authenticate,
    });
    stoppers.push(() => graphql.stop());
    app.use(graphql.router);
    // Self-hosted GraphiQL (no CDN); Apollo's own landing page is disabled in src/graphql/apollo.ts.
    app.use('/graphiql', graphiqlRouter({ mode: config.exotel || deps.exotel ? 'LIVE' : 'SIMULATOR' }));
    const graphqlWs = createGraphqlWs({
      httpServer,
      path: GRAPHQL_PATH,
      schema: graphqlSchema,
      contextFactory,
      authenticate: createAuthenticator(config.apiKeys).authenticate,
      limits: config.limits,
      production: config.production,
      logger: logger.child({ component: 'graphql-ws' }),
    });

    await new Promise<void>((resolve, reject) => {
      httpServer.once('error', reject);
      httpServer.listen(config.port, config.host, () => {
        httpServer.off('error', reject);
        resolve();
      });
    });
    stoppers.push(() => closeHttp(httpServer));

    const { port } = httpServer.address() as AddressInfo;
    const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
    const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
    boundUrl = url;
    // Runs before the HTTP server closes (last in, first out): open sockets would hold it open.
    stoppers.push(() => graphqlWs.close());
    ready = true;
    stoppers.push(() => {
      ready = false;
    });

    const mode = config.exotel || deps.exotel ? 'LIVE' : 'SIMULATOR';
    logger.info({ url, mode, storage: storage.kind }, 'gateway listening');
    let stopping: Promise<void> | undefined;
    return {
      url,
      wsUrl: `${url.replace(/^http/, 'ws')}/graphql`,
      mode,
      config,
      logger,
      exotel,
      storage,
      simulator,
      httpServer,
      stop: () => (stopping ??= stopAll()),
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
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
