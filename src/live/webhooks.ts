/**
 * Exotel → gateway: the webhook routes under /webhooks/exotel/{token}/{kind}. Transport only: check the
 * token, parse the body (form-urlencoded, multipart or JSON; Passthru query strings), validate it into a
 * typed update and hand it to ingest(). The answer is 200 only once the event is stored, 503 when it
 * could not be (so Exotel retries), 400 for what cannot be understood, 413 for an oversized body, and
 * 404 — the same as for any unknown path — for a missing or wrong token. A Passthru is the exception: it
 * is answered 200 even when it could not be stored, and handed to `onUnstoredIncoming` to be stored later.
 *
 * A storage outage fails every callback until it ends, Exotel's retries included: it is logged once, at
 * error, then each failure at debug (all of them counted in gateway_webhooks_total) until a webhook is
 * stored again, which is logged at info with the outage's count; the next outage is logged again.
 *
 * Answered on node:http in front of the express app (server.ts), as GraphQL is: express gives every request
 * it handles new prototypes (req and res), which makes a share of each request's objects outlive the
 * young generation, and at hundreds of callbacks a second that is what sets the pace of full garbage
 * collections. The body parsers are express's own (body-parser), run here in the same order; a form is
 * read by body-parser as text and parsed with node's querystring (parseForm).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseQueryString } from 'node:querystring';
import express from 'express';
import type { IsoDateTime } from '../exotel/types.js';
import { nodeRoute, routeOf } from '../http/access-log.js';
import { assertNever } from '../assert-never.js';
import type { Logger } from '../logger.js';
import { parseCallStatusCallback, parseSmsStatusCallback, type ParseResult } from './callback-parse.js';
import { CALLBACK_KINDS, REQUEST_REF, REQUEST_REF_PARAM, type CallbackKind } from './callback-urls.js';
import { parseIncomingCall, ingestIncomingCall, type IncomingCallRequest } from './incoming.js';
import { ingest, IngestStorageError, type IngestDeps } from './ingest.js';
import { multipartBoundary, parseMultipartFields } from './multipart.js';
import type { LiveUpdate } from './updates.js';
import { traceIngest } from '../tracing/spans.js';
import { createOutageLog } from '../outage-log.js';

export interface WebhookRouteOptions {
  /** The path the routes live under (WEBHOOK_BASE_PATH). */
  basePath: string;
  /** Constant-time token check (createTokenCheck). */
  checkToken(kind: CallbackKind, presented: string): boolean;
  accountSid: string;
  ingestDeps: IngestDeps;
  logger: Logger;
  /** Where the access-log line of each request goes. */
  accessLogger: Logger;
  /** Largest accepted body, bytes; callbacks are a few hundred bytes. */
  maxBodyBytes: number;
  nowIso: () => IsoDateTime;
  /** Observes every answered webhook (metrics: gateway_webhooks_total). */
  onWebhook?: WebhookObserver;
  /**
   * Takes a Passthru or Connect-applet request answered 200 although it could not be stored (incoming-retries.ts).
   * Without it such a request is only logged.
   */
  onUnstoredIncoming?: (request: IncomingCallRequest) => void;
}

/** What became of one webhook, in the words of the gateway_webhooks_total metric. */
export type WebhookOutcome = 'accepted' | 'duplicate' | 'backward' | 'rejected' | 'unavailable';
export type WebhookObserver = (kind: CallbackKind | 'unknown', outcome: WebhookOutcome, httpStatus: number) => void;

export type WebhookRoute = (req: IncomingMessage, res: ServerResponse) => void;

/** A request with the fields the body parsers set. */
type ParsedRequest = IncomingMessage & { body?: unknown };
type Middleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

const isKind = (value: string): value is CallbackKind => (CALLBACK_KINDS as readonly string[]).includes(value);

/**
 * A form-urlencoded query or body, with no cap on its parameters: node's parser takes time in proportion
 * to the text, which the body limit (or, for a query string, the header limit) already bounds, so any body
 * the limit lets in is read whole.
 */
