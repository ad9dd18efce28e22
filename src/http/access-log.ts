/**
 * One structured line per HTTP request: request id, method, route, status, duration. The route is a
 * fixed label, never the raw URL: webhook paths carry their secret token and query strings can carry
 * phone numbers, so neither is logged.
 */
import type { Request, RequestHandler } from 'express';
import type { Logger } from '../logger.js';
import { requestIdOf } from './request-id.js';

const QUIET = new Set(['/healthz', '/readyz', '/metrics']);
const KNOWN = ['/graphql', '/graphiql', '/healthz', '/readyz', '/metrics'];
const WEBHOOK = /^\/webhooks\/exotel\/[^/]+\/([a-z-]{1,32})\/?$/;

/** A bounded, secret-free name for the request's path. */
export function routeOf(req: Pick<Request, 'originalUrl'>): string {
  // originalUrl: routers mounted on a path rewrite req.url/req.path while they run.
  const path = req.originalUrl.split('?')[0] ?? '';
  const webhook = WEBHOOK.exec(path);
  if (webhook) return `/webhooks/exotel/:token/${webhook[1]}`;
  if (path.startsWith('/webhooks/')) return '/webhooks/(other)';
  for (const known of KNOWN) if (path === known || path.startsWith(`${known}/`)) return known;
  return '(other)';
}

/** What one access-log line holds; `route` is already a fixed label (routeOf). */
export interface AccessLine {
  requestId: string | undefined;
  method: string;
  route: string;
  status: number;
  /** process.hrtime.bigint() when the request came in. */
  started: bigint;
}

/** Writes one access-log line: at debug for probes and scrapes, at info for the rest. */
export function logAccess(logger: Logger, { requestId, method, route, status, started }: AccessLine): void {
  const line = { requestId, method, route, status, durationMs: Number((process.hrtime.bigint() - started) / 1000n) / 1000 };
  if (QUIET.has(route)) logger.debug(line, 'http request');
  else logger.info(line, 'http request');
}

export function accessLog(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    res.once('finish', () => {
      logAccess(logger, { requestId: requestIdOf(res), method: req.method, route: routeOf(req), status: res.statusCode, started });
    });
    next();
  };
}
