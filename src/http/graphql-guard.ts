/**
 * Checks on a parsed GraphQL-over-HTTP body before Apollo sees it (issue #7): how many operations one
 * batched request may carry, and how many tokens each document may have. Both answer 400 with a
 * GraphQL-shaped body, so nothing is parsed, validated, executed — or sent to Exotel.
 */
import type { RequestHandler } from 'express';
import type { GatewayError } from '../errors.js';
import { limitError, LimitReason } from '../graphql/armor.js';

export interface GraphqlGuardOptions {
  maxBatchSize: number;
  checkTokens(source: string): GatewayError | undefined;
  production: boolean;
}

const errorBody = (error: GatewayError) => ({ errors: [{ message: error.message, extensions: error.extensions }] });

export function graphqlGuard(options: GraphqlGuardOptions): RequestHandler {
  return (req, res, next) => {
    const body: unknown = req.body;
    if (Array.isArray(body) && body.length > options.maxBatchSize) {
      res.status(400).json(errorBody(limitError(LimitReason.MAX_BATCH_SIZE, 'too many operations in one batch', options.maxBatchSize, options.production)));
      return;
    }
    const pieces: unknown[] = Array.isArray(body) ? body : [req.method === 'GET' ? req.query : body];
    for (const piece of pieces) {
      const query = piece && typeof piece === 'object' ? (piece as { query?: unknown }).query : undefined;
      const tooMany = typeof query === 'string' ? options.checkTokens(query) : undefined;
      if (tooMany) {
        res.status(400).json(errorBody(tooMany));
        return;
      }
    }
    next();
  };
}
