/**
 * METRICS_PORT moves GET /metrics to a listener of its own: the scrape answers there, and the main port,
 * which faces clients, no longer serves it.
 */
import { describe, expect, it } from 'vitest';
import { startGateway } from '../helpers/gateway.js';

describe('METRICS_PORT', () => {
  it('serves /metrics on its own listener only, and closes it on stop', async () => {
    const gw = await startGateway({ METRICS_PORT: '0' }, {}, {}, { autoStop: false });
    try {
      expect(new URL(gw.metricsUrl).port).not.toBe(new URL(gw.url).port);
      // The start line says where to scrape, since it is not the port the clients use.
      expect(gw.logs.find((l) => l.msg === 'gateway listening')).toMatchObject({ url: gw.url, metricsUrl: gw.metricsUrl });
      const scrape = await fetch(gw.metricsUrl);
      expect(scrape.status).toBe(200);
      expect(scrape.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(await scrape.text()).toMatch(/^gateway_ws_sockets 0$/m);
      // The client-facing port has no /metrics any more; the metrics port has nothing else.
      const main = await fetch(`${gw.url}/metrics`);
      expect(main.status).toBe(404);
      await main.text();
      const other = await fetch(gw.metricsUrl.replace(/\/metrics$/, '/graphql'));
      expect(other.status).toBe(404);
      await other.text();
    } finally {
      await gw.stop();
    }
    await expect(fetch(gw.metricsUrl)).rejects.toThrow();
  });

  it('unset: /metrics is on the main port', async () => {
    const gw = await startGateway();
    expect(gw.metricsUrl).toBe(`${gw.url}/metrics`);
    const scrape = await fetch(gw.metricsUrl);
    expect(scrape.status).toBe(200);
    expect(await scrape.text()).toMatch(/^gateway_ws_sockets 0$/m);
  });
});