function parseForm(text: string, latin1 = false): Record<string, unknown> {
  return parseQueryString(text, undefined, undefined, { maxKeys: 0, ...(latin1 ? { decodeURIComponent: decodeLatin1 } : {}) });
}

/** A form declared `charset=iso-8859-1` (as body-parser's urlencoded read it): each percent-escape is one Latin-1 byte. */
const LATIN1_FORM = /;\s*charset\s*=\s*"?(?:iso-8859-1|latin1)"?\s*(?:;|$)/i;
const decodeLatin1 = (text: string) => text.replace(/%([0-9a-f]{2})/gi, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));

/** Query or body values as plain strings: a repeated key keeps its first value. */
function flatten(input: unknown): Record<string, unknown> {
  if (!input || typeof input !== 'object') return {};
  return Object.fromEntries(Object.entries(input as Record<string, unknown>).map(([k, v]) => [k, Array.isArray(v) && typeof v[0] === 'string' ? v[0] : v]));
}

/** True for a request under `basePath` (the webhook routes answer everything there, unknown paths with 404). */
export function isWebhookRequest(url: string | undefined, basePath: string): boolean {
  if (url === undefined || !url.startsWith(basePath)) return false;
  const next = url.charCodeAt(basePath.length);
  return Number.isNaN(next) || next === 47 /* / */ || next === 63 /* ? */;
}

