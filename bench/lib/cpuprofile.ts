/**
 * Summary of a V8 .cpuprofile (node --cpu-prof): self time per function and per package/module, as a
 * share of the time the process was not idle.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface CostLine {
  name: string;
  selfMs: number;
  /** Share of non-idle time, 0–1. */
  share: number;
}

export interface ProfileSummary {
  /** Sampled time the process was busy (not idle), ms. */
  busyMs: number;
  topFunctions: CostLine[];
  topModules: CostLine[];
}

/**
 * Source file of a line in an esbuild bundle: esbuild marks where each input file starts with a
 * `// path/to/file.ts` comment line, so the last marker at or above a line names its file.
 */
const bundleMaps = new Map<string, Array<[number, string]>>();
function bundledSource(url: string, line: number): string | undefined {
  if (!url.startsWith('file://') || !url.endsWith('.mjs')) return undefined;
  let marks = bundleMaps.get(url);
  if (!marks) {
    marks = [];
    try {
      readFileSync(new URL(url), 'utf8')
        .split('\n')
        .forEach((text, i) => {
          const m = /^\/\/ ((?:src|bench)\/\S+\.ts)$/.exec(text);
          if (m) marks!.push([i, m[1]!]);
        });
    } catch {
      // Not readable: leave the URL as it is.
    }
    bundleMaps.set(url, marks);
  }
  let found: string | undefined;
  for (const [start, file] of marks) {
    if (start > line) break;
    found = file;
  }
  return found;
}

/** Where a script URL belongs: an npm package, a gateway source directory, or Node itself. */
export function moduleOf(url: string, functionName: string, line = 0): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native / V8 builtins)';
  const bundled = bundledSource(url, line);
  if (bundled) return `gateway ${bundled.split('/').slice(0, -1).join('/')}`;
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/').slice(0, 2).join('/')}`;
  const src = url.indexOf('/src/');
  if (src >= 0) return `gateway src/${url.slice(src + 5).split('/').slice(0, -1).join('/') || '.'}`;
  return url;
}

function shortUrl(url: string, line = 0): string {
  const bundled = bundledSource(url, line);
  if (bundled) return bundled;
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length);
  const src = url.indexOf('/src/');
  if (src >= 0) return url.slice(src + 1);
  return url.replace(/^file:\/\//, '');
}

export function summariseProfile(path: string, top = 12): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfById = new Map<number, number>();
  // The first delta runs from the profiler's start to the first sample (the start request itself): not workload.
  for (let i = 1; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    selfById.set(id, (selfById.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  }
  const fns = new Map<string, number>();
  const mods = new Map<string, number>();
  let busy = 0;
  for (const [id, selfMs] of selfById) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    if (functionName === '(idle)') continue;
    busy += selfMs;
    const fn = url ? `${functionName || '(anonymous)'} (${shortUrl(url, lineNumber)}${bundledSource(url, lineNumber) ? '' : `:${lineNumber + 1}`})` : functionName || '(anonymous)';
    fns.set(fn, (fns.get(fn) ?? 0) + selfMs);
    const mod = moduleOf(url, functionName, lineNumber);
    mods.set(mod, (mods.get(mod) ?? 0) + selfMs);
  }
  const lines = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, selfMs]) => ({ name, selfMs: Math.round(selfMs), share: busy ? Math.round((selfMs / busy) * 1000) / 1000 : 0 }));
  return { busyMs: Math.round(busy), topFunctions: lines(fns), topModules: lines(mods) };
}
