/**
 * The request headers GraphiQL sends: the API key from the page's key field (shared by every tab, kept
 * across reloads), the tab's own headers, and the rule that keeps an unfilled template from being sent.
 * Kept apart from app.tsx so it is testable without a browser.
 */

/** Placeholder of the API key in the template; a header still carrying it was never filled in. */
export const API_KEY_PLACEHOLDER = 'YOUR_GATEWAY_API_KEY';

/** Headers tab content of a new GraphiQL tab: JSONC, so the hint is a comment and nothing is sent by default. */
export const DEFAULT_HEADERS = `{
  // The API key field above is sent by every tab. Headers here go with this tab's requests only,
  // and an "Authorization" here replaces the key field's for this tab, e.g.:
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

/**
 * What goes after `Bearer`, from what a user pasted into the key field: the secret itself, or by mistake
 * a whole `Bearer …` value or a whole GATEWAY_API_KEYS entry (`name:secret:scopes`), whose secret is used.
 */
export function secretOf(pasted: string): string {
  const value = pasted.trim().replace(/^bearer\s+/i, '');
  const entry = /^[^:\s]+:([^:\s]+):(read|read\+write)(:[\d.]+)?$/.exec(value);
  return entry?.[1] ?? value;
}

/** The tab's headers plus the key field's Authorization, unless the tab sets its own. */
export function withApiKey(headers: Record<string, string>, pastedKey: string): Record<string, string> {
  const secret = secretOf(pastedKey);
  if (!secret || headers.authorization !== undefined) return headers;
  return { ...headers, authorization: `Bearer ${secret}` };
}

/** graphql-ws close codes the gateway uses, in words a GraphiQL user can act on. */
const CLOSE_REASONS: Record<number, string> = {
  1001: 'the gateway is shutting down; run the operation again',
  1009: 'the message was too big for the gateway (WS_MAX_PAYLOAD_BYTES)',
  4400: 'the gateway could not read a message',
  4403: 'the API key is missing or wrong: put the secret part of name:secret:scopes in the API key field',
  4408: 'the connection was not initialised in time',
  4429: 'this API key has too many sockets open',
};

/** The error GraphiQL shows when the gateway closed the socket (or it could not be opened). */
export function socketClosedMessage(code: number | undefined, reason: string | undefined): string {
  const known = code !== undefined ? CLOSE_REASONS[code] : undefined;
  // Where GraphiQL has its own words, the server's reason is cut to its name ("Forbidden: send connectionParams
  // …" speaks to code that opens sockets itself, not to someone typing in the key field).
  const shown = known ? reason?.split(':')[0] : reason;
  const why = known ?? (reason || 'the connection failed');
  return `The gateway closed the WebSocket${code !== undefined ? ` (${code}${shown ? ` ${shown}` : ''})` : ''}: ${why}`;
}
