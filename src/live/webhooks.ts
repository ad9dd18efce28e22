/**
 * Exotel → gateway: the webhook routes under /webhooks/exotel/{token}/{kind}. Transport only: check the
 * token, parse the body (form-urlencoded, multipart or JSON; Passthru query strings), validate it into a
 * typed update and hand it to ingest(). The answer is 200 only once the event is stored, 503 when it
 * could not be (so Exotel retries), 400 for what cannot be understood, 413 for an oversized body, and
 * 404 — the same as for any unknown path — for a missing or wrong token.
 */
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import type { IsoDateTime } from '../exotel/types.js';
import { requestLogger } from '../http/request-id.js';
import { assertNever } from '../errors.js';
import type { Logger } from '../logger.js';
import { parseCallStatusCallback, parseSmsStatusCallback, type ParseResult } from './callback-parse.js';
import { CALLBACK_KINDS, REQUEST_REF, REQUEST_REF_PARAM, type CallbackKind } from './callback-urls.js';
import { parseIncomingCall, ingestIncomingCall, type IncomingCallRequest } from './incoming.js';
import { ingest, IngestStorageError, type IngestDeps } from './ingest.js';
import { multipartBoundary, parseMultipartFields } from './multipart.js';
import type { LiveUpdate } from './updates.js';
import { traceIngest } from '../tracing/spans.js';

export interface WebhookRouterOptions {
  /** Constant-time token check (createTokenCheck). */
  checkToken(kind: CallbackKind, presented: string): boolean;
  accountSid: string;
  ingestDeps: IngestDeps;
  logger: Logger;
  /** Largest accepted body, bytes; callbacks are a few hundred bytes. */
  maxBodyBytes: number;
  nowIso: () => IsoDateTime;
  /** Observes every answered webhook (metrics: gateway_webhooks_total). */
  onWebhook?: WebhookObserver;
}

/** What became of one webhook, in the words of the gateway_webhooks_total metric. */
export type WebhookOutcome = 'accepted' | 'duplicate' | 'backward' | 'rejected' | 'unavailable';
export type WebhookObserver = (kind: CallbackKind | 'unknown', outcome: WebhookOutcome, httpStatus: number) => void;

const isKind = (value: string): value is CallbackKind => (CALLBACK_KINDS as readonly string[]).includes(value);

/** Query or body values as plain strings: a repeated key keeps its first value. */
function flatten(input: unknown): Record<string, unknown> {
  if (!input || typeof input !== 'object') return {};
  return Object.fromEntries(Object.entries(input as Record<string, unknown>).map(([k, v]) => [k, Array.isArray(v) && typeof v[0] === 'string' ? v[0] : v]));
}

