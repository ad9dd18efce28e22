/**
 * What a request's Accept header lets /graphql answer in, decided as Apollo decides it — the same media
 * types, the same negotiator — but before the operation runs: Apollo negotiates only after executing, and
 * its 406 then reaches a client whose mutation has already placed the call or sent the SMS. The gateway's
 * own refusals are answered in the negotiated type too, as Apollo answers its own.
 */
import Negotiator from 'negotiator';

/** The media types Apollo answers a single result in (its MEDIA_TYPES, chooseContentTypeForSingleResultResponse). */
const ANSWERABLE = ['application/json; charset=utf-8', 'application/graphql-response+json; charset=utf-8', 'application/json; callbackSpec=1.0; charset=utf-8'];

/** What Apollo answers in when the Accept header allows nothing it can (its error answers' fallback). */
export const DEFAULT_ANSWER_TYPE = 'application/json; charset=utf-8';

/** The media type /graphql answers `accept` in (absent or empty: JSON), or undefined when it allows none. */
export function answerMediaType(accept: string | undefined): string | undefined {
  if (!accept) return DEFAULT_ANSWER_TYPE;
  return new Negotiator({ headers: { accept } }).mediaType(ANSWERABLE);
}