/** The node:http handler for every request under `options.basePath`. */
export function createWebhookRoute(options: WebhookRouteOptions): WebhookRoute {
  const limit = options.maxBodyBytes;
  // Parsers run only after the token check, so strangers cannot make the gateway read bodies.
  const parsers: Middleware[] = [
    // Read as text and parsed by parseForm (below), not by express.urlencoded: its parser (qs) needs a cap
    // on parameters, and a cap under what 64 KiB can hold refuses a long Passthru (a flow's Legs[…]).
    express.text({ type: 'application/x-www-form-urlencoded', limit }) as unknown as Middleware,
    express.json({ limit, strict: true }) as unknown as Middleware,
    express.raw({ type: 'multipart/form-data', limit }) as unknown as Middleware,
  ];
  const readBody = (req: IncomingMessage, res: ServerResponse) =>
    new Promise<void>((resolve, reject) => {
      let i = 0;
      const next = (err?: unknown) => {
        if (err) reject(err);
        else if (i === parsers.length) resolve();
        else parsers[i++]!(req, res, next);
      };
      next();
    });

  const send = (res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}) => {
    res.writeHead(status, { ...headers, 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  const notFound = (res: ServerResponse) => send(res, 404, 'Not Found');
  const unstored = createOutageLog(options.logger, { level: 'error', until: 'a webhook is stored again', recoveredMessage: 'webhooks are stored again' });

  async function handle(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const match = /^\/([^/]+)\/([^/]+)$/.exec(path.slice(options.basePath.length));
    if (!match) {
      options.onWebhook?.('unknown', 'rejected', 404);
      notFound(res);
      return;
    }
    // The request's child logger only when a line is written: a stored callback writes none here.
    const logger = () => options.logger.child({ requestId });
    const kind = safeDecode(match[2]!);
    if (kind === undefined || !isKind(kind) || !options.checkToken(kind, safeDecode(match[1]!) ?? '')) {
      // The token is never logged: it is as good as a password for this URL. A stranger's request (scanners
      // find public URLs), so info, as every refusal here: counted in gateway_webhooks_total{outcome="rejected"}.
      logger().info({ kind: kind !== undefined && isKind(kind) ? kind : 'unknown', ip: req.socket.remoteAddress }, 'webhook with a wrong or missing token rejected');
      options.onWebhook?.('unknown', 'rejected', 404);
      notFound(res);
      return;
    }
    const allowed = kind === 'incoming-call' ? ['GET', 'POST'] : ['POST'];
    if (!allowed.includes(req.method ?? '')) {
      options.onWebhook?.(kind, 'rejected', 405);
      send(res, 405, 'Method Not Allowed', { allow: allowed.join(', ') });
      return;
    }
    // A body over the limit: the connection is closed with the 413, as the unread rest still follows on it.
    const tooLarge = () => {
      logger().info({ status: 413, type: 'entity.too.large' }, 'webhook body rejected');
      options.onWebhook?.(kind, 'rejected', 413);
      send(res, 413, 'Payload Too Large', { connection: 'close' });
    };
    // The limit holds twice (docs/security.md): on the bytes as they arrive, however the body is encoded,
    // here; and on the decoded body, in the parsers (a compressed body that expands past it is refused there).
    // A declared length over it is refused before a byte is read (the parsers would read it all to throw it away).
    if (Number(req.headers['content-length']) > limit) return tooLarge();
    try {
      const read = readBody(req, res);
      // A body of no declared length (chunked) is counted as it arrives, beside the parsers: past either limit
      // they go on reading until the sender stops, so the 413 is sent here as soon as it is crossed, and the
      // connection closed, as for a declared one. The parsers' own refusal follows once the socket closes.
      if (req.headers['content-length'] === undefined && (await Promise.race([read.then(() => false), crossesLimit(req, limit)]))) return tooLarge();
      await read;
    } catch (err) {
      // Body parser failures: too large → 413, unreadable → 400. Nothing was stored.
      const e = err as { status?: number; type?: string };
      const status = e.type === 'entity.too.large' ? 413 : e.status && e.status >= 400 && e.status < 500 ? e.status : 500;
      if (status === 500) logger().error({ err }, 'webhook failed');
      else logger().info({ status, type: e.type }, 'webhook body rejected');
      options.onWebhook?.(kind, status === 500 ? 'unavailable' : 'rejected', status);
      send(res, status, status === 500 ? 'Internal Server Error' : bodyRefusal(e.type, status));
      return;
    }
    const answer = (status: number, outcome: WebhookOutcome, body: string) => {
      options.onWebhook?.(kind, outcome, status);
      send(res, status, body);
    };

    const fields = bodyFields(req as ParsedRequest);
    if (!fields) {
      logger().info({ kind }, 'webhook body is not well-formed multipart');
      answer(400, 'rejected', 'Bad Request: malformed multipart body');
      return;
    }
    const query = q === -1 ? {} : parseForm(url.slice(q + 1));
    const parsed = parse(kind, kind === 'incoming-call' ? { ...flatten(query), ...fields } : fields);
    if (!parsed.ok) {
      logger().info({ kind, reason: parsed.reason }, 'malformed webhook rejected');
      answer(400, 'rejected', `Bad Request: ${parsed.reason}`);
      return;
    }
    if (parsed.unreadable) logger().debug({ kind, fields: parsed.unreadable }, 'callback fields not understood; left empty');
    try {
      const update = parsed.update;
      const result = await traceIngest({ kind, sid: 'smsSid' in update ? update.smsSid : update.callSid, headers: req.headers }, async (span) => {
        const ingested = update.kind === 'incoming-request' ? await ingestIncomingCall(update, options.ingestDeps) : await ingest(withRequestRef(query, update), options.ingestDeps);
        span.setAttribute('webhook.outcome', ingested.outcome === 'published' ? 'published' : ingested.reason);
        // On Redis each replica's fan-out starts a trace of its own: the event id ties them to this one.
        if ('event' in ingested) span.setAttribute('gateway.event.id', ingested.event.id);
        return ingested;
      });
      unstored.recovered();
      if (options.logger.isLevelEnabled('debug')) logger().debug({ kind, outcome: result.outcome, eventId: 'event' in result ? result.event.id : undefined }, 'webhook ingested');
      const outcome: WebhookOutcome = result.outcome === 'published' ? 'accepted' : result.reason === 'backwards' ? 'backward' : 'duplicate';
      answer(200, outcome, kind === 'incoming-call' ? '' : 'OK');
    } catch (err) {
      if (!(err instanceof IngestStorageError)) throw err;
      const update = parsed.update;
      if (update.kind === 'incoming-request') {
        // Exotel never retries a Passthru, and a non-200 would send the caller down the flow's error branch:
        // answered 200 now, stored later.
        unstored.failed({ err, kind, requestId, callSid: update.callSid }, `webhook could not be stored; answered 200 (Exotel never retries a Passthru)${options.onUnstoredIncoming ? ' and retried in the background' : ''}`);
        options.onUnstoredIncoming?.(update);
        answer(200, 'unavailable', '');
      } else {
        unstored.failed({ err, kind, requestId }, 'webhook could not be stored; answering 503 so Exotel retries');
        answer(503, 'unavailable', 'Service Unavailable: try again');
      }
    }
  }

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

  return nodeRoute(handle, {
    accessLogger: options.accessLogger,
    route: (req) => routeOf({ originalUrl: req.url ?? '' }),
    logFault: (err, requestId) => options.logger.error({ err, requestId }, 'webhook failed'),
    answerFault: (res) => {
      options.onWebhook?.('unknown', 'unavailable', 500);
      send(res, 500, 'Internal Server Error');
    },
  });
}

/**
 * What the sender of a body the parsers refused is told: the reason, in fixed words. The parsers' own
 * messages are not passed on: a JSON syntax error quotes the body.
 */
function bodyRefusal(type: string | undefined, status: number): string {
  switch (type) {
    case 'entity.too.large':
      return 'Payload Too Large';
    case 'entity.parse.failed':
      return 'Bad Request: the body is not valid JSON';
    case 'charset.unsupported':
      return 'Unsupported Media Type: the body’s charset is not supported; send UTF-8';
    case 'encoding.unsupported':
      return 'Unsupported Media Type: the body’s Content-Encoding is not supported (gzip, deflate or br)';
    case 'request.size.invalid':
      return 'Bad Request: the body’s length is not its Content-Length';
    default:
      return status === 415 ? 'Unsupported Media Type' : 'Bad Request: the body could not be read';
  }
}

/** Resolves `true` once more than `limit` bytes of `req`'s body have arrived; never when it ends within it. */
function crossesLimit(req: IncomingMessage, limit: number): Promise<true> {
  return new Promise((resolve) => {
    let bytes = 0;
    const stop = () => void req.off('data', onData).off('end', stop).off('close', stop);
    const onData = (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes <= limit) return;
      stop();
      resolve(true);
    };
    req.on('data', onData).once('end', stop).once('close', stop);
  });
}

/** A path segment as the router would read it; undefined when it is not valid percent-encoding. */
function safeDecode(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

/**
 * The update with the reference of the request that created its call or SMS, when the callback URL
 * carries one (callback-urls.ts): stored with the status, it resolves that request's unknown outcome.
 */
function withRequestRef(query: Record<string, unknown>, update: LiveUpdate): LiveUpdate {
  const ref = query[REQUEST_REF_PARAM];
  if (update.kind === 'incoming' || typeof ref !== 'string' || !REQUEST_REF.test(ref)) return update;
  return { ...update, requestRef: ref };
}

/** The body as a flat field record, whatever its encoding; undefined for broken multipart. */
function bodyFields(req: ParsedRequest): Record<string, unknown> | undefined {
  if (Buffer.isBuffer(req.body)) {
    const boundary = multipartBoundary(req.headers['content-type']);
    return boundary ? parseMultipartFields(req.body, boundary) : undefined;
  }
  if (typeof req.body === 'string') return flatten(parseForm(req.body, LATIN1_FORM.test(req.headers['content-type'] ?? '')));
  if (req.body && typeof req.body === 'object' && !Array.isArray(req.body)) return flatten(req.body);
  return {};
}
