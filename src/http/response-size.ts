/**
 * MAX_RESPONSE_BYTES on GraphQL over HTTP: an answer (or a batch's answers) larger than the limit is not
 * sent; the client gets a 400 BAD_USER_INPUT (`reason: MAX_RESPONSE_BYTES`) instead — unless the request
 * holds a mutation, whose answer is the only account of what was done. Mounted before
 * Apollo's express middleware, it checks the one string Apollo hands to `res.send`: the answer is
 * serialised once, as it would be anyway, and a small answer costs a length comparison.
 */
import type { RequestHandler } from 'express';
import { bodyCarriesMutation, exceedsBytes, responseTooLargeError } from '../graphql/cost.js';

export interface ResponseSizeOptions {
  maxBytes: number;
  /** Told of each withheld answer (metrics, an info log line). */
  onWithheld?: (bytes: number) => void;
}

export function responseSizeGuard(options: ResponseSizeOptions): RequestHandler {
  return (req, res, next) => {
    const send = res.send.bind(res);
    res.send = (body?: unknown) => {
      // The request is parsed again only for an answer over the limit: a mutation's answer is always sent.
      if (typeof body === 'string' && exceedsBytes(body, options.maxBytes) && !bodyCarriesMutation(req.body ?? req.query)) {
        options.onWithheld?.(Buffer.byteLength(body));
        const error = responseTooLargeError(options.maxBytes);
        res.status(400).type('application/json; charset=utf-8');
        return send(JSON.stringify({ errors: [{ message: error.message, extensions: error.extensions }] }));
      }
      return send(body);
    };
    next();
  };
}
