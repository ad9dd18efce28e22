/**
 * Opaque cursors of the `calls` connection. Exotel pages with `After` cursors that point at page
 * boundaries, while a Relay cursor points at one item; a cursor therefore names a position as
 * "the Exotel page fetched with After = p and PageSize = s, item o", or "the start of the Exotel page
 * After = n". It also carries a hash of the filter, because an Exotel cursor only means something for
 * the query that produced it.
 *
 * Wire form: base64url of JSON `{v:1, f, p, s, o}` or `{v:1, f, n}`. Clients must treat it as opaque.
 */
import { createHash } from 'node:crypto';
import { badInput } from '../errors.js';
import { stableStringify } from './idempotency.js';

export type CallCursor =
  /** After item `o` of the page fetched with After = `p` (null: the first page) and PageSize = `s`. */
  | { kind: 'item'; filterHash: string; pageAfter: string | null; pageSize: number; offset: number }
  /** At the start of the Exotel page fetched with After = `n`. */
  | { kind: 'page'; filterHash: string; nextAfter: string };

/** Short, stable hash of a normalised filter. */
export function filterHash(filter: unknown): string {
  return createHash('sha256').update(stableStringify(filter)).digest('base64url').slice(0, 16);
}

export function encodeCursor(cursor: CallCursor): string {
  const json =
    cursor.kind === 'item'
      ? { v: 1, f: cursor.filterHash, p: cursor.pageAfter, s: cursor.pageSize, o: cursor.offset }
      : { v: 1, f: cursor.filterHash, n: cursor.nextAfter };
  return Buffer.from(JSON.stringify(json)).toString('base64url');
}

/** Reads a client's `after`; BAD_USER_INPUT when it is not one of ours or belongs to another filter. */
export function decodeCursor(value: string, expectedFilterHash: string, field = 'after'): CallCursor {
  const invalid = () => badInput(field, 'not a cursor of this connection; pass pageInfo.endCursor or an edge cursor unchanged');
  let raw: unknown;
  try {
    if (!/^[A-Za-z0-9_-]+$/.test(value)) throw invalid();
    raw = JSON.parse(Buffer.from(value, 'base64url').toString('utf8'));
  } catch {
    throw invalid();
  }
  if (typeof raw !== 'object' || raw === null) throw invalid();
  const c = raw as Record<string, unknown>;
  if (c.v !== 1 || typeof c.f !== 'string') throw invalid();
  if (c.f !== expectedFilterHash) {
    throw badInput(field, 'this cursor belongs to a different filter; start again without `after` when the filter changes');
  }
  if (typeof c.n === 'string' && c.n.length > 0) return { kind: 'page', filterHash: c.f, nextAfter: c.n };
  const pageAfter = c.p === null ? null : typeof c.p === 'string' ? c.p : undefined;
  if (
    pageAfter === undefined ||
    typeof c.s !== 'number' ||
    !Number.isInteger(c.s) ||
    c.s < 1 ||
    c.s > 100 ||
    typeof c.o !== 'number' ||
    !Number.isInteger(c.o) ||
    c.o < 0 ||
    c.o >= c.s
  ) {
    throw invalid();
  }
  return { kind: 'item', filterHash: c.f, pageAfter, pageSize: c.s, offset: c.o };
}
