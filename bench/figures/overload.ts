import type { BenchContext, FigureResult } from '../lib/types.js';
export async function overload(_ctx: BenchContext): Promise<FigureResult> {
  return { id: 'overload', title: 'overload', metrics: {}, targets: [], markdown: [], details: {}, skipped: 'not written yet' };
}
