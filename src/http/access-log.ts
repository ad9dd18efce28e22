/**
 * One structured line per HTTP request: request id, method, route, status, duration. The route is a
 * fixed label, never the raw URL: webhook paths carry their secret token and query strings can carry
 * phone numbers, so neither is logged.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Request, RequestHandler } from 'express';
import type { Logger } from '../logger.js';
import { REQUEST_ID_HEADER, requestIdFrom, requestIdOf } from './request-id.js';

const QUIET = new Set(['/healthz', '/readyz', '/metrics']);
const KNOWN = ['/graphql', '/graphiql', '/healthz', '/readyz', '/metrics'];
const WEBHOOK = /^\/webhooks\/exotel\/[^/]+\/([a-z-]{1,32})$/;

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

/** Writes one access-log line: at debug for probes and scrapes, at info for the rest and for a client's mistake (4xx) on them. */
export function logAccess(logger: Logger, { requestId, method, route, status, started }: AccessLine): void {
  const line = { requestId, method, route, status, durationMs: Number((process.hrtime.bigint() - started) / 1000n) / 1000 };
  if (QUIET.has(route) && (status < 400 || status >= 500)) logger.debug(line, 'http request');
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

export interface NodeRouteOptions {
  accessLogger: Logger;
  /** The access log's fixed label for a request (routeOf for paths that carry secrets). */
  route: (req: IncomingMessage) => string;
  /** Logs a fault of the route's own code. */
  logFault: (err: unknown, requestId: string) => void;
  /** Answers such a fault when no answer has started yet (else the socket is cut). */
  answerFault: (res: ServerResponse) => void;
}

/**
 * The frame of a route answered on node:http in front of express: its request id (kept when sane,
 * echoed), one access-log line when it is done, and a fault of its own answered rather than left hanging.
 */
export function nodeRoute(
  handle: (req: IncomingMessage, res: ServerResponse, requestId: string) => Promise<void>,
  options: NodeRouteOptions,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const started = process.hrtime.bigint();
    const requestId = requestIdFrom(req.headers[REQUEST_ID_HEADER]);
    res.setHeader('X-Request-Id', requestId);
    handle(req, res, requestId)
      .catch((err: unknown) => {
        options.logFault(err, requestId);
        if (!res.headersSent) options.answerFault(res);
        else res.destroy();
      })
      .finally(() => logAccess(options.accessLogger, { requestId, method: req.method ?? '', route: options.route(req), status: res.statusCode, started }));
  };
}
