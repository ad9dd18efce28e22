/**
 * The hot path of GraphQL over HTTP, in front of express and Apollo: a plain `POST /graphql` with a JSON
 * body holding one query operation is answered straight from node:http. The document text is checked
 * once — token limit, parse, the full validation Apollo would run (graphql's rules plus armor's) — and the
 * result is kept in a bounded LRU, so a warm request costs one JSON.parse of the body, graphql-js
 * `execute` and one write — or, for a query whose answer is a pure function of cached objects that are
 * all still cached, no execution at all (response-cache.ts).
 *
 * Anything else is handed back untouched to express (and so to Apollo): GET, batches, mutations and
 * subscriptions, introspection, persisted queries, extensions, other content types, encodings, charsets
 * or Accept headers, bodies without a Content-Length or over the limit, invalid documents (Apollo owns
 * their error messages), failed authentication (Apollo answers 401/403), variable coercion errors (no
 * resolver ran yet), and everything while stopping. What the fast path answers is answered as Apollo would:
 * the same context factory, formatError, error normalisation (extensions.code, extensions.http status),
 * internal-error logging, operation metrics, `cache-control: no-store`, request id and access-log line.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  execute,
  GraphQLError,
  Kind,
  parse,
  specifiedRules,
  validate,
  visit,
  BREAK,
  type DocumentNode,
  type ExecutionResult,
  type GraphQLFormattedError,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type ValidationRule,
} from 'graphql';
import type { Principal } from '../auth.js';
import type { GatewayError } from '../errors.js';
import type { Logger } from '../logger.js';
import { logAccess } from '../http/access-log.js';
import { REQUEST_ID_HEADER, requestIdFrom } from '../http/request-id.js';
import { outcomeOf } from '../http/graphql-metrics.js';
import { BoundedLru } from '../lru.js';
import type { ContextFactory } from './context.js';
import { newEntityReads, type ResponseCache } from './response-cache.js';

/**
 * Bounds of the checked-document caches (here and on graphql-ws), declared once. Documents come from
 * clients, and a parsed document can take over a hundred bytes of heap per character of text, so the cache
 * is capped by the total characters kept (~12 MB of heap at worst), not only by count. A text over a tenth
 * of the total is never kept (it still runs).
 */
export const DOCUMENT_CACHE = Object.freeze({ maxEntries: 1_000, maxTotalSize: 100_000 });

