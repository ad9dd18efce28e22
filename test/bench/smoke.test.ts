/**
 * The bench harness in quick mode: it starts its own servers, writes latest.json and latest.md, and the
 * JSON has the shape docs/benchmarks.md describes. Shape only — never speed (speed belongs to `npm run bench`).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..', '..');
const out = mkdtempSync(join(tmpdir(), 'egg-bench-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('bench harness (quick mode)', () => {
  it('runs two figures against their baselines and writes latest.json and latest.md', () => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--quick', '--only=upstream,fanout', `--out=${out}`], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(run.status, run.stdout + run.stderr).toBe(0);
    const report = JSON.parse(readFileSync(join(out, 'latest.json'), 'utf8')) as Record<string, unknown>;
    expect(report.quick).toBe(true);
    expect(report.machine).toMatchObject({ cores: expect.any(Number), node: process.version });
    expect(Number.isNaN(Date.parse(String(report.date)))).toBe(false);
    // Every required key is present; the ones of figures that ran are numbers, the rest null.
    for (const key of ['upstreamPer1000Cold', 'upstreamPer1000Warm', 'fanoutP50Ms10k', 'fanoutP99Ms10k', 'fanoutRateRatio', 'bytesPerSubscription', 'fanoutCpuUsPerFrame10k', 'fanoutCpuVsRaw', 'fanoutCpuVsFloor']) {
      expect(typeof report[key], key).toBe('number');
    }
    for (const key of ['queryThroughputRatio', 'queryP99Ms', 'baselineP99Ms', 'webhookAckP99Ms', 'overloadUpstreamPerMin', 'overloadUpstream429s']) {
      expect(report[key], key).toBeNull();
    }
    // Counted at the simulator: repeated lookups of terminal calls are answered from the cache.
    expect(report.upstreamPer1000Warm).toBe(0);
    const figures = report.figures as Record<string, { skipped: string | null }>;
    expect(figures.upstream?.skipped).toBeNull();
    expect(figures.fanout?.skipped).toBeNull();
    const md = readFileSync(join(out, 'latest.md'), 'utf8');
    expect(md).toContain('## 2. Upstream efficiency');
    expect(md).toContain('raw `ws`');
  }, 60_000);
});
