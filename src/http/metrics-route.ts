/** GET /metrics: the Prometheus text exposition of the gateway's registry. */
import type { RequestHandler } from 'express';
import type { Metrics } from '../metrics.js';

export const METRICS_PATH = '/metrics';

export function metricsHandler(metrics: Metrics, onError: (err: unknown) => void): RequestHandler {
  return async (_req, res) => {
    try {
      const text = await metrics.render();
      res.status(200).type(metrics.contentType).send(text);
    } catch (err) {
      onError(err);
      res.status(500).type('text/plain').send('metrics unavailable');
    }
  };
}
