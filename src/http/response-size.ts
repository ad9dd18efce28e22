/**
 * MAX_RESPONSE_BYTES on GraphQL over HTTP: an answer (or a batch's answers) larger than the limit is not
 * sent; the client gets a 400 BAD_USER_INPUT (`reason: MAX_RESPONSE_BYTES`) instead — unless the request
 * holds a mutation, whose answer is the only account of what was done. It checks the one string Apollo
 * answers with: the answer is serialised once, as it would be anyway, and a small answer costs a length
 * comparison.
 */
import { bodyCarriesMutation, exceedsBytes, responseTooLargeError } from '../graphql/cost.js';

export interface ResponseSizeOptions {
  maxBytes: number;
  /** Told of each withheld answer (metrics, an info log line). */
  onWithheld?: (bytes: number) => void;
}

/**
 * The body to send instead of `answer`, or undefined to send it as it is. `request` is what the client
 * asked: a POST's parsed body (one request or a batch), or a GET's query-string fields.
 */
export type ResponseSizeGuard = (answer: string, request: unknown) => string | undefined;

export function responseSizeGuard(options: ResponseSizeOptions): ResponseSizeGuard {
  return (answer, request) => {
    // The request is parsed again only for an answer over the limit: a mutation's answer is always sent.
    if (!exceedsBytes(answer, options.maxBytes) || bodyCarriesMutation(request)) return undefined;
    options.onWithheld?.(Buffer.byteLength(answer));
    const error = responseTooLargeError(options.maxBytes);
    return JSON.stringify({ errors: [{ message: error.message, extensions: error.extensions }] });
  };
}