/** The express Router to mount at WEBHOOK_BASE_PATH. */
export function createWebhookRouter(options: WebhookRouterOptions): Router {
  const router = express.Router();
  const { logger } = options;
  const limit = options.maxBodyBytes;
  const notFound = (res: Response) => res.status(404).type('text/plain').send('Not Found');

  const guard = (req: Request, res: Response, next: NextFunction) => {
    const kind = String(req.params.kind);
    if (!isKind(kind) || !options.checkToken(kind, String(req.params.token))) {
      // The token is never logged: it is as good as a password for this URL.
      requestLogger(logger, res).warn({ kind: isKind(kind) ? kind : 'unknown', ip: req.ip }, 'webhook with a wrong or missing token rejected');
      options.onWebhook?.('unknown', 'rejected', 404);
      notFound(res);
      return;
    }
    const allowed = kind === 'incoming-call' ? ['GET', 'POST'] : ['POST'];
    if (!allowed.includes(req.method)) {
      res.status(405).set('Allow', allowed.join(', ')).type('text/plain').send('Method Not Allowed');
      return;
    }
    next();
  };

  router.all(
    '/:token/:kind',
    guard,
    // Parsers run only after the token check, so strangers cannot make the gateway read bodies.
    express.urlencoded({ extended: false, limit, parameterLimit: 200 }),
    express.json({ limit, strict: true }),
    express.raw({ type: 'multipart/form-data', limit }),
    async (req: Request, res: Response) => {
      const kind = req.params.kind as CallbackKind;
      // The request's child logger only when a line is written: a stored callback writes none here.
      const logger = () => requestLogger(options.logger, res);
      const answer = (status: number, outcome: WebhookOutcome, body: string) => {
        options.onWebhook?.(kind, outcome, status);
        res.status(status).type('text/plain').send(body);
      };

      const fields = bodyFields(req);
      if (!fields) {
        logger().warn({ kind }, 'webhook body is not well-formed multipart');
        answer(400, 'rejected', 'Bad Request: malformed multipart body');
        return;
      }
      const parsed = parse(kind, kind === 'incoming-call' ? { ...flatten(req.query), ...fields } : fields);
      if (!parsed.ok) {
        logger().warn({ kind, reason: parsed.reason }, 'malformed webhook rejected');
        answer(400, 'rejected', `Bad Request: ${parsed.reason}`);
        return;
      }
      try {
        const update = parsed.update;
        const result = await traceIngest({ kind, sid: 'smsSid' in update ? update.smsSid : update.callSid, headers: req.headers }, async (span) => {
          const ingested = update.kind === 'incoming-request' ? await ingestIncomingCall(update, options.ingestDeps) : await ingest(withRequestRef(req, update), options.ingestDeps);
          span.setAttribute('webhook.outcome', ingested.outcome === 'published' ? 'published' : ingested.reason);
          // On Redis each replica's fan-out starts a trace of its own: the event id ties them to this one.
          if ('event' in ingested) span.setAttribute('gateway.event.id', ingested.event.id);
          return ingested;
        });
        if (options.logger.isLevelEnabled('debug')) logger().debug({ kind, outcome: result.outcome, eventId: 'event' in result ? result.event.id : undefined }, 'webhook ingested');
        const outcome: WebhookOutcome = result.outcome === 'published' ? 'accepted' : result.reason === 'backwards' ? 'backward' : 'duplicate';
        answer(200, outcome, kind === 'incoming-call' ? '' : 'OK');
      } catch (err) {
        if (!(err instanceof IngestStorageError)) throw err;
        logger().error({ err, kind }, 'webhook could not be stored; answering 503 so Exotel retries');
        // A Passthru is not retried and a non-200 would send the caller down the flow's error branch.
        if (kind === 'incoming-call') answer(200, 'unavailable', '');
        else answer(503, 'unavailable', 'Service Unavailable: try again');
      }
    },
  );

  router.use((_req: Request, res: Response) => notFound(res));
  // Body parser failures: too large → 413, unreadable → 400. Nothing was stored.
  router.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const e = err as { status?: number; type?: string };
    const logger = requestLogger(options.logger, res);
    const status = e.type === 'entity.too.large' ? 413 : e.status && e.status >= 400 && e.status < 500 ? e.status : 500;
    if (status === 500) logger.error({ err }, 'webhook failed');
    else logger.warn({ status, type: e.type }, 'webhook body rejected');
    options.onWebhook?.('unknown', status === 500 ? 'unavailable' : 'rejected', status);
    res.status(status).type('text/plain').send(status === 413 ? 'Payload Too Large' : status === 500 ? 'Internal Server Error' : 'Bad Request');
  });

  function parse(kind: CallbackKind, fields: Record<string, unknown>): ParseResult<LiveUpdate | IncomingCallRequest> {
    const now = options.nowIso();
    switch (kind) {
      case 'call-status':
        return parseCallStatusCallback(fields, now);
      case 'sms-status':
        return parseSmsStatusCallback(fields, now);
      case 'incoming-call':
        return parseIncomingCall(fields, now);
      default:
        return assertNever(kind);
    }
  }

  return router;
}

/**
 * The update with the reference of the request that created its call or SMS, when the callback URL
 * carries one (callback-urls.ts): stored with the status, it resolves that request's unknown outcome.
 */
function withRequestRef(req: Request, update: LiveUpdate): LiveUpdate {
  const ref = req.query[REQUEST_REF_PARAM];
  if (update.kind === 'incoming' || typeof ref !== 'string' || !REQUEST_REF.test(ref)) return update;
  return { ...update, requestRef: ref };
}

/** The body as a flat field record, whatever its encoding; undefined for broken multipart. */
function bodyFields(req: Request): Record<string, unknown> | undefined {
  if (Buffer.isBuffer(req.body)) {
    const boundary = multipartBoundary(req.headers['content-type']);
    return boundary ? parseMultipartFields(req.body, boundary) : undefined;
  }
  if (req.body && typeof req.body === 'object' && !Array.isArray(req.body)) return flatten(req.body);
  return {};
}
