/**
 * Whether a request's Accept header lets /graphql answer it, decided as Apollo decides it — the same media
 * types, the same negotiator — but before the operation runs: Apollo negotiates only after executing, and
 * its 406 then reaches a client whose mutation has already placed the call or sent the SMS.
 */
import Negotiator from 'negotiator';

/** The media types Apollo answers a single result in (its MEDIA_TYPES, chooseContentTypeForSingleResultResponse). */
const ANSWERABLE = ['application/json; charset=utf-8', 'application/graphql-response+json; charset=utf-8', 'application/json; callbackSpec=1.0; charset=utf-8'];

/** True when `accept` (absent or empty: anything) allows one of the media types /graphql answers in. */
export function acceptsGraphqlAnswer(accept: string | undefined): boolean {
  if (!accept) return true;
  return new Negotiator({ headers: { accept } }).mediaType(ANSWERABLE) !== undefined;
}
