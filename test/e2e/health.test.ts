/**
 * /healthz and /readyz (docs/operations.md, "Health"): liveness is the process; readiness is storage and Exotel
 * reachable (design.md), also told to Prometheus as gateway_dependency_up.
 * Exotel's reachability is judged from the gateway's own requests (no probe spends the budget): attempts
 * that get no HTTP answer at all, produced here by the simulator dropping connections.
 */
import { describe, expect, it } from 'vitest';
import { UPSTREAM_HEALTH_DEFAULTS } from '../../src/http/upstream-health.js';
import { startGateway } from '../helpers/gateway.js';

async function probe(url: string) {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('health endpoints', () => {
  it('is ready with storage and Exotel reachable; not ready while Exotel drops every connection, and gateway_dependency_up says so; ready again after', async () => {
    const gw = await startGateway();
    const sim = gw.simulator!;
    expect(await probe(`${gw.url}/readyz`)).toEqual({ status: 200, body: { status: 'ready', checks: { started: true, storage: true, upstream: true } } });

    sim.faults.inject({ kind: 'drop-connection', count: 'all' });
    const live = sim.calls.create({ from: '+919800000031', to: '+919800000032', callerId: '08039591111' });
    const sids = Array.from({ length: UPSTREAM_HEALTH_DEFAULTS.failuresToMark }, (_, i) => `${live.Sid.slice(0, -2)}${String(i).padStart(2, '0')}`);
    for (const sid of sids) {
      const { body } = await gw.gql('query($sid: ID!) { call(sid: $sid) { sid } }', { sid });
      expect(body.errors?.[0]?.extensions?.code).toBe('UPSTREAM_UNAVAILABLE');
    }
    expect(await probe(`${gw.url}/readyz`)).toEqual({ status: 503, body: { status: 'not ready', checks: { started: true, storage: true, upstream: false }, reason: expect.stringContaining('Exotel is unreachable') } });
    expect(await (await fetch(`${gw.url}/metrics`)).text()).toContain('gateway_dependency_up{dependency="exotel"} 0');
    // Liveness is the process only: a load balancer must not restart a gateway because Exotel is down.
    expect(await probe(`${gw.url}/healthz`)).toEqual({ status: 200, body: { status: 'ok' } });

    sim.faults.clear();
    const { body } = await gw.gql('query($sid: ID!) { call(sid: $sid) { sid } }', { sid: live.Sid });
    expect(body.data.call.sid).toBe(live.Sid);
    expect(await probe(`${gw.url}/readyz`)).toEqual({ status: 200, body: { status: 'ready', checks: { started: true, storage: true, upstream: true } } });
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toContain('gateway_dependency_up{dependency="exotel"} 1');
    expect(metrics).toContain('gateway_dependency_up{dependency="storage"} 1');
  });
});
