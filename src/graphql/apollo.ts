/**
 * GraphQL over HTTP at /graphql: Apollo Server 5 on express 5 (GET and POST, CSRF prevention on), on
 * the http.Server that graphql-ws shares. Bodies that never become a GraphQL request — malformed JSON,
 * too large, not JSON at all — still get a GraphQL-shaped answer with a contract code.
 */
import type { Server } from 'node:http';
import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { expressMiddleware } from '@as-integrations/express5';
import express, { type ErrorRequestHandler, type RequestHandler } from 'express';
import { GraphQLError, type GraphQLSchema, type ValidationRule } from 'graphql';
import type { Principal } from '../auth.js';
import type { Config } from '../config.js';
import { ErrorCode, formatError, isGatewayError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ContextFactory, GraphQLContext } from './context.js';
import { createIntrospectionPolicy, introspectionPlugin } from './introspection.js';

/** Where GraphQL over HTTP lives (the README's endpoint table); graphql-ws upgrades on the same path. */
export const GRAPHQL_PATH = '/graphql';

export interface ApolloHandlerOptions {
  schema: GraphQLSchema;
  contextFactory: ContextFactory;
  config: Config;
  logger: Logger;
  /** Drained on stop so in-flight requests finish. */
  httpServer: Server;
  /** The caller behind an Authorization header; throws UNAUTHENTICATED. Absent → no client auth. */
  authenticate?: (authorization: string | undefined) => Principal;
  /** More Apollo plugins (metrics, limits), run after the built-in ones. */
  plugins?: Array<ApolloServerPlugin<GraphQLContext>>;
  /** More validation rules (depth, cost…), run before execution. */
  validationRules?: ValidationRule[];
  /** Express handlers run on the parsed body before Apollo (batch size, token limits). */
  guards?: RequestHandler[];
  /** Batched HTTP requests (a JSON array of operations) are accepted; their size is capped by a guard. */
  allowBatchedHttpRequests?: boolean;
  /** How long stop() lets in-flight HTTP requests finish before cutting connections, ms (default 10 000). */
  drainGraceMs?: number;
}

export interface ApolloHandler {
  /** Mount at the app root: it answers GRAPHQL_PATH only. */
  router: express.Router;
  apollo: ApolloServer<GraphQLContext>;
  stop(): Promise<void>;
}

/**
 * Headers that prove a browser made a CORS preflight, so the request cannot be a cross-site forgery:
 * Apollo's two defaults, and `Authorization`, which no browser sends cross-origin without a preflight.
 * This lets urql's default GET for short queries, and any client sending its key, through; a GET with
 * none of them (and a non-JSON POST) is still refused.
 */
export const CSRF_PREFLIGHT_HEADERS = ['x-apollo-operation-name', 'apollo-require-preflight', 'authorization'];

/** A GraphQL-over-HTTP error body for requests that never reached GraphQL. */
function errorBody(message: string, code: string = ErrorCode.BAD_USER_INPUT) {
  return { errors: [{ message, extensions: { code } }] };
}

/** HTTP status of an error thrown while building the context (auth), so clients see 401/403, not 500. */
function httpStatusOf(code: string): number {
  if (code === ErrorCode.UNAUTHENTICATED) return 401;
  if (code === ErrorCode.FORBIDDEN) return 403;
  return 500;
}

/** body-parser errors → 400/413/415 with a GraphQL-shaped body. */
const bodyErrors: ErrorRequestHandler = (err: { type?: unknown; status?: unknown }, _req, res, next) => {
  switch (err?.type) {
    case 'entity.parse.failed':
      res.status(400).json(errorBody('The request body is not valid JSON.'));
      return;
    case 'entity.too.large':
      res.status(413).json(errorBody('The request body is too large.'));
      return;
    case 'encoding.unsupported':
    case 'charset.unsupported':
      res.status(415).json(errorBody('Unsupported body encoding or charset; send UTF-8 JSON.'));
      return;
    case 'request.aborted':
    case 'request.size.invalid':
    case 'stream.encoding.set':
      res.status(400).json(errorBody('The request body could not be read.'));
      return;
    default:
      next(err);
  }
};

