/**
 * GraphQL over HTTP at /graphql (GET and POST), on node:http in front of the express app: the http.Server
 * hands this route its requests and every other path to express. It owns what the transport must do and
 * hands every request to Apollo's integration API (`executeHTTPGraphQLRequest`), so Apollo's whole
 * pipeline — CSRF prevention, plugins, limits, error formatting — runs for each:
 *
 *   request id → CORS (src/http/cors.ts: a preflight ends here) → Accept (src/http/accept.ts: 406)
 *   → body (src/http/json-body.ts: 400/413/415)
 *   → guard (batch size, tokens, cost: 400)
 *   → span (when tracing) → Apollo, its context built from the Authorization header (401/403)
 *   → MAX_RESPONSE_BYTES → the answer, `no-store` → one access-log line.
 *
 * Refusals made here are GraphQL-shaped with a contract code and counted as client errors.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HeaderMap, type ApolloServer, type HTTPGraphQLRequest, type HTTPGraphQLResponse } from '@apollo/server';
import { GraphQLError } from 'graphql';
import type { Principal } from '../auth.js';
import { ErrorCode, isGatewayError, type GatewayError } from '../errors.js';
import type { ContextFactory, GraphQLContext } from '../graphql/context.js';
import type { Logger } from '../logger.js';
import { httpOperationSpan } from '../tracing/graphql.js';
import { nodeRoute } from './access-log.js';
import { answerMediaType, DEFAULT_ANSWER_TYPE } from './accept.js';
import type { CorsStep } from './cors.js';
import type { GraphqlGuard } from './graphql-guard.js';
import { readJsonBody } from './json-body.js';
import { REQUEST_ID_HEADER } from './request-id.js';
import type { ResponseSizeGuard } from './response-size.js';

export interface GraphqlHttpOptions {
  apollo: ApolloServer<GraphQLContext>;
  contextFactory: ContextFactory;
  /** The caller behind an Authorization header; throws UNAUTHENTICATED. Absent → no client auth. */
  authenticate?: (authorization: string | undefined) => Principal;
  /** Largest accepted body, bytes (MAX_BODY_BYTES). */
  maxBodyBytes: number;
  /** Batch size, tokens and cost, over the request before Apollo sees it. */
  guard: GraphqlGuard;
  /** MAX_RESPONSE_BYTES over Apollo's answer. */
  responseSize: ResponseSizeGuard;
  /** Where the access-log line of each request goes. */
  accessLogger: Logger;
  /** Logs a fault of this route itself, and at info a client mistake only the operator can see (a refused CORS preflight). */
  logger: Logger;
  /** Counts a refusal made here (a client mistake of `kind`). */
  onClientError(kind: string): void;
  /** One span per request (src/tracing/graphql.ts) while tracing is on. */
  tracing: boolean;
  /** CORS for browser apps on other origins (CORS_ALLOWED_ORIGINS); absent → no CORS headers. */
  cors?: CorsStep;
}

export type GraphqlHttpHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** A GraphQL-over-HTTP error body for requests that never reached GraphQL. */
function errorBody(message: string, extensions: Record<string, unknown> = { code: ErrorCode.BAD_USER_INPUT }): string {
  return JSON.stringify({ errors: [{ message, extensions }] });
}

const NOT_ACCEPTABLE =
  'The Accept header allows neither application/json nor application/graphql-response+json, the only forms /graphql answers in; nothing was run.';

/** HTTP status of an error thrown while building the context (auth), so clients see 401/403, not 500. */
function httpStatusOf(code: string): number {
  if (code === ErrorCode.UNAUTHENTICATED) return 401;
  if (code === ErrorCode.FORBIDDEN) return 403;
  return 500;
}

/** The request's headers as Apollo reads them: one comma-joined value per name, as its integrations do. */
function headerMapOf(req: IncomingMessage): HeaderMap {
  const headers = new HeaderMap();
  const incoming = req.headers;
  for (const name in incoming) {
    const value = incoming[name];
    if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value);
  }
  return headers;
}

