/**
 * GET /metrics: the Prometheus text exposition of the gateway's registry — on the main port, or, with
 * METRICS_PORT set, on a listener of its own (and then not on the main port), so the scrape endpoint can
 * stay on an internal network while /graphql faces clients.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Metrics } from '../metrics.js';

export const METRICS_PATH = '/metrics';

/** Answers one scrape (node:http or express request alike). */
export function metricsHandler(metrics: Metrics, onError: (err: unknown) => void): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return async (_req, res) => {
    try {
      const text = await metrics.render();
      res.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store' }).end(text);
    } catch (err) {
      onError(err);
      res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable');
    }
  };
}

export interface MetricsListener {
  /** http://host:port/metrics of the listener. */
  url: string;
  close(): Promise<void>;
}

/** A listener serving only GET /metrics (404 for anything else) on `host`:`port` (0 → a free port). */
export async function listenMetrics(metrics: Metrics, options: { host: string; port: number; onError: (err: unknown) => void }): Promise<MetricsListener> {
  const handle = metricsHandler(metrics, options.onError);
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path === METRICS_PATH && (req.method === 'GET' || req.method === 'HEAD')) void handle(req, res);
    else res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host === '0.0.0.0' || options.host === '::' ? '127.0.0.1' : options.host;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}${METRICS_PATH}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