/**
 * POST bodies must be JSON (GraphQL over HTTP). Anything else would reach Apollo with no body and be
 * answered as a CSRF block or a 500; a clear 415 says what to send instead.
 */
const requireJsonPost: RequestHandler = (req, res, next) => {
  if (req.method === 'POST' && req.body === undefined) {
    res.status(415).json(errorBody('POST /graphql needs "Content-Type: application/json" and a JSON body.'));
    return;
  }
  // GET requests carry the operation in the query string; Apollo's express integration still wants a body.
  if (req.body === undefined) req.body = {};
  next();
};

/** Logs errors the client sees as INTERNAL_SERVER_ERROR, with their stack, server-side only. */
export function logInternalErrors(errors: readonly GraphQLError[], logger: Logger, operationName: string | null | undefined): void {
  for (const error of errors) {
    const original = error.originalError;
    // What the client is told decides: a contract code other than INTERNAL_SERVER_ERROR (a syntax or
    // validation mistake, a wrong variable, an Exotel refusal) is not a server fault. Client mistakes are
    // counted (gateway_client_errors_total) and only traced at debug here.
    const code = formatError(error.toJSON(), error, { production: false }).extensions?.code;
    if (code !== ErrorCode.INTERNAL_SERVER_ERROR) {
      logger.debug({ code, reason: error.extensions?.code, message: error.message, operationName }, 'GraphQL operation answered with an error');
      continue;
    }
    logger.error({ err: original ?? error, operationName, path: error.path }, 'internal error in a GraphQL operation');
  }
}

function internalErrorLogging(logger: Logger): ApolloServerPlugin<GraphQLContext> {
  return {
    async requestDidStart() {
      return {
        async didEncounterErrors({ errors, contextValue, operationName }) {
          logInternalErrors(errors, contextValue?.logger ?? logger, operationName);
        },
      };
    },
  };
}

/** Builds and starts Apollo; answer with its router mounted on the app. */
export async function createApolloHandler(options: ApolloHandlerOptions): Promise<ApolloHandler> {
  const { config, logger } = options;
  const apollo = new ApolloServer<GraphQLContext>({
    schema: options.schema,
    csrfPrevention: { requestHeaders: CSRF_PREFLIGHT_HEADERS },
    allowBatchedHttpRequests: options.allowBatchedHttpRequests ?? false,
    // Who may introspect is decided by the INTROSPECTION policy (introspectionPlugin), whose refusal names
    // the variable; Apollo's own rule would tell the client to "pass introspection: true to ApolloServer".
    introspection: true,
    // Stack traces go to the log (internalErrorLogging), never into a response.
    includeStacktraceInErrorResponses: false,
    hideSchemaDetailsFromClientErrors: config.production,
    formatError: (formatted, error) => formatError(formatted, error, { production: config.production }),
    // main.ts owns the signals and the shutdown order.
    stopOnTerminationSignals: false,
    logger,
    validationRules: options.validationRules ?? [],
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer: options.httpServer, stopGracePeriodMillis: options.drainGraceMs ?? 10_000 }),
      // GraphiQL is self-hosted at /graphiql; Apollo's landing page would load from a CDN.
      ApolloServerPluginLandingPageDisabled(),
      internalErrorLogging(logger),
      introspectionPlugin(createIntrospectionPolicy(config.introspection)),
      ...(options.plugins ?? []),
    ],
  });
  await apollo.start();

  const router = express.Router();
  router.use(
    GRAPHQL_PATH,
    express.json({ limit: config.limits.maxBodyBytes }),
    bodyErrors,
    requireJsonPost,
    ...(options.guards ?? []),
    expressMiddleware(apollo, {
      context: async ({ req }) => {
        let auth: Principal | null = null;
        if (options.authenticate) {
          try {
            auth = options.authenticate(req.headers.authorization);
          } catch (err) {
            if (!isGatewayError(err)) throw err;
            throw new GraphQLError(err.message, { originalError: err, extensions: { ...err.extensions, http: { status: httpStatusOf(err.code) } } });
          }
        }
        return options.contextFactory({ requestId: req.header('x-request-id'), auth });
      },
    }),
  );

  let stopping: Promise<void> | undefined;
  return { router, apollo, stop: () => (stopping ??= apollo.stop()) };
}
