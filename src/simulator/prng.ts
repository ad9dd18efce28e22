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
  /** 32 lowercase hex characters, like Exotel's Call and SMS Sids. */
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
    sid: () => Array.from({ length: 4 }, () => Math.floor(next() * 0x100000000).toString(16).padStart(8, '0')).join(''),
  };
}

/** A fresh random Sid (32 lowercase hex) for calls and SMS created at run time. */
export function randomSid(): string {
  return randomBytes(16).toString('hex');
}
