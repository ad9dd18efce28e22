/**
 * GraphQL over WebSocket on the same http.Server and path as HTTP (/graphql), protocol
 * `graphql-transport-ws` only (graphql-ws). Clients authenticate in `connection_init`
 * (`connectionParams.authorization: "Bearer <key>"`); a missing or wrong key closes the socket with
 * 4403 Forbidden before any operation runs. Each operation gets a fresh context from the same factory
 * as HTTP, so loaders are per operation and resolvers cannot tell the transports apart.
 */
import type { Server } from 'node:http';
import { GraphQLError, parse, specifiedRules, validate, type ExecutionArgs, type GraphQLSchema, type ValidationRule } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import type { Principal } from '../auth.js';
import type { Limits } from '../config.js';
import { ErrorCode, formatError, isGatewayError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ContextFactory } from './context.js';

/**
 * The only subprotocol spoken: useServer installs graphql-ws's handleProtocols, so a client asking only for
 * another (the legacy `graphql-ws` of subscriptions-transport-ws) fails the handshake.
 */
export const WS_PROTOCOL = 'graphql-transport-ws';

export interface GraphqlWsOptions {
  httpServer: Server;
  /** Same path as GraphQL over HTTP. */
  path: string;
  schema: GraphQLSchema;
  contextFactory: ContextFactory;
  /** The caller behind an Authorization value; throws UNAUTHENTICATED. Absent → no client auth. */
  authenticate?: (authorization: string | undefined) => Principal;
  limits: Pick<Limits, 'wsMaxPayloadBytes' | 'wsConnectionInitTimeoutMs' | 'wsMaxSubscriptionsPerSocket' | 'wsMaxSocketsPerKey' | 'wsAllowedOrigins'>;
  production: boolean;
  logger: Logger;
  /** Extra validation rules (depth, cost…), the same ones HTTP runs. */
  validationRules?: readonly ValidationRule[];
  /** Keep-alive ping interval, ms (graphql-ws default 12 s). */
  keepAliveMs?: number;
}

export interface GraphqlWs {
  wss: WebSocketServer;
  /** Open sockets right now (metrics: gateway_ws_sockets). */
  socketCount(): number;
  /** Operations running right now on every socket (metrics: gateway_ws_subscriptions). */
  operationCount(): number;
  /** Closes every socket (1001 Going Away) and the server. */
  close(): Promise<void>;
}

type Extra = {
  principal?: Principal | null;
};

/** Attaches graphql-ws to `httpServer` at `path`. */
export function createGraphqlWs(options: GraphqlWsOptions): GraphqlWs {
  const { logger, limits } = options;
  const allowedOrigins = new Set(limits.wsAllowedOrigins);
  const socketsPerKey = new Map<string, number>();
  let operations = 0;

  const wss = new WebSocketServer({
    server: options.httpServer,
    path: options.path,
    maxPayload: limits.wsMaxPayloadBytes,
    // Browsers always send Origin; refusing foreign ones stops other sites riding a user's session.
    verifyClient: ({ origin }, done) => {
      if (allowedOrigins.size === 0 || !origin || allowedOrigins.has(origin)) done(true);
      else {
        logger.warn({ origin }, 'graphql-ws connection from a disallowed origin refused');
        done(false, 403, 'Forbidden');
      }
    },
  });

  const format = (error: GraphQLError) => formatError(error.toJSON(), error, { production: options.production });
  const rules = [...specifiedRules, ...(options.validationRules ?? [])];

  const disposable = useServer<Record<string, unknown> | undefined, Extra>(
    {
      schema: options.schema,
      connectionInitWaitTimeout: limits.wsConnectionInitTimeoutMs,
      onConnect: (ctx) => {
        let principal: Principal | null = null;
        if (options.authenticate) {
          const raw = ctx.connectionParams?.authorization ?? ctx.connectionParams?.Authorization;
          try {
            principal = options.authenticate(typeof raw === 'string' ? raw : undefined);
          } catch (err) {
            if (!isGatewayError(err)) throw err;
            logger.info({ reason: err.message }, 'graphql-ws connection refused: not authenticated');
            return false;
          }
        }
        const key = principal?.name ?? 'anonymous';
        const open = socketsPerKey.get(key) ?? 0;
        if (open >= limits.wsMaxSocketsPerKey) {
          logger.warn({ key }, 'graphql-ws connection refused: too many sockets for this key');
          return false;
        }
        socketsPerKey.set(key, open + 1);
        ctx.extra.principal = principal;
        return true;
      },
      onClose: (ctx) => {
        // Only sockets that were counted (acknowledged) are uncounted.
        if (ctx.extra.principal === undefined) return;
        const key = ctx.extra.principal?.name ?? 'anonymous';
        const left = (socketsPerKey.get(key) ?? 1) - 1;
        if (left > 0) socketsPerKey.set(key, left);
        else socketsPerKey.delete(key);
      },
      onSubscribe: (ctx, _id, payload): ExecutionArgs | readonly GraphQLError[] => {
        // graphql-ws has already registered this operation in ctx.subscriptions.
        if (Object.keys(ctx.subscriptions).length > limits.wsMaxSubscriptionsPerSocket) {
          return [new GraphQLError(`At most ${limits.wsMaxSubscriptionsPerSocket} operations at once on one socket`, { extensions: { code: ErrorCode.RATE_LIMITED, retryAfterSeconds: 1 } })];
        }
        let document;
        try {
          document = parse(payload.query);
        } catch (err) {
          return [err instanceof GraphQLError ? err : new GraphQLError('The query could not be parsed')];
        }
        const errors = validate(options.schema, document, rules);
        if (errors.length > 0) return errors;
        operations++;
        return {
          schema: options.schema,
          document,
          variableValues: payload.variables ?? null,
          operationName: payload.operationName ?? null,
          contextValue: options.contextFactory({ auth: ctx.extra.principal ?? null }),
        };
      },
      // Runs for every operation that got past onSubscribe, however it ended (graphql-ws guarantees it).
      onComplete: () => {
        operations = Math.max(0, operations - 1);
      },
      onError: (_ctx, _id, _payload, errors) => errors.map(format),
      onNext: (_ctx, _id, _payload, _args, result) => (result.errors ? { ...result, errors: result.errors.map(format) } : undefined),
    },
    wss,
    options.keepAliveMs,
  );

  let closing: Promise<void> | undefined;
  return {
    wss,
    socketCount: () => wss.clients.size,
    operationCount: () => operations,
    close: () =>
      (closing ??= (async () => {
        await disposable.dispose();
        for (const socket of wss.clients) socket.terminate();
        await new Promise<void>((resolve) => wss.close(() => resolve()));
      })()),
  };
}

