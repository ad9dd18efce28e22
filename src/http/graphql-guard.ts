/**
 * Checks on a parsed GraphQL-over-HTTP body before Apollo sees it: how many operations one batched
 * request may carry, how many tokens each document may have, and what the request costs (list items
 * counted, a batch as a whole; src/graphql/cost.ts). A refusal is answered 400 with a GraphQL-shaped body
 * (src/http/graphql-http.ts), so nothing of the request is executed — or sent to Exotel.
 */
import { ErrorCode, GatewayError } from '../errors.js';
import { limitError, LimitReason } from '../graphql/armor.js';
import type { CostCheck } from '../graphql/cost.js';

export interface GraphqlGuardOptions {
  maxBatchSize: number;
  checkTokens(source: string): GatewayError | undefined;
  /** MAX_COST and list caps over every operation of the request (which coerces the variables, defaults applied). */
  cost?: CostCheck;
  /** Counts a refusal (a client mistake of kind "limit" or "input"). */
  onClientError?: (kind: string) => void;
  production: boolean;
}

/** GET carries variables as JSON text; POST as an object. Anything else costs as no variables. */
function variablesOf(value: unknown): Record<string, unknown> | undefined {
  if (typeof value === 'string') {
    try {
      return variablesOf(JSON.parse(value));
    } catch {
      return undefined;
    }
  }
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

const isRecord = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);

/**
 * What Apollo would refuse in one piece of a batch (its POST body rules), or undefined. Checked here for
 * every piece before any runs: Apollo runs a batch's pieces side by side and answers a refused piece by
 * failing the whole batch with that one error, after a mutation beside it has already reached Exotel.
 */
function batchPieceProblem(piece: unknown): string | undefined {
  if (!isRecord(piece) || Object.keys(piece).length === 0) return 'must be a JSON object with a `query`';
  if (piece.query && typeof piece.query !== 'string') return '`query` must be a string';
  for (const name of ['variables', 'extensions'] as const) {
    const value = piece[name];
    if (value !== undefined && value !== null && !isRecord(value)) return `\`${name}\` must be an object${typeof value === 'string' ? ', not a JSON-encoded string' : ''}`;
  }
  if (piece.operationName !== undefined && piece.operationName !== null && typeof piece.operationName !== 'string') return '`operationName` must be a string';
  return undefined;
}

/**
 * The guard over one request's operations: a POST's parsed body (one request or a batch), or a GET's
 * query-string fields. Answers the refusal, counted, or undefined when the request may go on to Apollo.
 */
export type GraphqlGuard = (request: unknown) => GatewayError | undefined;

export function graphqlGuard(options: GraphqlGuardOptions): GraphqlGuard {
  const refuse = (error: GatewayError, kind = error.reason?.startsWith('MAX_') ? 'limit' : 'input') => {
    options.onClientError?.(kind);
    return error;
  };
  return (request) => {
    if (Array.isArray(request) && request.length > options.maxBatchSize) {
      return refuse(limitError(LimitReason.MAX_BATCH_SIZE, 'too many operations in one batch', options.maxBatchSize, options.production));
    }
    if (Array.isArray(request)) {
      for (const [index, piece] of request.entries()) {
        const problem = batchPieceProblem(piece);
        if (problem === undefined) continue;
        const message = `The batch's operation at index ${index}: ${problem}. Nothing in the batch was run.`;
        // Counted as Apollo counts its own refusal of such a body (errors.ts clientErrorKind, BAD_REQUEST).
        return refuse(new GatewayError(ErrorCode.BAD_USER_INPUT, message, { reason: 'BAD_REQUEST' }), 'validation');
      }
    }
    const pieces: unknown[] = Array.isArray(request) ? request : [request];
    const operations: Array<{ query: string; operationName: string | undefined; variables: Record<string, unknown> | undefined }> = [];
    for (const piece of pieces) {
      const { query, operationName, variables } = (piece && typeof piece === 'object' ? piece : {}) as Record<string, unknown>;
      const tooMany = typeof query === 'string' ? options.checkTokens(query) : undefined;
      if (tooMany) return refuse(tooMany);
      if (typeof query === 'string') operations.push({ query, operationName: typeof operationName === 'string' ? operationName : undefined, variables: variablesOf(variables) });
    }
    const tooCostly = options.cost?.check(operations);
    return tooCostly ? refuse(tooCostly) : undefined;
  };
}
