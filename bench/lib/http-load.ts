/**
 * HTTP load from the bench process with autocannon. Latencies are taken from autocannon's response
 * events (fractional ms) rather than its histogram, which rounds to whole milliseconds: a sub-millisecond
 * baseline would otherwise read as 0 or 1.
 */
import autocannon from 'autocannon';
import { Samples, round, summarise, type Summary } from './stats.js';

export interface HttpLoadOptions {
  url: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  /** Builds each request's body (distinct webhooks); called once per request. */
  bodyFor?: () => string;
  connections: number;
  durationS: number;
  /** Open-loop rate, requests/s over all connections; unset → as fast as the server answers. */
  overallRate?: number;
}

export interface HttpLoadResult {
  requests: number;
  durationS: number;
  /** Answered requests per second (2xx and others alike). */
  rps: number;
  /** Latency of every answer, ms. */
  latencyMs: Summary;
  non2xx: number;
  errors: number;
  timeouts: number;
}

export async function httpLoad(options: HttpLoadOptions): Promise<HttpLoadResult> {
  const samples = new Samples();
  const bodyFor = options.bodyFor;
  const instance = autocannon({
    url: options.url,
    method: options.method ?? 'POST',
    headers: options.headers ?? {},
    connections: options.connections,
    duration: options.durationS,
    timeout: 10,
    ...(options.overallRate ? { overallRate: options.overallRate } : {}),
    ...(options.body !== undefined ? { body: options.body } : {}),
    ...(bodyFor ? { requests: [{ setupRequest: (req) => ({ ...req, body: bodyFor() }) }] } : {}),
  });
  instance.on('response', (_client: unknown, _status: number, _bytes: number, responseTimeMs: number) => samples.push(responseTimeMs));
  const result = await instance;
  return {
    requests: samples.length,
    durationS: result.duration,
    rps: round(samples.length / result.duration, 0),
    latencyMs: summarise(samples.values()),
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
  };
}
