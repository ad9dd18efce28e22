/**
 * The recorded Passthru / Connect-applet request shapes (test/fixtures/passthru/): the gateway must read
 * each as recorded, over real HTTP, and the simulator's own flow requests must carry the same parameter
 * names, so the two cannot drift apart in the same wrong direction. Runs in New York time.
 */
process.env.TZ = 'America/New_York';

import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createSimulator } from '../../src/simulator/index.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { callbackUrlsOf } from '../live/webhook-helpers.js';

interface PassthruFixture {
  _source: string;
  step: 'start' | 'connect' | 'end';
  method: 'GET' | 'POST';
  query: string;
  expect: { status: string; call: Record<string, unknown>; flow: Record<string, unknown> };
}

const DIR = join(import.meta.dirname, '..', 'fixtures', 'passthru');
const STEP_ORDER = ['start', 'connect', 'end'];
// In flow order: fixtures of one call (same CallSid) build on each other, as the requests of a flow do.
const fixtures = new Map<string, PassthruFixture>(
  readdirSync(DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f): [string, PassthruFixture] => [f.replace(/\.json$/, ''), JSON.parse(readFileSync(join(DIR, f), 'utf8')) as PassthruFixture])
    .sort(([, a], [, b]) => STEP_ORDER.indexOf(a.step) - STEP_ORDER.indexOf(b.step)),
);

/** Parameter names of a query string, `Legs[0][Number]` style keys decoded. */
const names = (query: string): string[] => [...new Set([...new URLSearchParams(query).keys()])].sort();

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway({ SIMULATOR_TIME_SCALE: '0.02', LIVE_POLL_INTERVAL_MS: '60000' });
});

describe('recorded Passthru requests through the gateway', () => {
  it('has a fixture for each step of a flow', () => {
    expect(new Set([...fixtures.values()].map((f) => f.step))).toEqual(new Set(['start', 'connect', 'end']));
    for (const f of fixtures.values()) expect(f._source.length).toBeGreaterThan(20);
  });

  it.each([...fixtures.keys()])('reads %s as recorded', async (name) => {
    const fixture = fixtures.get(name)!;
    const res = await fetch(`${callbackUrlsOf(gw).incomingCall}?${fixture.query}`, { method: fixture.method });
    expect([res.status, await res.text()]).toEqual([200, '']);
    const sid = new URLSearchParams(fixture.query).get('CallSid')!;
    const history = await gw.storage.events.callHistory(gw.exotel.accountSid, sid);
    expect(history.at(-1)!.status).toBe(fixture.expect.status);
    const flowFields = Object.keys(fixture.expect.flow).map((k) => (k === 'legs' ? 'legs { id number type onCallDurationSeconds callerId causeCode cause }' : k));
    const { body } = await gw.gql(`query($sid: ID!) { call(sid: $sid) { status ${Object.keys(fixture.expect.call).join(' ')} flow { ${flowFields.join(' ')} } } }`, { sid });
    expect(body.errors).toBeUndefined();
    expect(body.data.call).toEqual({ status: fixture.expect.status, ...fixture.expect.call, flow: fixture.expect.flow });
  });
});

describe('the simulator\'s flow requests against the recorded shapes', () => {
  let receiver: Server;
  const received: Array<{ method: string; query: string }> = [];
  beforeAll(async () => {
    receiver = createServer((req, res) => {
      received.push({ method: req.method ?? '', query: (req.url ?? '').split('?')[1] ?? '' });
      res.end();
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  });
  afterAll(() => new Promise<void>((resolve) => receiver.close(() => resolve())));

  it('sends, step by step, exactly the recorded parameter names', async () => {
    const sim = await createSimulator({ port: 0, seed: false, timeScale: 0.01, log: () => undefined, incomingCallUrl: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/passthru` });
    try {
      for (const outcome of ['answered', 'caller-hung-up'] as const) {
        received.length = 0;
        const { sid } = sim.incoming.start({ outcome, digits: '2' });
        await vi.waitFor(() => expect(sim.incoming.get(sid)!.done).toBe(true), { timeout: 10_000, interval: 10 });
        const sent = received.map((r) => names(r.query));
        expect(received.map((r) => r.method)).toEqual(['GET', 'GET', 'GET']);
        expect(sent[0]).toEqual(names(fixtures.get('flow-start')!.query));
        expect(sent[1]).toEqual(names(fixtures.get('flow-connect')!.query));
        expect(sent[2]).toEqual(names(fixtures.get(outcome === 'answered' ? 'flow-end-answered' : 'flow-end-caller-hung-up')!.query));
        // A "+" in a number stays unencoded, as Exotel sends it.
        expect(received[1]!.query).toMatch(/DialWhomNumber=\+91/);
        // Its call details say "human" once the call ended, answered or not, as Exotel's do.
        await vi.waitFor(() => expect(sim.calls.get(sid)).toMatchObject({ Status: outcome === 'answered' ? 'completed' : 'canceled', AnsweredBy: 'human' }), { timeout: 5_000, interval: 10 });
      }
    } finally {
      await sim.stop();
    }
  });

  it('leaves the "+" of every number unencoded, an ExoPhone in E.164 and a leg\'s CallerId too', async () => {
    const sim = await createSimulator({ port: 0, seed: false, timeScale: 0.01, log: () => undefined, incomingCallUrl: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/passthru` });
    try {
      received.length = 0;
      const { sid } = sim.incoming.start({ outcome: 'answered', to: '+918039591111', from: '+919876543210' });
      await vi.waitFor(() => expect(sim.incoming.get(sid)!.done).toBe(true), { timeout: 10_000, interval: 10 });
      const end = received[2]!.query;
      for (const name of ['CallFrom', 'CallTo', 'From', 'To', 'OutgoingPhoneNumber', 'Legs%5B0%5D%5BNumber%5D', 'Legs%5B0%5D%5BCallerId%5D']) expect({ name, raw: new RegExp(`(^|&)${name}=\\+91`).test(end) }).toEqual({ name, raw: true });
      expect(end).not.toContain('%2B');
    } finally {
      await sim.stop();
    }
  });
});