export interface FastPathOptions {
  schema: GraphQLSchema;
  contextFactory: ContextFactory;
  /** The validation rules Apollo runs after graphql's specifiedRules (armor's). */
  validationRules: readonly ValidationRule[];
  /** The MAX_TOKENS check of the HTTP guard; a document over the limit goes to Apollo's path (and its guard). */
  checkTokens(source: string): GatewayError | undefined;
  /** Throws UNAUTHENTICATED/FORBIDDEN; the fast path then hands over to Apollo, which answers 401/403. */
  authenticate?: (authorization: string | undefined) => Principal;
  /** Apollo's formatError, called with the normalised error exactly as Apollo calls it. */
  formatError(formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError;
  /** Logs errors that reach the client as INTERNAL_SERVER_ERROR (the same as Apollo's plugin). */
  logInternalErrors(errors: readonly GraphQLError[], logger: Logger, operationName: string | null | undefined): void;
  /** Counts the operation (the metrics Apollo's plugin records). */
  onOperation(operation: { name: string | null | undefined; type: string; outcome: string; durationSeconds: number }): void;
  /** The access log (`component: http`); its lines carry fixed fields only (see fixedFieldsLogger). */
  accessLogger: Logger;
  /** For failures of the fast path itself (redacted like every other line). */
  logger: Logger;
  /** Largest body accepted, bytes (the same limit as express.json). */
  maxBodyBytes: number;
  path: string;
  /** Warm answers of pure queries (response-cache.ts); absent: every query executes. */
  responses?: ResponseCache;
}

export interface FastPath {
  /**
   * Takes the request when it is a plain single query and returns true; returns false (having read
   * nothing) when express should handle it. `fallback` hands a request whose body was already read on
   * to express, with `req.body` set, so body-parser skips it.
   */
  handle(req: IncomingMessage, res: ServerResponse, fallback: () => void): boolean;
  /** Documents currently remembered (tests). */
  readonly documentCount: number;
  /**
   * Requests answered here (`warm` of them from the response cache), and requests whose body was read here
   * and then handed to express (tests).
   */
  stats(): { answered: number; handedOver: number; warm: number };
  /** From now on every request goes to express/Apollo (shutdown drains through Apollo). */
  close(): void;
}

/** A checked document: runnable here, or known to need Apollo. */
type Checked = { ok: true; document: DocumentNode } | { ok: false };

/** Accept headers for which Apollo answers `application/json; charset=utf-8`. */
const PLAIN_ACCEPT = new Set(['', '*/*', 'application/json', 'application/json, */*', 'application/json,*/*']);
const JSON_TYPES = new Set(['application/json', 'application/json; charset=utf-8', 'application/json;charset=utf-8']);
/** Headers of a GraphQL answer (Apollo's); a body that never became a request gets express's, with no cache-control. */
const SEND_HEADERS = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' } as const;
const BODY_ERROR_HEADERS = { 'content-type': 'application/json; charset=utf-8' } as const;

/** True when the document asks for the schema (Apollo's introspection rule decides those). */
function isIntrospection(document: DocumentNode): boolean {
  let found = false;
  visit(document, {
    Field(node) {
      if (node.name.value === '__schema' || node.name.value === '__type') {
        found = true;
        return BREAK;
      }
      return undefined;
    },
  });
  return found;
}

/** The operation `operationName` picks, as graphql's getOperationAST picks it. */
function operationOf(document: DocumentNode, operationName: string | null | undefined): OperationDefinitionNode | undefined {
  let chosen: OperationDefinitionNode | undefined;
  for (const definition of document.definitions) {
    if (definition.kind !== Kind.OPERATION_DEFINITION) continue;
    if (operationName == null) {
      if (chosen) return undefined;
      chosen = definition;
    } else if (definition.name?.value === operationName) {
      return definition;
    }
  }
  return chosen;
}

/** Apollo's normalisation (errorNormalize.ts): a code on every error, `extensions.http` lifted into the response. */
function normaliseErrors(errors: readonly GraphQLError[], formatError: FastPathOptions['formatError']) {
  let status: number | undefined;
  const formatted = errors.map((error) => {
    try {
      const extensions: Record<string, unknown> = { ...error.extensions, code: error.extensions.code ?? 'INTERNAL_SERVER_ERROR' };
      const http = extensions.http as { status?: unknown } | undefined;
      if (http && typeof http === 'object') {
        if (typeof http.status === 'number') status = http.status;
        delete extensions.http;
      }
      return formatError({ ...error.toJSON(), extensions }, error);
    } catch {
      return { message: 'Internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR' } };
    }
  });
  return { formatted, status };
}

