/**
 * Event ids shaped like Redis stream ids, "<ms>-<seq>". They sort as (ms, seq) pairs of numbers, never as
 * strings: "9-0" < "10-0" although "9-0" > "10-0" as text.
 */
import { badInput } from '../errors.js';

export interface EventIdParts {
  ms: number;
  seq: number;
}

const ID = /^(\d{1,16})-(\d{1,16})$/;

/** The parts of a well-formed id, or undefined. */
export function parseEventId(id: string): EventIdParts | undefined {
  const m = ID.exec(id);
  if (!m) return undefined;
  const ms = Number(m[1]);
  const seq = Number(m[2]);
  // Past 2^53 the numbers would compare wrongly; real ids (epoch ms, small seq) never get there.
  if (!Number.isSafeInteger(ms) || !Number.isSafeInteger(seq)) return undefined;
  return { ms, seq };
}

/** Parses a cursor given by a client: a malformed one is BAD_USER_INPUT on `after`, not "start over". */
export function parseCursor(afterId: string): EventIdParts {
  const parts = parseEventId(afterId);
  if (!parts) throw badInput('after', `"${afterId.slice(0, 40)}" is not an event id (expected "<ms>-<seq>")`);
  return parts;
}

export function formatEventId(parts: EventIdParts): string {
  return `${parts.ms}-${parts.seq}`;
}

/** Negative when a < b, 0 when equal, positive when a > b, comparing (ms, seq) numerically. */
export function compareEventIdParts(a: EventIdParts, b: EventIdParts): number {
  return a.ms - b.ms || a.seq - b.seq;
}

/** compareEventIdParts for id strings; throws on a malformed id. */
export function compareEventIds(a: string, b: string): number {
  return compareEventIdParts(parseCursor(a), parseCursor(b));
}
