/**
 * Client mistakes on GraphQL over HTTP, kept quiet and counted: each error the client caused (syntax,
 * validation, variables, limits, auth, a refused argument) adds to gateway_client_errors_total{kind} and is
 * never logged as an error — only real server faults are (apollo.ts logInternalErrors). A subscription sent
 * over plain HTTP is the client's mistake too: it is answered 400 pointing at graphql-ws, not run. Bodies
 * refused before Apollo (bad JSON, too large, not JSON) are counted by the route (src/http/graphql-http.ts).
 */
import type { ApolloServerPlugin, GraphQLRequestListener } from '@apollo/server';
import { GraphQLError } from 'graphql';
import { clientErrorKind, ErrorCode } from '../errors.js';

export interface ClientErrorsPluginOptions {
  /** Counts one client mistake of `kind`. */
  onClientError(kind: string): void;
}

export function clientErrorsPlugin<TContext extends object>(options: ClientErrorsPluginOptions): ApolloServerPlugin<TContext> {
  // One listener for every request: it keeps nothing per request.
  const listener: GraphQLRequestListener<TContext> = {
    async didResolveOperation({ operation }) {
      if (operation?.operation === 'subscription') {
        throw new GraphQLError('Subscriptions are served over graphql-ws (protocol graphql-transport-ws) on this same path, not over plain HTTP.', {
          extensions: { code: 'OPERATION_RESOLUTION_FAILURE', http: { status: 400 } },
        });
      }
    },
    async willSendResponse({ response }) {
      const body = response.body;
      const errors = body.kind === 'single' ? body.singleResult.errors : body.initialResult.errors;
      for (const error of errors ?? []) {
        const kind = clientErrorKind(error);
        if (kind && error.extensions?.code !== ErrorCode.INTERNAL_SERVER_ERROR) options.onClientError(kind);
      }
    },
  };
  return {
    // A missing or wrong key fails while the context is built, before any request hook runs.
    async contextCreationDidFail() {
      options.onClientError('auth');
    },
    // A request Apollo refuses before it is an operation: CSRF prevention, or not a GraphQL-over-HTTP request.
    async invalidRequestWasReceived() {
      options.onClientError('validation');
    },
    async requestDidStart() {
      return listener;
    },
  };
}
