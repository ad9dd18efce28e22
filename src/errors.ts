/**
 * The one error map of the gateway (the README's error table). Every error a client sees carries one of these codes;
 * resolvers, the Exotel client and the live pipeline throw GatewayError and nothing else.
 */
import { GraphQLError, type GraphQLFormattedError } from 'graphql';

export const ErrorCode = {
  BAD_USER_INPUT: 'BAD_USER_INPUT',
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  FORBIDDEN: 'FORBIDDEN',
  NOT_FOUND: 'NOT_FOUND',
  RATE_LIMITED: 'RATE_LIMITED',
  INSUFFICIENT_BALANCE: 'INSUFFICIENT_BALANCE',
  UPSTREAM_UNAVAILABLE: 'UPSTREAM_UNAVAILABLE',
  UPSTREAM_ERROR: 'UPSTREAM_ERROR',
  OUTCOME_UNKNOWN: 'OUTCOME_UNKNOWN',
  IDEMPOTENCY_CONFLICT: 'IDEMPOTENCY_CONFLICT',
  /**
   * The gateway's shared storage (Redis) is unreachable, so what needs it could not be done: an idempotencyKey
   * check (refused before anything was sent to Exotel), or a read of the gateway's own records (a call's
   * status history); retry after `retryAfterSeconds`. Added to the original contract codes.
   */
  STORAGE_UNAVAILABLE: 'STORAGE_UNAVAILABLE',
  INTERNAL_SERVER_ERROR: 'INTERNAL_SERVER_ERROR',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const CODES = new Set<string>(Object.values(ErrorCode));

export interface GatewayErrorOptions {
  /** Seconds the client should wait (RATE_LIMITED). */
  retryAfterSeconds?: number;
  /** The input field at fault (BAD_USER_INPUT), e.g. "input.to"; the first one when several are. */
  field?: string;
  /** Every bad field of one input with what is wrong with it (BAD_USER_INPUT), so one answer names all. */
  fields?: FieldProblem[];
  /** HTTP status Exotel answered with, when the error came from Exotel. */
  upstreamStatus?: number;
  /** Exotel's numeric `RestException.Code` (e.g. 35008, 340030), when Exotel sent one. Not secret. */
  exotelCode?: number;
  /** Which rule rejected the request (BAD_USER_INPUT from a limit), e.g. "MAX_DEPTH". */
  reason?: string;
  cause?: unknown;
}

/** One bad input field: its path and what is wrong with it. */
export interface FieldProblem {
  field: string;
  message: string;
}

export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly retryAfterSeconds: number | undefined;
  readonly field: string | undefined;
  readonly fields: FieldProblem[] | undefined;
  readonly upstreamStatus: number | undefined;
  readonly exotelCode: number | undefined;
  readonly reason: string | undefined;

  constructor(code: ErrorCode, message: string, options: GatewayErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.field = options.field;
    this.fields = options.fields;
    this.upstreamStatus = options.upstreamStatus;
    this.exotelCode = options.exotelCode;
    this.reason = options.reason;
  }

  /** The GraphQL `extensions` this error shows to clients. */
  get extensions(): Record<string, unknown> {
    const ext: Record<string, unknown> = { code: this.code };
    if (this.retryAfterSeconds !== undefined) ext.retryAfterSeconds = this.retryAfterSeconds;
    if (this.field !== undefined) ext.field = this.field;
    if (this.fields !== undefined) ext.fields = this.fields;
    if (this.upstreamStatus !== undefined) ext.upstreamStatus = this.upstreamStatus;
    if (this.exotelCode !== undefined) ext.exotelCode = this.exotelCode;
    if (this.reason !== undefined) ext.reason = this.reason;
    return ext;
  }

  toGraphQLError(): GraphQLError {
    return new GraphQLError(this.message, { extensions: this.extensions, originalError: this });
  }
}

export function isGatewayError(e: unknown): e is GatewayError {
  return e instanceof GatewayError;
}

/** What a client refused with STORAGE_UNAVAILABLE is told to wait: about a Redis reconnect. */
export const STORAGE_RETRY_AFTER_SECONDS = 5;

/**
 * Runs a read of the gateway's shared storage for a client; its failure (Redis down or stalled past its
 * command timeout) becomes STORAGE_UNAVAILABLE naming `what`, not an internal error.
 */
export async function fromStorage<T>(what: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (cause) {
    if (isGatewayError(cause)) throw cause;
    throw new GatewayError(ErrorCode.STORAGE_UNAVAILABLE, `${what} could not be read because the gateway's shared storage is unavailable. Retry in a few seconds.`, {
      cause,
      retryAfterSeconds: STORAGE_RETRY_AFTER_SECONDS,
    });
  }
}

export function badInput(field: string, message: string): GatewayError {
  return new GatewayError(ErrorCode.BAD_USER_INPUT, `${field}: ${message}`, { field, fields: [{ field, message }] });
}

