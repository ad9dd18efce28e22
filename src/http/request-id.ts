/**
 * One request id per HTTP request: a sane incoming `X-Request-Id` is kept, anything else is
 * replaced by a fresh UUID; the id is echoed in the response and handed on to GraphQL (context.ts reads
 * the header), webhooks and the access log.
 */
import { randomUUID } from 'node:crypto';
import type { RequestHandler, Response } from 'express';
import type { Logger } from '../logger.js';

export const REQUEST_ID_HEADER = 'x-request-id';

/** What an incoming id may look like: short, and nothing a log or header could be confused by. */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The incoming id when it is sane, else a new one. */
export function requestIdFrom(incoming: string | string[] | undefined): string {
  return typeof incoming === 'string' && SANE_REQUEST_ID.test(incoming) ? incoming : randomUUID();
}

/** Middleware: settles the request id, puts it in res.locals.requestId and the response header. */
export function requestIds(): RequestHandler {
  return (req, res, next) => {
    const id = requestIdFrom(req.headers[REQUEST_ID_HEADER]);
    // Normalised in place so every later reader of the header (the GraphQL context) sees the same id.
    req.headers[REQUEST_ID_HEADER] = id;
    res.locals.requestId = id;
    res.setHeader('X-Request-Id', id);
    next();
  };
}

/** The request id of a response, for handlers' logs. */
export function requestIdOf(res: Response): string | undefined {
  const id: unknown = res.locals.requestId;
  return typeof id === 'string' ? id : undefined;
}

/** `logger` bound to the request's id, when it has one. */
export function requestLogger(logger: Logger, res: Response): Logger {
  const requestId = requestIdOf(res);
  return requestId ? logger.child({ requestId }) : logger;
}
