/** The simulator's HTTP edge: auth, routing, Exotel-style validation, and surviving garbage. */
import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { EXOTEL_LIMITS } from '../../src/simulator/index.js';
import { api, startSim } from './helpers.js';

const CONNECT = { From: '09876543210', To: '09123456780', CallerId: '08039591111' };

describe('simulator auth and routing', () => {
  it('answers 401 RestException without credentials and with wrong ones', async () => {
    const sim = await startSim();
    const none = await api(sim, 'Calls.json', { auth: null });
    expect(none.status).toBe(401);
    expect(none.body.RestException.Status).toBe(401);
    expect(none.body.RestException.Message).toMatch(/Basic/);
    const wrong = await api(sim, 'Calls.json', { auth: `${sim.apiKey}:nope` });
    expect(wrong.status).toBe(401);
    const ok = await api(sim, 'Calls.json');
    expect(ok.status).toBe(200);
  });

  it('answers 404 for an unknown account, an unknown route and unknown Sids', async () => {
    const sim = await startSim();
    const account = await api(sim, '/v1/Accounts/someone-else/Calls.json');
    expect(account.status).toBe(404);
    expect(account.body.RestException.Message).toMatch(/Account/);
    expect((await api(sim, 'Nothing/here.json')).status).toBe(404);
    expect((await api(sim, '/totally/else')).status).toBe(404);
    const call = await api(sim, 'Calls/0123456789abcdef0123456789abcdef.json');
    expect(call.status).toBe(404);
    expect(call.body.RestException).toMatchObject({ Status: 404 });
    const sms = await api(sim, 'SMS/Messages/0123456789abcdef0123456789abcdef.json');
    expect(sms.status).toBe(404);
  });

  it('answers 405 for methods Exotel does not take and 406 without .json', async () => {
    const sim = await startSim();
    const put = await api(sim, 'Calls.json', { method: 'PUT' });
    expect(put.status).toBe(405);
    expect(put.headers.get('allow')).toBe('GET');
    expect((await api(sim, 'Calls/connect.json', { method: 'GET' })).status).toBe(405);
    expect((await api(sim, 'Calls.json', { method: 'DELETE' })).status).toBe(405);
    const xml = await api(sim, 'Calls');
    expect(xml.status).toBe(406);
    expect(xml.body.RestException.Message).toMatch(/\.json/);
  });

  it('records every request with endpoint, path, query and status', async () => {
    const sim = await startSim();
    await api(sim, 'Calls.json?PageSize=3');
    await api(sim, 'Calls.json', { auth: null });
    expect(sim.countRequests({ endpoint: 'calls.list' })).toBe(2);
    expect(sim.requests[0]).toMatchObject({ method: 'GET', path: `/v1/Accounts/${sim.accountSid}/Calls.json`, query: { PageSize: '3' }, status: 200 });
    expect(sim.requests[1]?.status).toBe(401);
    sim.resetRequests();
    expect(sim.countRequests()).toBe(0);
  });

  it('accepts multipart/form-data request bodies too', async () => {
    const sim = await startSim();
    const form = new FormData();
    for (const [k, v] of Object.entries(CONNECT)) form.append(k, v);
    const res = await fetch(`${sim.url}/v1/Accounts/${sim.accountSid}/Calls/connect.json`, {
      method: 'POST',
      body: form,
      headers: { authorization: `Basic ${Buffer.from(`${sim.apiKey}:${sim.apiToken}`).toString('base64')}` },
    });
    expect(res.status).toBe(200);
    expect((await res.json()).Call.To).toBe(CONNECT.To);
  });

  it('says it is a SIMULATOR when it starts and never logs credentials', async () => {
    const lines: string[] = [];
    const sim = await startSim({ log: (line) => lines.push(line), apiToken: 'tok-very-secret' });
    await api(sim, 'Calls.json', { auth: 'sim-key:tok-very-secret' });
    await api(sim, 'Calls.json', { auth: 'sim-key:wrong-secret' });
    sim.faults.failNext(1);
    await api(sim, 'Calls/connect.json', { form: { ...CONNECT, StatusCallback: 'http://127.0.0.1:1/nowhere' } });
    await api(sim, 'Calls/connect.json', { form: { ...CONNECT, StatusCallback: 'http://127.0.0.1:1/nowhere' } });
    await expect.poll(() => sim.callbacks.length).toBeGreaterThan(0);
    await sim.stop();
    expect(lines[0]).toMatch(/Exotel SIMULATOR/);
    const all = lines.join('\n');
    expect(all).not.toMatch(/tok-very-secret|wrong-secret|Basic /);
  });
});

