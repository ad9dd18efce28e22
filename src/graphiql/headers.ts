/**
 * The request-headers template GraphiQL shows, and the rule that keeps an unfilled template from being
 * sent. Kept apart from app.tsx so it is testable without a browser.
 */

/** Placeholder of the API key in the template; a header still carrying it was never filled in. */
export const API_KEY_PLACEHOLDER = 'YOUR_GATEWAY_API_KEY';

/** Headers tab content of a new GraphiQL tab: JSONC, so the hint is a comment and nothing is sent by default. */
export const DEFAULT_HEADERS = `{
  // With GATEWAY_API_KEYS set, uncomment and put your key:
  // "Authorization": "Bearer ${API_KEY_PLACEHOLDER}"
}
`;

/**
 * Drops headers whose value still holds the placeholder, and lower-cases names: HTTP does not mind, and
 * over graphql-ws the headers become connectionParams, where the gateway reads `authorization`.
 */
export function cleanHeaders(headers: Record<string, unknown> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (typeof value !== 'string' || value.includes(API_KEY_PLACEHOLDER)) continue;
    out[name.toLowerCase()] = value;
  }
  return out;
}
