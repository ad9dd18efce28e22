/**
 * Every name /metrics exposes follows Prometheus naming (prometheus.io/docs/practices/naming): snake_case,
 * one prefix, `_total` on counters and only on them, base units (`_seconds`, `_bytes`), a HELP line each.
 * The scrape is of the real gateway after some traffic, so a metric added anywhere is linted here.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../helpers/gateway.js';

/** `gateway_` for the gateway's own metrics; the runtime metrics keep prom-client's standard names. */
const PREFIXES = ['gateway', 'process', 'nodejs'];
const NON_BASE_UNITS = ['ms', 'msec', 'milliseconds', 'microseconds', 'us', 'nanoseconds', 'ns', 'minutes', 'hours', 'days', 'kb', 'kib', 'kilobytes', 'mb', 'mib', 'megabytes', 'gb', 'percent'];
const TIME_WORDS = ['duration', 'latency', 'lag', 'time', 'age', 'uptime', 'delay', 'wait'];
const SIZE_WORDS = ['bytes', 'memory', 'size'];

interface Family {
  name: string;
  type: string;
  help: string | undefined;
}

function families(text: string): Family[] {
  const help = new Map<string, string>();
  const out: Family[] = [];
  for (const line of text.split('\n')) {
    const h = /^# HELP (\S+) (.*)$/.exec(line);
    if (h) help.set(h[1]!, h[2]!);
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) out.push({ name: t[1]!, type: t[2]!, help: help.get(t[1]!) });
  }
  return out;
}

/** What is wrong with one family's name, per Prometheus naming; empty when nothing is. */
function namingProblems({ name, type, help }: Family): string[] {
  const problems: string[] = [];
  const words = name.split('_');
  if (!/^[a-z][a-z0-9]*(_[a-z0-9]+)*$/.test(name)) problems.push('not snake_case');
  if (!PREFIXES.includes(words[0]!)) problems.push(`prefix "${words[0]}" is none of ${PREFIXES.join(', ')}`);
  if (PREFIXES.includes(words[1] ?? '')) problems.push(`two prefixes ("${words[0]}_${words[1]}_")`);
  for (let i = 1; i < words.length; i++) if (words[i] === words[i - 1]) problems.push(`doubled word "${words[i]}"`);
  const total = name.endsWith('_total');
  if (type === 'counter' && !total) problems.push('a counter without _total');
  if (type !== 'counter' && total) problems.push(`a ${type} ending in _total`);
  const unitless = total ? words.slice(0, -1) : words;
  for (const word of unitless) if (NON_BASE_UNITS.includes(word)) problems.push(`non-base unit "${word}"`);
  const last = unitless[unitless.length - 1];
  if (unitless.some((w) => TIME_WORDS.includes(w)) && last !== 'seconds') problems.push('a time not in _seconds');
  if (unitless.some((w) => SIZE_WORDS.includes(w)) && last !== 'bytes') problems.push('a size not in _bytes');
  if (!help) problems.push('no HELP text');
  return problems;
}

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway();
  // Some traffic first, so families that appear only once used are in the scrape too.
  await gw.gql('query Phones { exophones { sid } }');
  await gw.gql('query Broken { call(sid: 1) }');
});

describe('/metrics names', () => {
  it('follow Prometheus naming, every one of them', async () => {
    const res = await fetch(`${gw.url}/metrics`);
    expect(res.status).toBe(200);
    const found = families(await res.text());
    expect(found.length).toBeGreaterThan(20);
    expect(found.map((f) => f.name)).toEqual(expect.arrayContaining(['gateway_graphql_operations_total', 'process_cpu_user_seconds_total']));
    const problems = found.map((f) => ({ name: f.name, problems: namingProblems(f) })).filter((f) => f.problems.length > 0);
    expect(problems).toEqual([]);
  });

  it('use snake_case label names, none of them reserved (__*) or a unit', async () => {
    const text = await (await fetch(`${gw.url}/metrics`)).text();
    const labels = new Set<string>();
    for (const line of text.split('\n')) {
      const inner = /^[a-z_][a-z0-9_]*\{(.*)\} /.exec(line)?.[1];
      for (const m of inner?.matchAll(/([A-Za-z_][A-Za-z0-9_]*)="/g) ?? []) labels.add(m[1]!);
    }
    expect(labels.size).toBeGreaterThan(3);
    const bad = [...labels].filter((l) => !/^[a-z][a-z0-9]*(_[a-z0-9]+)*$/.test(l) || NON_BASE_UNITS.includes(l));
    expect(bad).toEqual([]);
  });

  it('the lint catches the names it is there to catch', () => {
    const bad: Family[] = [
      { name: 'gateway_process_process_cpu_user_seconds_total', type: 'counter', help: 'x' },
      { name: 'gateway_requests', type: 'counter', help: 'x' },
      { name: 'nodejs_active_handles_total', type: 'gauge', help: 'x' },
      { name: 'gateway_request_duration_ms', type: 'histogram', help: 'x' },
      { name: 'gateway_payload_size', type: 'histogram', help: 'x' },
      { name: 'gatewayUpstreamRequests_total', type: 'counter', help: 'x' },
      { name: 'app_requests_total', type: 'counter', help: 'x' },
    ];
    for (const family of bad) expect(namingProblems(family), family.name).not.toEqual([]);
    expect(namingProblems({ name: 'gateway_upstream_request_duration_seconds', type: 'histogram', help: 'x' })).toEqual([]);
  });
});
