/**
 * An Apollo plugin counting every GraphQL operation by name, type and outcome (ok, or the contract
 * code of its first error) with its latency (gateway_graphql_operations_total and
 * gateway_graphql_operation_duration_seconds).
 */
import type { ApolloServerPlugin } from '@apollo/server';
import { ErrorCode } from '../errors.js';
import type { Metrics } from '../metrics.js';

const CODES = new Set<string>(Object.values(ErrorCode));

/** The outcome label of a finished operation: "ok", or a contract code (never free text). */
export function outcomeOf(errors: ReadonlyArray<{ extensions?: Record<string, unknown> | undefined }> | undefined): string {
  if (!errors || errors.length === 0) return 'ok';
  const code = String(errors[0]?.extensions?.code ?? '');
  return CODES.has(code) ? code : ErrorCode.INTERNAL_SERVER_ERROR;
}

export function graphqlMetricsPlugin<TContext extends object>(metrics: Metrics): ApolloServerPlugin<TContext> {
  return {
    async requestDidStart() {
      const started = process.hrtime.bigint();
      return {
        async willSendResponse({ response, operation, operationName, request }) {
          const body = response.body;
          const errors = body.kind === 'single' ? body.singleResult.errors : body.initialResult.errors;
          metrics.observeOperation({
            name: operationName ?? request.operationName,
            type: operation?.operation ?? 'unknown',
            outcome: outcomeOf(errors),
            durationSeconds: Number(process.hrtime.bigint() - started) / 1e9,
          });
        },
      };
    },
  };
}
