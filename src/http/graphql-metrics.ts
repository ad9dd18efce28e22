/**
 * An Apollo plugin counting every GraphQL operation by name, type and outcome (ok, or the contract
 * code of its first error) with its latency (gateway_graphql_operations_total and
 * gateway_graphql_operation_duration_seconds).
 */
import type { ApolloServerPlugin } from '@apollo/server';
import { Kind, type DocumentNode } from 'graphql';
import { ErrorCode } from '../errors.js';
import type { Metrics } from '../metrics.js';

const CODES = new Set<string>(Object.values(ErrorCode));

/** The name of a document's only operation, if it has exactly one. */
function nameOf(document: DocumentNode): string | undefined {
  const operations = document.definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION);
  return operations.length === 1 && operations[0]?.kind === Kind.OPERATION_DEFINITION ? operations[0].name?.value : undefined;
}

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
        async willSendResponse({ response, operation, operationName, request, document }) {
          const body = response.body;
          const errors = body.kind === 'single' ? body.singleResult.errors : body.initialResult.errors;
          metrics.observeOperation({
            // A document that failed validation has no resolved operation, but its name is still useful.
            name: operationName ?? request.operationName ?? (document ? nameOf(document) : undefined),
            type: operation?.operation ?? 'unknown',
            outcome: outcomeOf(errors),
            durationSeconds: Number(process.hrtime.bigint() - started) / 1e9,
          });
        },
      };
    },
  };
}