describe('simulator validation (400 RestException)', () => {
  const cases: Array<[string, Record<string, string>, RegExp]> = [
    ['missing From', { To: CONNECT.To, CallerId: CONNECT.CallerId }, /No 'From' specified/],
    ['missing To and Url', { From: CONNECT.From, CallerId: CONNECT.CallerId }, /No 'To' specified/],
    ['missing CallerId', { From: CONNECT.From, To: CONNECT.To }, /No 'CallerId' specified/],
    ['malformed From', { ...CONNECT, From: '98-76x' }, /'From' is not a valid phone number/],
    ['malformed To', { ...CONNECT, To: '12345' }, /'To' is not a valid phone number/],
    ['TimeLimit over 14400', { ...CONNECT, TimeLimit: String(EXOTEL_LIMITS.maxTimeLimitSeconds + 1) }, /'TimeLimit' must be between 1 and 14400/],
    ['TimeLimit not an integer', { ...CONNECT, TimeLimit: '12.5' }, /'TimeLimit' must be an integer/],
    ['TimeOut over 60', { ...CONNECT, TimeOut: '61' }, /'TimeOut' must be between 1 and 60/],
    ['bad StatusCallbackEvents', { ...CONNECT, 'StatusCallbackEvents[0]': 'ringing' }, /terminal or answered/],
    ['bad StatusCallback URL', { ...CONNECT, StatusCallback: 'ftp://x' }, /'StatusCallback' must be an http/],
    ['bad flow Url', { From: CONNECT.From, CallerId: CONNECT.CallerId, Url: 'http://example.com/flow' }, /my\.exotel\.com/],
    ['bad CallType', { ...CONNECT, CallType: 'promo' }, /'CallType' must be one of trans/],
  ];
  it.each(cases)('connect: %s', async (_name, form, message) => {
    const sim = await startSim();
    const res = await api(sim, 'Calls/connect.json', { form });
    expect(res.status).toBe(400);
    expect(res.body.RestException.Status).toBe(400);
    expect(res.body.RestException.Message).toMatch(message);
    expect(sim.calls.list().filter((c) => c.Status !== 'completed' && c.Status !== 'busy' && c.Status !== 'failed' && c.Status !== 'no-answer')).toHaveLength(0);
  });

  const listCases: Array<[string, string, RegExp]> = [
    ['more than 100 Sids', `Sid=${Array.from({ length: 101 }, (_, i) => i.toString(16).padStart(32, '0')).join(',')}`, /at most 100/],
    ['PageSize over 100', 'PageSize=101', /'PageSize' must be between 1 and 100/],
    ['PageSize not a number', 'PageSize=ten', /'PageSize' must be an integer/],
    ['bad DateCreated', `DateCreated=${encodeURIComponent('yesterday')}`, /Invalid 'DateCreated' filter/],
    ['impossible DateCreated', `DateCreated=${encodeURIComponent('gte:2026-02-31 00:00:00')}`, /Invalid 'DateCreated' filter/],
    ['DateCreated over a month', `DateCreated=${encodeURIComponent('gte:2026-01-01 00:00:00;lte:2026-03-01 00:00:00')}`, /one month|6 months/],
    ['unknown Status', 'Status=done', /Invalid 'Status' filter/],
    ['6 To numbers', `To=${['09800000001', '09800000002', '09800000003', '09800000004', '09800000005', '09800000006'].join(',')}`, /at most 5/],
    ['bad Direction', 'Direction=sideways', /'Direction' must be one of/],
    ['bad SortBy', 'SortBy=Price:asc', /'SortBy'/],
    ['garbage cursor', 'After=not-a-cursor', /Invalid 'After' cursor/],
    ['RecordingUrlValidity out of range', 'RecordingUrlValidity=61', /RecordingUrlValidity/],
  ];
  it.each(listCases)('bulk call details: %s', async (_name, query, message) => {
    const sim = await startSim();
    const res = await api(sim, `Calls.json?${query}`);
    expect(res.status).toBe(400);
    expect(res.body.RestException.Message).toMatch(message);
  });

  it('rejects more than 100 bulk messages, in both spellings', async () => {
    const sim = await startSim();
    const tos = Array.from({ length: 101 }, (_, i) => `0980000${String(i).padStart(4, '0')}`);
    const same = await api(sim, 'Sms/bulksend.json', { form: { From: 'EXOSIM', Body: 'hi', To: tos.join(',') } });
    expect(same.status).toBe(400);
    expect(same.body.RestException.Message).toMatch(/at most 100/);
    const dynamic = await api(sim, 'Sms/bulksend.json', { form: tos.flatMap((to, i) => [[`Messages[${i}][To]`, to], [`Messages[${i}][Body]`, `hi ${i}`]]) as Array<[string, string]> });
    expect(dynamic.status).toBe(400);
    expect(dynamic.body.RestException.Message).toMatch(/at most 100/);
    expect(sim.sms.list().filter((s) => s.Status === 'queued')).toHaveLength(0);
  });

  it('rejects a bad SMS and a non-Indian number lookup', async () => {
    const sim = await startSim();
    expect((await api(sim, 'Sms/send.json', { form: { From: 'EXOSIM', To: '09876543210' } })).body.RestException.Message).toMatch(/No 'Body'/);
    expect((await api(sim, 'Sms/send.json', { form: { From: 'EXOSIM', To: 'abc', Body: 'x' } })).status).toBe(400);
    expect((await api(sim, 'Sms/send.json', { form: { From: 'EXOSIM', To: '09876543210', Body: 'x', EncodingType: 'morse' } })).status).toBe(400);
    const foreign = await api(sim, `Numbers/${encodeURIComponent('+14155550100')}.json`);
    expect(foreign.status).toBe(400);
    expect(foreign.body.RestException.Message).toMatch(/Indian numbers only/);
    expect((await api(sim, 'Numbers/12ab.json')).status).toBe(400);
  });

  it('answers 413 to a body over 1 MiB and keeps serving', async () => {
    const sim = await startSim();
    const res = await api(sim, 'Sms/send.json', {
      body: `From=EXOSIM&To=09876543210&Body=${'a'.repeat(1024 * 1024 + 10)}`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(res.status).toBe(413);
    expect(res.body.RestException.Status).toBe(413);
    expect((await api(sim, 'Calls.json?PageSize=1')).status).toBe(200);
  });
});

describe('simulator robustness', () => {
  /** Raw request: fetch would refuse or normalise some of these. */
  function raw(sim: { url: string }, method: string, path: string, body: Buffer | string, headers: Record<string, string>): Promise<number> {
    const url = new URL(sim.url);
    return new Promise((resolve) => {
      const req = request({ host: url.hostname, port: url.port, method, path, headers: { ...headers, 'content-length': Buffer.byteLength(body) } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', () => resolve(-1));
      req.end(body);
    });
  }

  it('survives a fuzz loop of random paths, methods and bodies, then serves a normal request', async () => {
    const sim = await startSim({ ratePerMinute: 100_000 });
    const auth = `Basic ${Buffer.from(`${sim.apiKey}:${sim.apiToken}`).toString('base64')}`;
    const base = `/v1/Accounts/${sim.accountSid}/`;
    const paths = ['Calls/connect.json', 'Calls.json', 'Sms/send.json', 'Sms/bulksend.json', 'Numbers/%zz.json', 'Calls/%E0%A4%A.json', 'SMS/Messages/..%2F..json', ''];
    const methods = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
    const contentTypes = ['application/x-www-form-urlencoded', 'multipart/form-data; boundary=zz', 'multipart/form-data', 'application/json', 'text/plain', ''];
    let seed = 7;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const statuses: number[] = [];
    for (let i = 0; i < 150; i++) {
      const bytes = Buffer.from(Array.from({ length: rnd(300) }, () => rnd(256)));
      const text = ['From=%%%&To=%E0%A4', 'Messages[99999999][To]=1', 'StatusCallbackEvents[0]=terminal&From=0&To=', `TimeLimit=${'9'.repeat(400)}`, '=&&==&', 'Sid=' + ','.repeat(500)][rnd(6)]!;
      const body = rnd(2) === 0 ? bytes : text;
      const path = base + paths[rnd(paths.length)]! + (rnd(2) ? `?${text}` : '');
      const ct = contentTypes[rnd(contentTypes.length)]!;
      statuses.push(await raw(sim, methods[rnd(methods.length)]!, path, body, { authorization: auth, ...(ct ? { 'content-type': ct } : {}) }));
    }
    expect(statuses.every((s) => s >= 200 && s < 500)).toBe(true);
    const ok = await api(sim, 'Calls.json?PageSize=1');
    expect(ok.status).toBe(200);
    expect(ok.body.Calls).toHaveLength(1);
  });
});
