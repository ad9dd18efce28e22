/** The simulator's own rate budget and injected faults (requests and callbacks). */
import { describe, expect, it } from 'vitest';
import { api, pause, startReceiver, startSim } from './helpers.js';

const call = { From: '09876543210', To: '09123456780', CallerId: '08039591111' };

describe('simulator rate budget', () => {
  it('answers 429 with Retry-After and X-RateLimit-* once its budget is spent, and recovers after the window', async () => {
    const sim = await startSim({ ratePerMinute: 3, rateWindowMs: 1500 });
    const first = await api(sim, 'Calls.json?PageSize=1');
    expect(first.status).toBe(200);
    expect(first.headers.get('x-ratelimit-limit')).toBe('3');
    expect(first.headers.get('x-ratelimit-remaining')).toBe('2');
    await api(sim, 'Calls.json?PageSize=1');
    await api(sim, 'Calls.json?PageSize=1');
    const limited = await api(sim, 'Calls.json?PageSize=1');
    expect(limited.status).toBe(429);
    expect(limited.body.RestException).toEqual({ Status: 429, Message: 'Too Many Requests' });
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(limited.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(Number(limited.headers.get('x-ratelimit-reset'))).toBeGreaterThan(Date.now() / 1000 - 1);
    await expect.poll(async () => (await api(sim, 'Calls.json?PageSize=1')).status, { timeout: 5000, interval: 200 }).toBe(200);
  });
});

describe('simulator request faults', () => {
  it('answers 5xx for the next N requests, only on the chosen endpoint', async () => {
    const sim = await startSim();
    sim.faults.failNext(2, 503, 'calls.get');
    const sid = sim.calls.list()[0]!.Sid;
    expect((await api(sim, 'Calls.json?PageSize=1')).status).toBe(200);
    const a = await api(sim, `Calls/${sid}.json`);
    expect(a.status).toBe(503);
    expect(a.body.RestException.Status).toBe(503);
    expect((await api(sim, `Calls/${sid}.json`)).status).toBe(503);
    expect((await api(sim, `Calls/${sid}.json`)).status).toBe(200);
    sim.faults.inject({ kind: 'error', count: 1 });
    expect((await api(sim, 'Numbers/09876543210.json')).status).toBe(500);
  });

  it('answers slowly so client timeouts fire, then serves normally', async () => {
    const sim = await startSim();
    sim.faults.slowNext(1, 2000);
    const url = `${sim.url}/v1/Accounts/${sim.accountSid}/Calls.json?PageSize=1`;
    const headers = { authorization: `Basic ${Buffer.from(`${sim.apiKey}:${sim.apiToken}`).toString('base64')}` };
    await expect(fetch(url, { headers, signal: AbortSignal.timeout(200) })).rejects.toThrow(/timeout|aborted/i);
    const ok = await fetch(url, { headers });
    expect(ok.status).toBe(200);
    expect((await ok.json()).Calls).toHaveLength(1);
  });

  it('storms 429 with and without Retry-After', async () => {
    const sim = await startSim();
    sim.faults.rateLimitNext(1, 7);
    sim.faults.rateLimitNext(1, null);
    const withHeader = await api(sim, 'Calls.json');
    expect(withHeader.status).toBe(429);
    expect(withHeader.headers.get('retry-after')).toBe('7');
    const without = await api(sim, 'Calls.json');
    expect(without.status).toBe(429);
    expect(without.headers.get('retry-after')).toBeNull();
    expect((await api(sim, 'Calls.json')).status).toBe(200);
  });

  it('answers 403/402 insufficient balance and can drop the connection', async () => {
    const sim = await startSim();
    sim.faults.inject({ kind: 'insufficient-balance', endpoint: 'sms.send' });
    sim.faults.inject({ kind: 'insufficient-balance', status: 402, endpoint: 'sms.send' });
    const form = { From: 'EXOSIM', To: '09876543210', Body: 'x' };
    const forbidden = await api(sim, 'Sms/send.json', { form });
    expect(forbidden.status).toBe(403);
    expect(forbidden.body.RestException.Message).toMatch(/Insufficient balance/);
    expect((await api(sim, 'Sms/send.json', { form })).status).toBe(402);
    sim.faults.inject({ kind: 'drop-connection', endpoint: 'calls.connect' });
    await expect(api(sim, 'Calls/connect.json', { form: call })).rejects.toThrow();
    expect(sim.requests.at(-1)).toMatchObject({ endpoint: 'calls.connect', status: 0 });
    expect((await api(sim, 'Calls/connect.json', { form: call })).status).toBe(200);
  });

  it('takes faults over HTTP at /__sim/faults (for a simulator in another process) and clears them', async () => {
    const sim = await startSim();
    const post = await fetch(`${sim.url}/__sim/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ kind: 'error', status: 502, count: 'all', endpoint: 'calls.list' }]) });
    expect(post.status).toBe(200);
    expect((await post.json()).faults).toEqual([{ kind: 'error', status: 502, count: 'all', endpoint: 'calls.list', remaining: 'all' }]);
    expect((await api(sim, 'Calls.json')).status).toBe(502);
    expect((await api(sim, 'Calls.json')).status).toBe(502);
    const bad = await fetch(`${sim.url}/__sim/faults`, { method: 'POST', body: JSON.stringify({ kind: 'explode' }) });
    expect(bad.status).toBe(400);
    expect((await bad.json()).RestException.Message).toMatch(/unknown fault kind/);
    expect((await fetch(`${sim.url}/__sim/faults`, { method: 'DELETE' })).status).toBe(200);
    expect((await api(sim, 'Calls.json')).status).toBe(200);
    expect(sim.faults.list()).toEqual([]);
  });
});

describe('simulator callback faults', () => {
  async function connect(sim: Awaited<ReturnType<typeof startSim>>, url: string, extra: Record<string, string> = {}): Promise<string> {
    const res = await api(sim, 'Calls/connect.json', { form: { ...call, StatusCallback: url, ...extra } });
    expect(res.status).toBe(200);
    return res.body.Call.Sid;
  }

  it('drops the next matching callback (only that one)', async () => {
    const sim = await startSim();
    const rx = await startReceiver();
    sim.faults.dropCallbacks(1, { kind: 'call' });
    const dropped = await connect(sim, rx.url);
    await sim.calls.waitFor(dropped, (c) => c.Duration !== null);
    const kept = await connect(sim, rx.url);
    const [cb] = await rx.waitFor(1);
    expect(cb!.fields.CallSid).toBe(kept);
    await sim.calls.waitFor(kept, (c) => c.Duration !== null);
    expect(rx.received.map((r) => r.fields.CallSid)).toEqual([kept]);
    expect(sim.callbacks.find((c) => c.sid === dropped)?.outcome).toBe('dropped');
  });

  it('drops every answered callback while keeping terminal ones', async () => {
    const sim = await startSim();
    const rx = await startReceiver();
    sim.faults.inject({ kind: 'drop-callbacks', count: 'all', match: { eventType: 'answered' } });
    const sid = await connect(sim, rx.url, { 'StatusCallbackEvents[0]': 'terminal', 'StatusCallbackEvents[1]': 'answered' });
    await rx.waitFor(1);
    await sim.calls.waitFor(sid, (c) => c.Duration !== null);
    expect(rx.received.map((r) => r.fields.EventType)).toEqual(['terminal']);
  });

  it('duplicates callbacks', async () => {
    const sim = await startSim();
    const rx = await startReceiver();
    sim.faults.duplicateCallbacks(3);
    const sid = await connect(sim, rx.url);
    const got = await rx.waitFor(3);
    expect(got.map((g) => g.fields.CallSid)).toEqual([sid, sid, sid]);
  });

  it('reorders callbacks: holds them and releases in reverse order', async () => {
    const sim = await startSim();
    const rx = await startReceiver();
    sim.faults.reorderCallbacks(2);
    const sid = await connect(sim, rx.url, { 'StatusCallbackEvents[0]': 'terminal', 'StatusCallbackEvents[1]': 'answered' });
    const got = await rx.waitFor(2);
    expect(got.map((g) => [g.fields.CallSid, g.fields.EventType])).toEqual([[sid, 'terminal'], [sid, 'answered']]);
  });

  it('releases held callbacks on clear()', async () => {
    const sim = await startSim();
    const rx = await startReceiver();
    sim.faults.reorderCallbacks(5);
    const sid = await connect(sim, rx.url);
    await sim.calls.waitFor(sid, (c) => c.Duration !== null);
    expect(rx.received).toHaveLength(0);
    sim.faults.clear();
    const [cb] = await rx.waitFor(1);
    expect(cb!.fields.CallSid).toBe(sid);
  });

  it('delays callbacks by real milliseconds', async () => {
    const sim = await startSim();
    const rx = await startReceiver();
    sim.faults.inject({ kind: 'delay-callbacks', delayMs: 400 });
    const sid = await connect(sim, rx.url);
    const ended = await sim.calls.waitFor(sid, (c) => c.Status === 'completed');
    await pause(150);
    expect(rx.received).toHaveLength(0);
    const [cb] = await rx.waitFor(1);
    expect(cb!.fields.CallSid).toBe(ended.Sid);
  });
});
