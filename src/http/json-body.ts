/**
 * The JSON body of a GraphQL-over-HTTP POST, read with a size limit. GraphQL over HTTP speaks UTF-8 JSON
 * only, so anything else is refused before a byte is parsed: another media type, charset or content
 * encoding (415), more than `maxBytes` (413, from Content-Length when it tells, else while reading), bytes
 * that are not UTF-8 or a body that is not a JSON object or array (400). A refusal names its client-error kind
 * (gateway_client_errors_total) and the message the client is sent.
 */
import type { IncomingMessage } from 'node:http';

export interface BodyRefusal {
  status: 400 | 413 | 415;
  message: string;
  /** errors.ts clientErrorKind vocabulary: `syntax` for bad JSON, `limit` for size, `input` otherwise. */
  kind: 'syntax' | 'limit' | 'input';
  /** The limit's name (`extensions.reason`), for a refusal by size. */
  reason?: 'MAX_BODY_BYTES';
}

export type JsonBody = { ok: true; value: unknown } | { ok: false; refusal: BodyRefusal };

const NOT_JSON: BodyRefusal = { status: 415, message: 'POST /graphql needs "Content-Type: application/json" and a JSON body.', kind: 'input' };
const NOT_UTF8: BodyRefusal = { status: 415, message: 'Unsupported body encoding or charset; send UTF-8 JSON.', kind: 'input' };
const TOO_LARGE: BodyRefusal = { status: 413, message: 'The request body is too large (MAX_BODY_BYTES).', kind: 'limit', reason: 'MAX_BODY_BYTES' };
const MALFORMED: BodyRefusal = { status: 400, message: 'The request body is not valid JSON.', kind: 'syntax' };
const UNREAD: BodyRefusal = { status: 400, message: 'The request body could not be read.', kind: 'input' };
const NOT_UTF8_BYTES: BodyRefusal = { status: 400, message: 'The request body is not valid UTF-8; GraphQL over HTTP bodies are UTF-8 JSON.', kind: 'syntax' };

/**
 * Decodes strictly: a byte that is not UTF-8 (a Latin-1 "é") is refused rather than read as U+FFFD, which
 * would otherwise go on into an SMS body or a CustomField and reach a customer as "�".
 */
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const refuse = (refusal: BodyRefusal): JsonBody => ({ ok: false, refusal });

/** What the Content-Type and Content-Encoding headers allow: undefined when the body may be read. */
export function headerRefusal(contentType: string | undefined, contentEncoding: string | undefined): BodyRefusal | undefined {
  if (contentType === undefined) return NOT_JSON;
  const [essence = '', ...params] = contentType.split(';');
  if (essence.trim().toLowerCase() !== 'application/json') return NOT_JSON;
  for (const param of params) {
    const [name = '', value = ''] = param.split('=');
    if (name.trim().toLowerCase() !== 'charset') continue;
    const charset = value.trim().replace(/^"|"$/g, '').toLowerCase();
    if (charset !== 'utf-8' && charset !== 'utf8') return NOT_UTF8;
  }
  if (contentEncoding !== undefined && contentEncoding.trim().toLowerCase() !== 'identity') return NOT_UTF8;
  return undefined;
}

/** Reads and parses `req`'s body: `{}` when it is empty (Apollo then says what is missing). */
export function readJsonBody(req: IncomingMessage, headers: { contentType: string | undefined; contentEncoding: string | undefined; contentLength: string | undefined }, maxBytes: number): Promise<JsonBody> {
  const refused = headerRefusal(headers.contentType, headers.contentEncoding);
  if (refused) return Promise.resolve(refuse(refused));
  if (headers.contentLength !== undefined && Number(headers.contentLength) > maxBytes) return Promise.resolve(refuse(TOO_LARGE));
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    const done = (result: JsonBody) => {
      req.off('data', onData).off('end', onEnd).off('error', onError).off('close', onError);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      bytes += chunk.length;
      // The rest is never read: the route answers 413 and closes the connection (graphql-http.ts).
      if (bytes > maxBytes) done(refuse(TOO_LARGE));
      else chunks.push(chunk);
    };
    const onEnd = () => {
      let text: string;
      try {
        text = utf8.decode(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, bytes));
      } catch {
        done(refuse(NOT_UTF8_BYTES));
        return;
      }
      done(parseJson(text));
    };
    // Closed before its end: the client went away mid-body.
    const onError = () => done(refuse(UNREAD));
    req.on('data', onData).once('end', onEnd).once('error', onError).once('close', onError);
  });
}

/** Strict, as body-parser's json is: the text must be a JSON object or array. A byte order mark is ignored, as RFC 8259 lets a parser do. */
function parseJson(decoded: string): JsonBody {
  const text = decoded.charCodeAt(0) === 0xfeff ? decoded.slice(1) : decoded;
  const first = /\S/.exec(text)?.[0];
  if (first === undefined) return { ok: true, value: {} };
  if (first !== '{' && first !== '[') return refuse(MALFORMED);
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return refuse(MALFORMED);
  }
}
