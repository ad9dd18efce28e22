import type { BenchContext, FigureResult } from '../lib/types.js';
export async function scaleOut(_ctx: BenchContext): Promise<FigureResult> {
  return { id: 'scaleout', title: 'scaleout', metrics: {}, targets: [], markdown: [], details: {}, skipped: 'not written yet' };
}
