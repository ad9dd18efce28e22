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

describe('simulator answer forms and Exotel error codes on demand', () => {
  it('takes them over HTTP, refuses malformed ones with 400, and an answer form waits for an endpoint it concerns', async () => {
    const sim = await startSim();
    const post = (body: unknown) => fetch(`${sim.url}/__sim/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect((await post({ kind: 'exotel-error', status: 200 })).status).toBe(400);
    expect((await post({ kind: 'exotel-error', status: 503, format: 'yaml' })).status).toBe(400);
    expect((await post({ kind: 'answer-form', form: 'sms-as-fax' })).status).toBe(400);
    expect((await post({ kind: 'answer-form', form: 'legacy-sms' })).status).toBe(200);
    // Not an SMS answer: untouched, and the fault stays for the next SMS answer.
    expect((await api(sim, 'Calls.json?PageSize=1')).status).toBe(200);
    const sms = await api(sim, 'Sms/send.json', { form: { From: 'EXOSIM', To: '09812345670', Body: 'x' } });
    expect(sms.body.SMSMessage).toMatchObject({ DateSent: 'null', Price: 'null', DetailedStatusCode: '21010' });
    expect(sim.faults.list()).toEqual([]);
    const plain = await api(sim, 'Sms/send.json', { form: { From: 'EXOSIM', To: '09812345670', Body: 'x' } });
    expect(plain.body.SMSMessage).toMatchObject({ DateSent: null, DetailedStatusCode: 21010 });
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

describe('simulator call holds', () => {
  /** Distinct successive statuses of every call, recorded from now on. */
  const statusLog = (sim: Awaited<ReturnType<typeof startSim>>): ((sid: string) => string[]) => {
    const seen = new Map<string, string[]>();
    sim.calls.onChange((c) => {
      const list = seen.get(c.Sid) ?? [];
      if (list.at(-1) !== c.Status) list.push(c.Status);
      seen.set(c.Sid, list);
    });
    return (sid) => seen.get(sid) ?? [];
  };

  it('stops a matching call at a phase until released, phase by phase, and leaves other calls alone', async () => {
    const sim = await startSim();
    const statuses = statusLog(sim);
    sim.faults.holdCalls('ringing', { to: '+919812345670' });
    const held = sim.calls.create({ from: '09876543210', to: '09812345670' }).Sid;
    const free = sim.calls.create({ from: '09876543210', to: '09812345680' }).Sid;
    // The free call runs its whole timeline (and gets finalized) while the held one stays ringing.
    const freeDone = await sim.calls.waitFor(free, (c) => c.Duration !== null);
    expect(freeDone.Status).toBe('completed');
    expect(sim.calls.get(held)!.Status).toBe('ringing');
    expect(statuses(held)).toEqual(['ringing']);
    expect(sim.faults.list()).toEqual([{ kind: 'hold-calls', at: 'ringing', match: { to: '+919812345670' }, remaining: 'all' }]);

    // Hold the next phase before letting go of this one: the call moves exactly one phase on.
    sim.faults.holdCalls('in-progress', { sid: held });
    sim.faults.releaseCalls({ at: 'ringing' });
    await sim.calls.waitFor(held, (c) => c.Status === 'in-progress');
    const other = sim.calls.create({ from: '09876543210', to: '09812345690' }).Sid;
    await sim.calls.waitFor(other, (c) => c.Duration !== null);
    expect(sim.calls.get(held)!.Status).toBe('in-progress');

    sim.faults.releaseCalls({ sid: held });
    const done = await sim.calls.waitFor(held, (c) => c.Duration !== null);
    expect(statuses(held)).toEqual(['ringing', 'in-progress', 'completed']);
    // Holding changes when phases happen, not what the call reports.
    expect(done.Duration).toBe(freeDone.Duration);
    expect(done.Details).toEqual(freeDone.Details);
    expect(sim.faults.list()).toEqual([]);
  });

  it('releases held calls on clear(), and a release that selects no hold keeps them held', async () => {
    const sim = await startSim();
    const statuses = statusLog(sim);
    sim.faults.holdCalls('queued');
    const sid = sim.calls.create({ from: '09876543210', to: '09812345670' }).Sid;
    sim.faults.releaseCalls({ at: 'ringing' });
    sim.faults.releaseCalls({ sid: 'someothercall' });
    expect(sim.faults.list()).toHaveLength(1);
    expect(() => sim.faults.releaseCalls({ at: 'talking' as never })).toThrow(/at must be/);
    sim.faults.clear();
    await sim.calls.waitFor(sid, (c) => c.Status === 'completed');
    expect(statuses(sid)).toEqual(['ringing', 'in-progress', 'completed']);
  });

  it('takes holds and releases over HTTP at /__sim/faults, and refuses malformed ones with 400', async () => {
    const sim = await startSim();
    const admin = async (body: unknown) => {
      const res = await fetch(`${sim.url}/__sim/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: res.status, body: await res.json() };
    };
    const rx = await startReceiver();
    const statuses = statusLog(sim);
    const put = await admin({ kind: 'hold-calls', at: 'in-progress', match: { to: '09123456780' } });
    expect(put.status).toBe(200);
    expect(put.body.faults).toEqual([{ kind: 'hold-calls', at: 'in-progress', match: { to: '09123456780' }, remaining: 'all' }]);
    const res = await api(sim, 'Calls/connect.json', { form: { ...call, StatusCallback: rx.url } });
    expect(res.status).toBe(200);
    const sid = res.body.Call.Sid as string;
    await sim.calls.waitFor(sid, (c) => c.Status === 'in-progress');
    // A second call to another number runs to its end, and the held one has posted no terminal callback.
    const free = await api(sim, 'Calls/connect.json', { form: { ...call, To: '09123456790' } });
    await sim.calls.waitFor(free.body.Call.Sid, (c) => c.Duration !== null);
    expect(sim.calls.get(sid)!.Status).toBe('in-progress');
    expect(rx.received).toHaveLength(0);

    for (const [bad, message] of [
      [{ kind: 'hold-calls', at: 'dialling' }, /at must be/],
      [{ kind: 'hold-calls', at: 'ringing', count: 2 }, /takes no count/],
      [{ kind: 'hold-calls', at: 'ringing', match: { to: 'not a number' } }, /match.to must be a phone number/],
      [{ releaseCalls: { at: 'later' } }, /Bad release: at must be/],
      [{ releaseCalls: 'all' }, /releaseCalls must be an object/],
    ] as const) {
      const refused = await admin(bad);
      expect(refused.status).toBe(400);
      expect(refused.body.RestException.Message).toMatch(message);
    }
    expect(sim.faults.list()).toHaveLength(1);

    const released = await admin({ releaseCalls: { to: '+919123456780' } });
    expect(released.status).toBe(200);
    expect(released.body.faults).toEqual([]);
    const [cb] = await rx.waitFor(1);
    expect(cb!.fields).toMatchObject({ CallSid: sid, Status: 'completed' });
    expect(statuses(sid)).toEqual(['ringing', 'in-progress', 'completed']);
  });
});
