/** Small HTTP helpers shared by the simulator's routes: Exotel-shaped errors, params, JSON replies. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { WireRestException } from '../exotel/types.js';

/** Thrown by handlers; the server answers `{"RestException": {Status, Message}}` with this status. */
export class SimError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'SimError';
  }
}

/** Exotel's error body. */
export function restException(status: number, message: string): WireRestException {
  return { RestException: { Status: status, Message: message } };
}

/** Writes a JSON answer unless the client is already gone (slow faults, aborted requests). */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Request parameters: form body or query string, with Exotel's bracket arrays. */
export type Params = URLSearchParams;

/** A trimmed parameter, or null when absent or empty. */
export function param(params: Params, name: string): string | null {
  const value = params.get(name);
  if (value === null) return null;
  const trimmed = value.trim();
  return trimmed === '' ? null : trimmed;
}

/** An integer parameter within [min, max]; 400 naming the parameter otherwise. */
export function intParam(params: Params, name: string, min: number, max: number, prefix = 'Invalid parameter'): number | null {
  const raw = param(params, name);
  if (raw === null) return null;
  if (!/^\d+$/.test(raw)) throw new SimError(400, `${prefix}: '${name}' must be an integer, got ${JSON.stringify(raw.slice(0, 40))}`);
  const value = Number(raw);
  if (value < min || value > max) throw new SimError(400, `${prefix}: '${name}' must be between ${min} and ${max}, got ${value}`);
  return value;
}

/** One of a closed set of values; 400 listing the allowed values otherwise. */
export function enumParam<T extends string>(params: Params, name: string, allowed: readonly T[], prefix = 'Invalid parameter'): T | null {
  const raw = param(params, name);
  if (raw === null) return null;
  if (!(allowed as readonly string[]).includes(raw)) {
    throw new SimError(400, `${prefix}: '${name}' must be one of ${allowed.join(', ')}, got ${JSON.stringify(raw.slice(0, 40))}`);
  }
  return raw as T;
}

/**
 * All values of a list parameter in any of Exotel's spellings: `Name=a,b`, repeated `Name=a&Name=b`,
 * `Name[]=a` and `Name[0]=a&Name[1]=b` (indexed ones in index order).
 */
export function listParam(params: Params, name: string): string[] {
  const values: string[] = [];
  const indexed: Array<[number, string]> = [];
  const prefix = `${name}[`;
  for (const [key, value] of params) {
    if (key === name || key === `${name}[]`) values.push(value);
    else if (key.startsWith(prefix) && /^\[\d+\]$/.test(key.slice(name.length))) indexed.push([Number(key.slice(prefix.length, -1)), value]);
  }
  indexed.sort((a, b) => a[0] - b[0]);
  return [...values, ...indexed.map(([, v]) => v)]
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');
}

/** Exotel: http(s) URLs only. */
export function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

/** Largest accepted request body; Exotel's parameters are small, so 1 MiB is generous. */
export const MAX_BODY_BYTES = 1024 * 1024;
/** Past this, the simulator stops draining an oversized body and drops the connection. */
const MAX_DRAIN_BYTES = 16 * MAX_BODY_BYTES;

/** Reads the body; `tooLarge` when over MAX_BODY_BYTES (the rest is drained so the 413 can be read). */
export function readBody(req: IncomingMessage): Promise<{ body: Buffer; tooLarge: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_DRAIN_BYTES) {
        req.destroy();
        reject(new SimError(413, 'Request body too large'));
      } else if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on('end', () => resolve({ body: Buffer.concat(chunks), tooLarge: size > MAX_BODY_BYTES }));
    req.on('error', reject);
  });
}

/** Parses a POST body: urlencoded (or no content type) or multipart/form-data; 400 for anything else. */
export async function parseForm(req: IncomingMessage, body: Buffer): Promise<Params> {
  const contentType = req.headers['content-type'] ?? '';
  const mediaType = contentType.split(';')[0]?.trim().toLowerCase() ?? '';
  if (mediaType === '' || mediaType === 'application/x-www-form-urlencoded') return new URLSearchParams(body.toString('utf8'));
  if (mediaType === 'multipart/form-data') {
    try {
      const form = await new Response(new Uint8Array(body), { headers: { 'content-type': contentType } }).formData();
      const params = new URLSearchParams();
      form.forEach((value, key) => {
        if (typeof value === 'string') params.append(key, value);
      });
      return params;
    } catch {
      throw new SimError(400, 'Malformed multipart/form-data body');
    }
  }
  throw new SimError(400, `Unsupported Content-Type ${JSON.stringify(mediaType.slice(0, 60))}: send application/x-www-form-urlencoded or multipart/form-data`);
}
