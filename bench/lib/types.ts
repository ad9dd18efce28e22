/** What every figure module receives and returns. */

export interface BenchContext {
  /** Short runs and small fleets (the smoke test); figures are then indicative only. */
  quick: boolean;
  log(message: string): void;
}

/** One target of a figure and how this run did against it. */
export interface TargetCheck {
  what: string;
  target: string;
  measured: string;
  /** null: not applicable in this run (skipped). */
  met: boolean | null;
}

export interface FigureResult {
  id: string;
  title: string;
  /** Numeric keys merged into latest.json's top level (null when not measured). */
  metrics: Record<string, number | null>;
  targets: TargetCheck[];
  /** Markdown lines for latest.md (a table and notes). */
  markdown: string[];
  /** Everything measured, for latest.json. */
  details: Record<string, unknown>;
  /** Set when the figure could not run here, with the reason. */
  skipped?: string;
}

/** A markdown table from a header and rows. */
export function table(header: string[], rows: Array<Array<string | number>>): string[] {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)];
}

/** "1,234" */
export const n = (v: number): string => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : String(v));
/** "12.3%" */
export const pct = (ratio: number): string => `${(ratio * 100).toFixed(1)}%`;
/** "1.23 ms" */
export const ms = (v: number): string => `${v.toFixed(2)} ms`;
