/**
 * CORS for GraphQL over HTTP, so a browser app on another origin (a support dashboard, a screen pop) can read
 * the gateway's answers: only for the origins in CORS_ALLOWED_ORIGINS, and no CORS headers at all without
 * them (same-origin pages such as /graphiql need none). Keys travel in `Authorization`, never in cookies, so
 * credentials are not allowed. Apollo's CSRF prevention is unchanged: a preflighted request passes it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import cors from 'cors';
import { REQUEST_ID_HEADER } from './request-id.js';

/** How long a browser may reuse a preflight's answer, seconds (browsers cap it, Chromium at 2 hours). */
const PREFLIGHT_MAX_AGE_S = 600;

/** Runs CORS over a request: true when it goes on to the route, false when answered here (a preflight). */
export type CorsStep = (req: IncomingMessage, res: ServerResponse) => boolean;

/** The CORS step of a route, or undefined when no origin is allowed. */
export function corsFor(allowedOrigins: readonly string[]): CorsStep | undefined {
  if (allowedOrigins.length === 0) return undefined;
  const handle = cors({
    origin: [...allowedOrigins],
    methods: ['GET', 'POST'],
    // Unset, the cors package echoes whatever headers the preflight asks for.
    maxAge: PREFLIGHT_MAX_AGE_S,
    // What a browser app may read besides the simple headers: the id to quote in a support ticket.
    exposedHeaders: [REQUEST_ID_HEADER],
  });
  // With fixed options the cors package decides synchronously: it calls next, or answers a preflight itself.
  return (req, res) => {
    let goesOn = false;
    handle(req, res, () => (goesOn = true));
    return goesOn;
  };
}