/**
 * One BAD_USER_INPUT for every bad field of an input: the message lists them all, `extensions.field` is
 * the first (as for a single field) and `extensions.fields` holds each `{ field, message }`.
 */
export function badInputs(problems: readonly FieldProblem[]): GatewayError {
  const [first] = problems;
  if (!first) throw new Error('badInputs needs at least one problem');
  if (problems.length === 1) return badInput(first.field, first.message);
  const message = `${problems.length} input fields are invalid: ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`;
  return new GatewayError(ErrorCode.BAD_USER_INPUT, message, { field: first.field, fields: [...problems] });
}

/** What an Exotel error body says: its message and numeric code, each when present. */
export interface ExotelErrorBody {
  message?: string;
  code?: number;
}

/** Exotel's numeric `RestException.Code` (a JSON number or a string of digits); anything else → undefined. */
export function exotelCode(value: unknown): number | undefined {
  const s = typeof value === 'number' ? String(value) : typeof value === 'string' ? value.trim() : '';
  if (!/^\d{1,9}$/.test(s)) return undefined;
  return Number(s);
}

/**
 * Reads a RestException body, JSON (`{"RestException": {"Status", "Message", "Code"}}`) or XML
 * (`<TwilioResponse><RestException><Message>…</Message><Code>…</Code>…`): Exotel sends XML error bodies
 * even when JSON was asked for (docs/exotel-fidelity.md, "Errors").
 */
export function parseExotelError(body: string): ExotelErrorBody {
  const out: ExotelErrorBody = {};
  const trimmed = body.trim();
  if (trimmed.startsWith('<')) {
    const tag = (name: string) => new RegExp(`<${name}>\\s*([\\s\\S]*?)\\s*</${name}>`).exec(trimmed)?.[1];
    const message = tag('Message') && xmlText(tag('Message')!);
    if (message) out.message = message;
    const code = exotelCode(tag('Code'));
    if (code !== undefined) out.code = code;
    return out;
  }
  try {
    const json = JSON.parse(trimmed) as { RestException?: { Message?: unknown; Code?: unknown } };
    const m = json?.RestException?.Message;
    if (typeof m === 'string' && m.trim()) out.message = m.trim();
    const code = exotelCode(json?.RestException?.Code);
    if (code !== undefined) out.code = code;
  } catch {
    // Not JSON and not XML (an HTML error page from a proxy): nothing Exotel-shaped to keep.
  }
  return out;
}

/** The five XML entities, decoded; CDATA unwrapped. */
function xmlText(raw: string): string {
  const cdata = /^<!\[CDATA\[([\s\S]*)\]\]>$/.exec(raw);
  if (cdata) return cdata[1]!.trim();
  return raw
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&')
    .trim();
}

/** Exotel's message from a RestException body (JSON or the XML variant), if it has one. */
export function exotelMessage(body: string): string | undefined {
  return parseExotelError(body).message;
}

/**
 * Exotel codes that say more than the HTTP status (exotel-api-reference.md, SMS API error codes): the
 * account cannot pay. Other codes travel as `exotelCode` without changing the contract code.
 */
const BALANCE_CODES = new Set([40001]);

const BALANCE = /balance|recharge|validity|credit/i;

/**
 * Maps an Exotel HTTP answer to a GatewayError, keeping Exotel's message (docs/exotel-fidelity.md: trust
 * the HTTP status; the body says why). `retryAfterSeconds` comes from the Retry-After header when present.
 */
export function fromExotelResponse(status: number, body: string, retryAfterSeconds?: number): GatewayError {
  const said = parseExotelError(body);
  const message = said.message ?? `Exotel answered HTTP ${status}`;
  const opts = { upstreamStatus: status, ...(said.code !== undefined ? { exotelCode: said.code } : {}) };
  if (status === 400) return new GatewayError(ErrorCode.BAD_USER_INPUT, `Exotel rejected the request: ${message}`, opts);
  // 401 means the gateway's own Exotel credentials are wrong: an upstream problem, not the client's.
  if (status === 401) return new GatewayError(ErrorCode.UPSTREAM_ERROR, `Exotel rejected the gateway's credentials: ${message}`, opts);
  if (status === 402) return new GatewayError(ErrorCode.INSUFFICIENT_BALANCE, message, opts);
  if (status === 403) {
    return BALANCE.test(message) || (said.code !== undefined && BALANCE_CODES.has(said.code))
      ? new GatewayError(ErrorCode.INSUFFICIENT_BALANCE, message, opts)
      : new GatewayError(ErrorCode.UPSTREAM_ERROR, `Exotel refused access: ${message}`, opts);
  }
  if (status === 404) return new GatewayError(ErrorCode.NOT_FOUND, message, opts);
  if (status === 429) {
    return new GatewayError(ErrorCode.RATE_LIMITED, `Exotel rate limit reached: ${message}`, {
      ...opts,
      retryAfterSeconds: retryAfterSeconds ?? 30,
    });
  }
  if (status >= 500) return new GatewayError(ErrorCode.UPSTREAM_UNAVAILABLE, `Exotel is unavailable: ${message}`, opts);
  return new GatewayError(ErrorCode.UPSTREAM_ERROR, `Exotel rejected the request: ${message}`, opts);
}

