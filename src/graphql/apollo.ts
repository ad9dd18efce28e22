/**
 * Apollo Server 5 for GraphQL over HTTP at /graphql (GET and POST, CSRF prevention on): built and started
 * here, driven by src/http/graphql-http.ts through Apollo's integration API on the http.Server that
 * graphql-ws shares.
 */
import type { Server } from 'node:http';
import { ApolloServer, type ApolloServerPlugin, type GraphQLRequestListener } from '@apollo/server';
import { ApolloServerPluginCacheControlDisabled, ApolloServerPluginInlineTraceDisabled, ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import type { GraphQLError, GraphQLSchema, ValidationRule } from 'graphql';
import type { Config } from '../config.js';
import { ErrorCode, formatError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { GraphQLContext } from './context.js';
import { createIntrospectionPolicy, introspectionPlugin } from './introspection.js';

/** Where GraphQL over HTTP lives (the README's endpoint table); graphql-ws upgrades on the same path. */
export const GRAPHQL_PATH = '/graphql';

export interface ApolloOptions {
  schema: GraphQLSchema;
  config: Config;
  logger: Logger;
  /** Drained on stop so in-flight requests finish. */
  httpServer: Server;
  /** More Apollo plugins (metrics, limits), run after the built-in ones. */
  plugins?: Array<ApolloServerPlugin<GraphQLContext>>;
  /** More validation rules (depth, cost…), run before execution. */
  validationRules?: ValidationRule[];
  /** Batched HTTP requests (a JSON array of operations) are accepted; their size is capped by a guard. */
  allowBatchedHttpRequests?: boolean;
  /** How long stop() lets in-flight HTTP requests finish before cutting connections, ms (default 10 000). */
  drainGraceMs?: number;
}

export interface Apollo {
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
  // One listener for every request: it keeps nothing per request.
  const listener: GraphQLRequestListener<GraphQLContext> = {
    async didEncounterErrors({ errors, contextValue, operationName }) {
      logInternalErrors(errors, contextValue?.logger ?? logger, operationName);
    },
  };
  return {
    async requestDidStart() {
      return listener;
    },
  };
}

/** Builds and starts Apollo. */
export async function createApollo(options: ApolloOptions): Promise<Apollo> {
  const { config, logger } = options;
  const apollo = new ApolloServer<GraphQLContext>({
    schema: options.schema,
    csrfPrevention: { requestHeaders: CSRF_PREFLIGHT_HEADERS },
    allowBatchedHttpRequests: options.allowBatchedHttpRequests ?? false,
    // No automatic persisted queries: a hash-only request would run a stored document the HTTP guard never
    // read, with new variables, past MAX_COST, the list caps and the mutation exception of MAX_RESPONSE_BYTES.
    persistedQueries: false,
    // Who may introspect is decided by the INTROSPECTION policy (introspectionPlugin), whose refusal names
    // the variable; Apollo's own rule would tell the client to "pass introspection: true to ApolloServer".
    introspection: true,
    // Stack traces go to the log (internalErrorLogging), never into a response.
    includeStacktraceInErrorResponses: false,
    // Not Apollo's suggestion mask: its pattern takes time quadratic in a long literal that repeats "Did you
    // mean". formatError takes the hints out in production, of every error (src/errors.ts maskSuggestions).
    hideSchemaDetailsFromClientErrors: false,
    formatError: (formatted, error) => formatError(formatted, error, { production: config.production }),
    // main.ts owns the signals and the shutdown order.
    stopOnTerminationSignals: false,
    logger,
    validationRules: options.validationRules ?? [],
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer: options.httpServer, stopGracePeriodMillis: options.drainGraceMs ?? 10_000 }),
      // GraphiQL is self-hosted at /graphiql; Apollo's landing page would load from a CDN.
      ApolloServerPluginLandingPageDisabled(),
      // The schema has no @cacheControl hints: every answer is per client and `no-store`, which the HTTP
      // route sets. Apollo's cache-control plugin would only work that out again per request and wrap
      // every resolver to observe fields.
      ApolloServerPluginCacheControlDisabled(),
      // Not a federation subgraph: no inline traces to build.
      ApolloServerPluginInlineTraceDisabled(),
      internalErrorLogging(logger),
      introspectionPlugin(createIntrospectionPolicy(config.introspection)),
      ...(options.plugins ?? []),
    ],
  });
  await apollo.start();
  let stopping: Promise<void> | undefined;
  return { apollo, stop: () => (stopping ??= apollo.stop()) };
}