/** A browser's CORS preflight: OPTIONS with an Origin and the method it asks for (never sent same-origin). */
function isPreflight(req: IncomingMessage): boolean {
  return req.method === 'OPTIONS' && req.headers.origin !== undefined && req.headers['access-control-request-method'] !== undefined;
}

/** What a GET asks, for the guards: the query-string fields of a GraphQL request. */
function getRequestOf(search: string): Record<string, string | undefined> {
  const params = new URLSearchParams(search);
  return { query: params.get('query') ?? undefined, operationName: params.get('operationName') ?? undefined, variables: params.get('variables') ?? undefined };
}

export function graphqlHttpHandler(options: GraphqlHttpOptions): GraphqlHttpHandler {
  const { apollo } = options;

  /** Builds the context after Apollo's CSRF check; a bad key becomes 401/403 through Apollo's error path. */
  const contextOf = (authorization: string | undefined, requestId: string) => () => {
    let auth: Principal | null = null;
    if (options.authenticate) {
      try {
        auth = options.authenticate(authorization);
      } catch (err) {
        if (!isGatewayError(err)) throw err;
        const status = httpStatusOf(err.code);
        // RFC 6750: a 401 names the scheme the client should authenticate with.
        const headers = status === 401 ? new Map([['www-authenticate', 'Bearer realm="exotel-graphql-gateway"']]) : undefined;
        throw new GraphQLError(err.message, { originalError: err, extensions: { ...err.extensions, http: { status, ...(headers ? { headers } : {}) } } });
      }
    }
    return Promise.resolve(options.contextFactory({ requestId, auth }));
  };

  const send = (res: ServerResponse, status: number, headers: Record<string, string | number>, body: string) => {
    res.writeHead(status, { ...headers, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  /** A refusal made here, in `contentType`: what the client's Accept header asks for, as Apollo answers its own. */
  const refuse = (res: ServerResponse, status: number, body: string, contentType: string, headers: Record<string, string> = {}) =>
    send(res, status, { ...headers, 'content-type': contentType, 'cache-control': 'no-store' }, body);

  /**
   * A browser shows the page of a refused origin only a network error, and the access log only a 204 (or
   * Apollo's 400 without CORS): the operator is told here which origin was refused and why. The client's
   * doing, so info, and counted when the preflight was answered here (Apollo's 400 is counted as its own).
   */
  const refusedPreflight = (req: IncomingMessage, requestId: string, answeredHere: boolean) => {
    const why = options.cors
      ? 'CORS preflight from an origin not in CORS_ALLOWED_ORIGINS: answered without CORS headers, so the browser blocks the page’s request'
      : 'CORS preflight refused: CORS_ALLOWED_ORIGINS is empty, so no browser page on another origin may call /graphql';
    options.logger.info({ requestId, origin: req.headers.origin }, why);
    if (answeredHere) options.onClientError('auth');
  };

  async function answer(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
    // A preflight is answered here (204); other requests get their CORS headers and go on.
    const answered = options.cors !== undefined && !options.cors(req, res);
    if (isPreflight(req) && !res.hasHeader('access-control-allow-origin')) refusedPreflight(req, requestId, answered);
    if (answered) return;
    const method = req.method ?? 'GET';
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const search = q === -1 ? '' : url.slice(q);
    const headers = headerMapOf(req);
    headers.set(REQUEST_ID_HEADER, requestId);
    const answerType = answerMediaType(headers.get('accept'));
    if ((method === 'POST' || method === 'GET') && answerType === undefined) {
      // Counted as Apollo counts its own 406 (a BAD_REQUEST); the body is JSON whatever was asked, as Apollo's is.
      options.onClientError('validation');
      refuse(res, 406, errorBody(NOT_ACCEPTABLE, { code: ErrorCode.BAD_USER_INPUT, reason: 'BAD_REQUEST' }), DEFAULT_ANSWER_TYPE);
      return;
    }

    // Only a POST carries a body; Apollo answers any other method but GET with 405.
    let body: unknown;
    if (method === 'POST') {
      const read = await readJsonBody(req, { contentType: headers.get('content-type'), contentEncoding: headers.get('content-encoding'), contentLength: headers.get('content-length') }, options.maxBodyBytes);
      if (!read.ok) {
        options.onClientError(read.refusal.kind);
        const { status, message, reason } = read.refusal;
        // Too large: the rest of the body is not read, and the connection is closed once the answer is out, so
        // a sender that goes on streaming (chunked) cannot hold the socket until the receive timeout.
        refuse(res, status, errorBody(message, { code: ErrorCode.BAD_USER_INPUT, ...(reason ? { reason } : {}) }), answerType ?? DEFAULT_ANSWER_TYPE, status === 413 ? { connection: 'close' } : {});
        return;
      }
      body = read.value;
    }
    // What the client asked, for the guards: the body, or a GET's query string.
    const asked = method === 'GET' ? getRequestOf(search) : body;
    const run = options.tracing ? httpOperationSpan({ method, traceHeaders: req.headers, body, requestId }, res) : undefined;
    const execute = async () => {
      const refused: GatewayError | undefined = options.guard(asked);
      if (refused) {
        refuse(res, 400, errorBody(refused.message, refused.extensions), answerType ?? DEFAULT_ANSWER_TYPE);
        return;
      }
      const httpGraphQLRequest: HTTPGraphQLRequest = { method, headers, search, body };
      const response = await apollo.executeHTTPGraphQLRequest({ httpGraphQLRequest, context: contextOf(headers.get('authorization'), requestId) });
      await write(res, response, asked, answerType ?? DEFAULT_ANSWER_TYPE);
    };
    await (run ? run(execute) : execute());
  }

  async function write(res: ServerResponse, response: HTTPGraphQLResponse, asked: unknown, answerType: string): Promise<void> {
    const headers: Record<string, string> = { 'cache-control': 'no-store' };
    for (const [name, value] of response.headers) headers[name] = value;
    if (response.body.kind === 'complete') {
      const withheld = options.responseSize(response.body.string, asked);
      if (withheld !== undefined) refuse(res, 400, withheld, answerType);
      else send(res, batchStatus(response.status, response.body.string, asked) ?? 200, headers, response.body.string);
      return;
    }
    // Incremental delivery (multipart/mixed): streamed as Apollo yields it.
    res.writeHead(response.status ?? 200, headers);
    for await (const chunk of response.body.asyncIterator) res.write(chunk);
    res.end();
  }

  return nodeRoute(answer, {
    accessLogger: options.accessLogger,
    route: () => '/graphql',
    logFault: (err, requestId) => options.logger.error({ err, requestId }, 'GraphQL over HTTP request failed'),
    answerFault: (res) => refuse(res, 500, errorBody('Internal server error.', { code: ErrorCode.INTERNAL_SERVER_ERROR }), DEFAULT_ANSWER_TYPE),
  });
}

/**
 * The HTTP status of an answer. Apollo gives a batch the status of a refused operation in it (400 for a
 * syntax error) even when others ran beside it; a client seeing 400 takes it that nothing ran (Apollo
 * Client's batch link fails every operation of it), and a mutation among them would be sent again. So a
 * batch in which any operation ran — an answer with `data` — is 200, each answer carrying its own errors.
 */
function batchStatus(status: number | undefined, body: string, asked: unknown): number | undefined {
  if (!Array.isArray(asked) || status === undefined || status < 400 || status >= 500) return status;
  try {
    const answers = JSON.parse(body) as unknown;
    return Array.isArray(answers) && answers.some((a) => a !== null && typeof a === 'object' && 'data' in a) ? 200 : status;
  } catch {
    return status;
  }
}

/** True for a request this route answers: GRAPHQL_PATH exactly, with or without a query string. */
export function isGraphqlRequest(url: string | undefined, path: string): boolean {
  return url !== undefined && url.startsWith(path) && (url.length === path.length || url.charCodeAt(path.length) === 63 /* ? */);
}