export interface FormatErrorOptions {
  /** Production masks everything but code and message, and hides internal errors' messages. */
  production: boolean;
}

/**
 * Apollo `formatError`: every error leaves with a contract code; internals (stack traces, upstream
 * URLs, headers) never leave, and in production unknown errors become a generic message.
 */
export function formatError(formatted: GraphQLFormattedError, error: unknown, options: FormatErrorOptions): GraphQLFormattedError {
  const out = formatErrorUnmasked(formatted, error, options);
  // "Did you mean …?" enumerates the schema (fields, enum values) to whoever asks: not in production.
  return options.production ? { ...out, message: maskSuggestions(out.message) } : out;
}

/** How graphql-js starts the hint it appends to a message (its didYouMean). */
const SUGGESTION = ' Did you mean ';

/**
 * The message without graphql's "Did you mean …?" hint, which graphql-js only ever appends at the end. Found
 * by position, not by a pattern: messages quote the client's own text (a literal, a variable's value, an
 * operation name), and a pattern over a long run of spaces or repeated "Did you mean"s takes time
 * quadratic in its length, holding the event loop for every client.
 */
export function maskSuggestions(message: string): string {
  const at = message.lastIndexOf(SUGGESTION);
  return at >= 0 && message.endsWith('?') ? message.slice(0, at) : message;
}

/**
 * What kind of client mistake a formatted error is, for gateway_client_errors_total: `syntax`,
 * `validation`, `variables`, `limit`, `auth`, `input` (a resolver refused an argument); undefined for
 * anything that is not the client's fault (including RATE_LIMITED and upstream errors).
 */
export function clientErrorKind(error: GraphQLFormattedError): string | undefined {
  const code = error.extensions?.code;
  const reason = String(error.extensions?.reason ?? '');
  if (code === ErrorCode.UNAUTHENTICATED || code === ErrorCode.FORBIDDEN) return 'auth';
  if (code !== ErrorCode.BAD_USER_INPUT) return undefined;
  if (reason === 'GRAPHQL_PARSE_FAILED') return 'syntax';
  if (reason === 'GRAPHQL_VALIDATION_FAILED' || reason === 'OPERATION_RESOLUTION_FAILURE' || reason === 'BAD_REQUEST' || reason === 'PERSISTED_QUERY_NOT_FOUND' || reason === 'PERSISTED_QUERY_NOT_SUPPORTED' || reason === 'INTROSPECTION') return 'validation';
  if (reason === 'BAD_USER_INPUT') return 'variables';
  if (reason.startsWith('MAX_')) return 'limit';
  return 'input';
}

function formatErrorUnmasked(formatted: GraphQLFormattedError, error: unknown, options: FormatErrorOptions): GraphQLFormattedError {
  const original = unwrap(error);
  if (original instanceof GatewayError) {
    return { message: original.message, locations: formatted.locations, path: formatted.path, extensions: original.extensions };
  }
  const code = String(formatted.extensions?.code ?? '');
  // Apollo's own codes for malformed or invalid operations are the client's fault.
  if (code === 'GRAPHQL_PARSE_FAILED' || code === 'GRAPHQL_VALIDATION_FAILED' || code === 'BAD_USER_INPUT' || code === 'BAD_REQUEST' || code === 'PERSISTED_QUERY_NOT_FOUND' || code === 'PERSISTED_QUERY_NOT_SUPPORTED' || code === 'OPERATION_RESOLUTION_FAILURE') {
    return { message: formatted.message, locations: formatted.locations, path: formatted.path, extensions: { code: ErrorCode.BAD_USER_INPUT, reason: code } };
  }
  if (CODES.has(code) && code !== ErrorCode.INTERNAL_SERVER_ERROR) {
    const ext: Record<string, unknown> = { code };
    if (formatted.extensions?.retryAfterSeconds !== undefined) ext.retryAfterSeconds = formatted.extensions.retryAfterSeconds;
    if (formatted.extensions?.field !== undefined) ext.field = formatted.extensions.field;
    // Exotel's own status and code are not secret and say what to fix (a KYC block, an outage).
    if (formatted.extensions?.upstreamStatus !== undefined) ext.upstreamStatus = formatted.extensions.upstreamStatus;
    if (formatted.extensions?.exotelCode !== undefined) ext.exotelCode = formatted.extensions.exotelCode;
    return { message: formatted.message, locations: formatted.locations, path: formatted.path, extensions: ext };
  }
  return {
    message: options.production ? 'Internal server error' : formatted.message,
    locations: formatted.locations,
    path: formatted.path,
    extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR },
  };
}

function unwrap(error: unknown): unknown {
  let e = error;
  for (let i = 0; i < 5 && e instanceof GraphQLError && e.originalError; i++) e = e.originalError;
  return e;
}
