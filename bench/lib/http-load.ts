/**
 * HTTP load from the bench process with autocannon. Latencies are taken from autocannon's response
 * events (fractional ms) rather than its histogram, which rounds to whole milliseconds: a sub-millisecond
 * baseline would otherwise read as 0 or 1.
 */
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
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

export interface PacedLoadOptions {
  url: string;
  headers?: Record<string, string>;
  bodyFor: () => string;
  /** Requests per second, spread evenly (one every 1000/rate ms), whatever the answers do. */
  rate: number;
  durationS: number;
}

/**
 * An open-loop load at a steady rate: autocannon's `overallRate` releases each second's quota as a burst
 * at the start of the second, which measures queueing behind the burst rather than the ack time of a
 * steady stream. Requests go over keep-alive connections (as many as are in flight).
 */
export async function pacedLoad(options: PacedLoadOptions): Promise<HttpLoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const url = new URL(options.url);
  const total = Math.round(options.rate * options.durationS);
  const samples = new Samples();
  let non2xx = 0;
  let errors = 0;
  let sent = 0;
  let done = 0;
  const started = performance.now();
  await new Promise<void>((resolve) => {
    const fire = () => {
      const body = options.bodyFor();
      const t0 = performance.now();
      const req = request(url, { method: 'POST', agent, headers: { ...options.headers, 'content-length': Buffer.byteLength(body) } }, (res) => {
        res.resume();
        res.on('end', () => {
          samples.push(performance.now() - t0);
          if (!res.statusCode || res.statusCode < 200 || res.statusCode >= 300) non2xx++;
          if (++done === total) resolve();
        });
      });
      req.on('error', () => {
        errors++;
        if (++done === total) resolve();
      });
      req.end(body);
    };
    const timer = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - started) * options.rate) / 1000) + 1);
      while (sent < due) {
        sent++;
        fire();
      }
      if (sent === total) clearInterval(timer);
    }, 1);
  });
  agent.destroy();
  const durationS = (performance.now() - started) / 1000;
  return { requests: samples.length, durationS: round(durationS, 2), rps: round(samples.length / durationS, 0), latencyMs: summarise(samples.values()), non2xx, errors, timeouts: 0 };
}