/** Builds the fast path; mount it in front of the express app (server.ts). */
export function createFastPath(options: FastPathOptions): FastPath {
  const rules = [...specifiedRules, ...options.validationRules];
  const documents = new BoundedLru<string, Checked>(DOCUMENT_CACHE);
  let closed = false;
  const counts = { answered: 0, handedOver: 0, warm: 0 };

  function check(query: string): Checked {
    const known = documents.get(query);
    if (known) return known;
    let checked: Checked = { ok: false };
    if (!options.checkTokens(query)) {
      try {
        const document = parse(query);
        if (!isIntrospection(document) && validate(options.schema, document, rules).length === 0) checked = { ok: true, document };
      } catch {
        // A syntax error: Apollo words it.
      }
    }
    documents.set(query, checked, query.length);
    return checked;
  }

  function send(req: IncomingMessage, res: ServerResponse, requestId: string, started: bigint, status: number, body: string, headers: Readonly<Record<string, string>> = SEND_HEADERS) {
    res.writeHead(status, { ...headers, 'content-length': Buffer.byteLength(body), 'x-request-id': requestId });
    res.end(body);
    logAccess(options.accessLogger, { requestId, method: req.method ?? 'POST', route: options.path, status, started });
  }

  async function run(req: IncomingMessage, res: ServerResponse, raw: string, requestId: string, started: bigint, fallback: () => void) {
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch {
      body = undefined;
    }
    // Strict JSON bodies (objects and arrays) are what express.json accepts; the rest is its 400.
    if (body === null || typeof body !== 'object') {
      send(req, res, requestId, started, 400, JSON.stringify({ errors: [{ message: 'The request body is not valid JSON.', extensions: { code: 'BAD_USER_INPUT' } }] }), BODY_ERROR_HEADERS);
      return;
    }
    const handOver = () => {
      counts.handedOver++;
      (req as IncomingMessage & { body?: unknown }).body = body;
      fallback();
    };
    const { query, variables, operationName, extensions } = body as Record<string, unknown>;
    if (
      Array.isArray(body) ||
      typeof query !== 'string' ||
      query === '' ||
      extensions !== undefined ||
      !(operationName === undefined || operationName === null || typeof operationName === 'string') ||
      !(variables === undefined || variables === null || (typeof variables === 'object' && !Array.isArray(variables)))
    ) {
      handOver();
      return;
    }
    const checked = check(query);
    const operation = checked.ok ? operationOf(checked.document, operationName) : undefined;
    if (!checked.ok || operation?.operation !== 'query') {
      handOver();
      return;
    }
    let auth: Principal | null = null;
    if (options.authenticate) {
      try {
        auth = options.authenticate(req.headers.authorization);
      } catch {
        handOver();
        return;
      }
    }
    const name = operation.name?.value ?? (operationName as string | null | undefined);
    const observe = (outcome: string) =>
      options.onOperation({ name, type: 'query', outcome, durationSeconds: Number(process.hrtime.bigint() - started) / 1e9 });
    // The raw body names the operation, its variables and its document exactly; the caller is part of the key
    // so that no answer ever crosses from one client key to another.
    const responses = options.responses?.eligible(checked.document) ? options.responses : undefined;
    const responseKey = responses ? `${auth?.name ?? ''}\u0000${raw}` : '';
    if (responses) {
      const kept = await responses.get(responseKey);
      if (kept !== undefined) {
        counts.answered++;
        counts.warm++;
        send(req, res, requestId, started, 200, kept);
        observe('ok');
        return;
      }
    }
    const reads = responses ? newEntityReads() : undefined;
    const contextValue = options.contextFactory({ requestId, auth, ...(reads ? { reads } : {}) });
    const result: ExecutionResult = await execute({
      schema: options.schema,
      document: checked.document,
      contextValue,
      variableValues: variables as Record<string, unknown> | null | undefined,
      operationName: operationName as string | null | undefined,
    });
    // No data: the variables did not coerce and no resolver ran; Apollo words (and counts) that answer.
    if (result.data === undefined) {
      handOver();
      return;
    }
    let status = 200;
    let answer: string;
    let outcome = 'ok';
    if (result.errors?.length) {
      options.logInternalErrors(result.errors, contextValue.logger, name);
      const normalised = normaliseErrors(result.errors, options.formatError);
      status = normalised.status ?? 200;
      outcome = outcomeOf(normalised.formatted);
      answer = `${JSON.stringify({ ...result, errors: normalised.formatted })}\n`;
    } else {
      answer = `${JSON.stringify(result)}\n`;
      if (responses && reads) responses.put(responseKey, answer, reads);
    }
    counts.answered++;
    send(req, res, requestId, started, status, answer);
    observe(outcome);
  }

  return {
    get documentCount() {
      return documents.size;
    },
    stats: () => ({ ...counts }),
    close() {
      closed = true;
    },
    handle(req, res, fallback) {
      if (closed || req.method !== 'POST' || req.url !== options.path) return false;
      const headers = req.headers;
      const length = Number(headers['content-length']);
      if (
        !(length > 0 && length <= options.maxBodyBytes) ||
        headers['transfer-encoding'] !== undefined ||
        (headers['content-encoding'] !== undefined && headers['content-encoding'] !== 'identity') ||
        !JSON_TYPES.has((headers['content-type'] ?? '').toLowerCase()) ||
        !PLAIN_ACCEPT.has(headers.accept ?? '')
      ) {
        return false;
      }
      const started = process.hrtime.bigint();
      // Normalised in place, as the requestIds middleware does, so a hand-over keeps the same id.
      const requestId = requestIdFrom(headers[REQUEST_ID_HEADER]);
      headers[REQUEST_ID_HEADER] = requestId;
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('error', () => res.destroy());
      req.on('end', () => {
        const raw = chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8');
        run(req, res, raw, requestId, started, fallback).catch((err: unknown) => {
          options.logger.error({ err, requestId }, 'fast path failed');
          if (res.headersSent) res.destroy();
          else send(req, res, requestId, started, 500, `${JSON.stringify({ errors: [{ message: 'Internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] })}\n`);
        });
      });
      return true;
    },
  };
}
