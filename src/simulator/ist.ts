/**
 * Exotel's timestamps: Indian wall-clock time "YYYY-MM-DD HH:mm:ss" with no zone (IST, UTC+05:30,
 * no daylight saving — so a fixed offset is exact).
 */

/** Exotel's "not set" date: epoch zero in IST (an unsent SMS's DateSent, a flow's EndTime). */
export const EPOCH_ZERO_IST = '1970-01-01 05:30:00';

const IST_OFFSET_MS = 5.5 * 60 * 60 * 1000;
const IST_PATTERN = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/;

/** Epoch milliseconds → "YYYY-MM-DD HH:mm:ss" in IST. */
export function formatIst(epochMs: number): string {
  return new Date(epochMs + IST_OFFSET_MS).toISOString().slice(0, 19).replace('T', ' ');
}

/** "YYYY-MM-DD HH:mm:ss" (IST) → epoch milliseconds; null when malformed or not a real date. */
export function parseIst(text: string): number | null {
  const m = IST_PATTERN.exec(text);
  if (!m) return null;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const utc = Date.UTC(y, mo - 1, d, h, mi, s);
  // Date.UTC rolls 2026-02-31 over into March; a round trip catches such impossible dates.
  const back = new Date(utc);
  if (back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d || h > 23 || mi > 59 || s > 59) {
    return null;
  }
  return utc - IST_OFFSET_MS;
}
