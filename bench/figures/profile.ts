import type { BenchContext, FigureResult } from '../lib/types.js';
export async function profile(_ctx: BenchContext): Promise<FigureResult> {
  return { id: 'profile', title: 'profile', metrics: {}, targets: [], markdown: [], details: {}, skipped: 'not written yet' };
}
