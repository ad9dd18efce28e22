/** Deterministic randomness for the seeded history, and Exotel-looking Sids. */
import { randomBytes } from 'node:crypto';

/** A small seeded PRNG (mulberry32): same seed, same history on every start. */
export interface Prng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Integer in [min, max]. */
  int(min: number, max: number): number;
  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T;
  /** 32 characters like Exotel's Call and SMS Sids: lowercase hex, the last one often a letter past f. */
  sid(): string;
}

export function createPrng(seed: number): Prng {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (min: number, max: number): number => min + Math.floor(next() * (max - min + 1));
  return {
    next,
    int,
    pick: <T>(items: readonly T[]): T => items[int(0, items.length - 1)] as T,
    sid: () => {
      const hex = Array.from({ length: 4 }, () => Math.floor(next() * 0x100000000).toString(16).padStart(8, '0')).join('');
      return hex.slice(0, 31) + SID_LAST.charAt(int(0, SID_LAST.length - 1));
    },
  };
}

/**
 * Real Sids are 32 characters, mostly lowercase hex, but often end in a letter that is not hex (`…189g`,
 * `…162m`, `…1a8u`: docs/exotel-fidelity.md). The seeded history mixes both endings.
 */
const SID_LAST = '0123456789abcdefghjkmnpqrstuvwxyz';
const NON_HEX_LAST = 'ghjkmnpqrstuvwxyz';

/** A fresh random Sid for calls and SMS created at run time: 31 hex characters and a non-hex last letter, so every client test meets one. */
export function randomSid(): string {
  const bytes = randomBytes(17);
  return bytes.subarray(0, 16).toString('hex').slice(0, 31) + NON_HEX_LAST.charAt(bytes[16]! % NON_HEX_LAST.length);
}
