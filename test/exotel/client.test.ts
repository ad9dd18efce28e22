/**
 * The real Exotel client against the real simulator over HTTP: every operation, every error class,
 * retries, the rate budget and the credentials canary.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createExotelClient, type ExotelClientOptions } from '../../src/exotel/client.js';
import { resolveExotelClientOptions } from '../../src/exotel/options.js';
import type { ExotelApi, UpstreamRequestEvent, WireExoPhone } from '../../src/exotel/types.js';
import { createSimulator, type Simulator } from '../../src/simulator/index.js';
import { createMemoryRateBudget } from '../../src/storage/rate-budget.js';
import { failure } from '../helpers/failure.js';

const quiet = () => {};
const simulators: Simulator[] = [];

async function startSimulator(options: Parameters<typeof createSimulator>[0] = {}): Promise<Simulator> {
  const sim = await createSimulator({ port: 0, timeScale: 0.01, seedCalls: 30, log: quiet, ...options });
  simulators.push(sim);
  return sim;
}

afterAll(async () => {
  await Promise.all(simulators.map((s) => s.stop()));
});

interface Harness {
  client: ExotelApi;
  events: UpstreamRequestEvent[];
  logs: string[];
}

function clientFor(sim: Simulator, overrides: Partial<ExotelClientOptions> = {}): Harness {
  const events: UpstreamRequestEvent[] = [];
  const logs: string[] = [];
  const log = (obj: Record<string, unknown>, msg: string) => logs.push(JSON.stringify({ ...obj, msg }));
  const client = createExotelClient({
    accountSid: sim.accountSid,
    apiKey: sim.apiKey,
    apiToken: sim.apiToken,
    baseUrl: sim.url,
    budget: createMemoryRateBudget({ limit: 1_000, windowMs: 60_000 }),
    timeoutMs: 2_000,
    queueDeadlineMs: 2_000,
    backoffBaseMs: 20,
    backoffMaxMs: 100,
    onRequest: (e) => events.push(e),
    logger: { debug: log, warn: log },
    ...overrides,
  });
  return { client, events, logs };
}


async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const FROM = '09900000000';
const TO = '09800000000';
const CALLER_ID = '08039591111';

describe('Exotel client against the simulator', () => {
  let sim: Simulator;
  let h: Harness;
  beforeAll(async () => {
    sim = await startSimulator({ ratePerMinute: 10_000 });
    h = clientFor(sim);
  });
  afterEach(() => {
    sim.faults.clear();
  });

  describe('operations', () => {
    it('connectCall sends every parameter and returns the new call', async () => {
      const call = await h.client.connectCall({
        from: FROM,
        to: TO,
        callerId: CALLER_ID,
        callType: 'trans',
        timeLimitSeconds: 600,
        timeOutSeconds: 30,
        waitUrl: 'https://example.test/wait.wav',
        record: true,
        recordingChannels: 'dual',
        recordingFormat: 'mp3-hq',
        customField: 'order-42',
        statusCallback: { url: 'http://127.0.0.1:9/cb', events: ['answered', 'terminal'], contentType: 'application/json' },
      });
      expect(call.sid).toMatch(/^[0-9a-f]{31}[g-z]$/);
      expect(call.from).toBe(FROM);
      expect(call.to).toBe(TO);
      expect(['QUEUED', 'RINGING', 'IN_PROGRESS']).toContain(call.status);
      expect(call.dateCreated).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+05:30$/);
      expect(sim.calls.get(call.sid)?.CustomField).toBe('order-42');
      // Both events and the JSON content type reached Exotel: the simulator posts both callbacks as JSON.
      const answered = await waitForCallback(sim, call.sid, 'answered');
      expect(answered.contentType).toBe('application/json');
      expect(answered.url).toBe('http://127.0.0.1:9/cb');
    });

    it('connectCallToFlow points Exotel at the flow URL of the account', async () => {
      const before = sim.countRequests({ endpoint: 'calls.connect' });
      const call = await h.client.connectCallToFlow({ from: FROM, callerId: CALLER_ID, flowId: '246810', customField: 'flow' });
      expect(call.sid).toMatch(/^[0-9a-f]{31}[g-z]$/);
      expect(sim.countRequests({ endpoint: 'calls.connect' })).toBe(before + 1);
      const bad = await failure(h.client.connectCallToFlow({ from: FROM, callerId: CALLER_ID, flowId: '../x' }));
      expect(bad.code).toBe('BAD_USER_INPUT');
      // Exotel's flow ids are numeric: the client holds to the same rule as the GraphQL validation.
      expect((await failure(h.client.connectCallToFlow({ from: FROM, callerId: CALLER_ID, flowId: 'abc_1' }))).code).toBe('BAD_USER_INPUT');
      expect(sim.countRequests({ endpoint: 'calls.connect' })).toBe(before + 1);
    });

    it('getCall returns the call with legs when details are asked for, and null for an unknown Sid', async () => {
      const finished = sim.calls.create({ from: FROM, to: TO, status: 'completed', talkSeconds: 40 });
      const call = await h.client.getCall(finished.Sid, { details: true });
      expect(call).toMatchObject({ sid: finished.Sid, status: 'COMPLETED', durationSeconds: expect.any(Number) });
      expect(call?.legs?.length).toBe(2);
      expect(call?.legs?.[0]).toMatchObject({ id: 1, status: 'COMPLETED' });
      expect(sim.requests.at(-1)?.query).toMatchObject({ details: 'true' });
      expect(await h.client.getCall('0123456789abcdef0123456789abcdef')).toBeNull();
    });

    it('listCalls filters by Sid and pages with cursors taken from NextPageUri', async () => {
      const sids = Array.from({ length: 7 }, () => sim.calls.create({ from: FROM, to: TO, status: 'completed' }).Sid);
      const first = await h.client.listCalls({ sids, pageSize: 4, sort: 'asc' });
      expect(first.calls).toHaveLength(4);
      expect(first.total).toBe(7);
      expect(first.nextAfter).toEqual(expect.any(String));
      const second = await h.client.listCalls({ sids, pageSize: 4, sort: 'asc', after: first.nextAfter! });
      expect(second.calls).toHaveLength(3);
      expect(second.nextAfter).toBeNull();
      expect(second.prevBefore).toEqual(expect.any(String));
      const seen = [...first.calls, ...second.calls].map((c) => c.sid);
      expect(new Set(seen)).toEqual(new Set(sids));
    });

    it('listCalls sends DateCreated in IST, so an ISO range in UTC selects the right calls', async () => {
      const to = '09800000123';
      const at = (iso: string) => sim.calls.create({ from: FROM, to, status: 'completed', createdAt: Date.parse(iso) }).Sid;
      const before = at('2026-11-10T18:29:00Z'); // 23:59 IST on the 10th
      const inside = at('2026-11-10T18:31:00Z'); // 00:01 IST on the 11th
      const after = at('2026-11-11T18:31:00Z'); // 00:01 IST on the 12th
      const page = await h.client.listCalls({
        to: [to],
        dateCreatedFrom: '2026-11-11T00:00:00+05:30',
        dateCreatedTo: '2026-11-11T18:29:59Z',
        pageSize: 100,
      });
      const found = page.calls.map((c) => c.sid);
      expect(found).toContain(inside);
      expect(found).not.toContain(before);
      expect(found).not.toContain(after);
      expect(sim.requests.at(-1)?.query.DateCreated).toBe('gte:2026-11-11 00:00:00;lte:2026-11-11 23:59:59');
    }, 15_000);

    it('refuses more than 100 Sids before any request', async () => {
      const before = sim.countRequests();
      const error = await failure(h.client.listCalls({ sids: Array.from({ length: 101 }, (_, i) => `sid${i}`) }));
      expect(error.code).toBe('BAD_USER_INPUT');
      expect(sim.countRequests()).toBe(before);
    });

    it('getNumberMetadata returns circle, operator and DND as a boolean', async () => {
      const meta = await h.client.getNumberMetadata('+91 98765 43210');
      expect(meta).toMatchObject({ phoneNumber: expect.any(String), circle: expect.any(String), type: expect.any(String) });
      expect(typeof meta?.dnd).toBe('boolean');
    });

    it('listExoPhones returns the seeded ExoPhones with capabilities', async () => {
      const phones = await h.client.listExoPhones();
      expect(phones.map((p) => p.sid)).toEqual(sim.exoPhones.map((p) => p.sid));
      expect(phones[1]).toMatchObject({ phoneNumber: '+912248901234', friendlyName: 'Mumbai sales line', capabilities: ['voice'] });
    });

    it('sendSms returns the queued message and getSms reads it back; an unknown Sid is null', async () => {
      const sms = await h.client.sendSms({ from: 'ACMEIN', to: '09876543210', body: 'Your order has shipped', dltEntityId: '1101', dltTemplateId: '1107' });
      expect(sms).toMatchObject({ to: expect.stringContaining('9876543210'), body: 'Your order has shipped', dateSent: null });
      expect(['QUEUED', 'SENDING', 'SUBMITTED']).toContain(sms.status);
      const again = await h.client.getSms(sms.sid);
      expect(again?.sid).toBe(sms.sid);
      expect(await h.client.getSms('ffffffffffffffffffffffffffffffff')).toBeNull();
    });

    it('sendBulkSms answers per message, in input order, with errors in their own slots', async () => {
      const results = await h.client.sendBulkSms({
        from: 'ACMEIN',
        messages: [
          { to: '09876543210', body: 'one' },
          { to: 'not-a-number', body: 'two' },
          { to: '09876543211', body: 'three' },
        ],
      });
      expect(results.map((r) => r.ok)).toEqual([true, false, true]);
      expect(results[0]).toMatchObject({ ok: true, sms: { body: 'one' } });
      expect(results[1]).toMatchObject({ ok: false, to: 'not-a-number', status: 400, message: expect.stringMatching(/Invalid Recipient/) });
      expect(results[2]).toMatchObject({ ok: true, sms: { body: 'three' } });
    });

    it('sendBulkSms refuses more than 100 messages before any request', async () => {
      const before = sim.countRequests();
      const messages = Array.from({ length: 101 }, () => ({ to: '09876543210', body: 'x' }));
      expect((await failure(h.client.sendBulkSms({ from: 'ACMEIN', messages }))).code).toBe('BAD_USER_INPUT');
      expect(sim.countRequests()).toBe(before);
    });

    it('rateLimit reports the budget as requests spend it', async () => {
      const own = clientFor(sim, { budget: createMemoryRateBudget({ limit: 50, windowMs: 60_000 }) });
      const start = await own.client.rateLimit();
      expect(start).toMatchObject({ limitPerMinute: 50, remaining: 50, queued: 0 });
      await own.client.getSms('ffffffffffffffffffffffffffffffff');
      const after = await own.client.rateLimit();
      expect(after.remaining).toBe(49);
      expect(Date.parse(after.resetsAt)).toBeGreaterThan(Date.now());
    });

    it('reports every attempt to onRequest', async () => {
      const own = clientFor(sim);
      await own.client.getCall('0123456789abcdef0123456789abcdef');
      expect(own.events).toEqual([{ endpoint: 'calls.get', method: 'GET', status: 404, attempt: 1, durationMs: expect.any(Number) }]);
    });

    it('sends credentials only in the Authorization header, never in the URL', async () => {
      await h.client.getSms('ffffffffffffffffffffffffffffffff');
      for (const r of sim.requests) {
        expect(JSON.stringify(r)).not.toContain(sim.apiToken);
      }
    });
  });

  describe('error classes', () => {
    it('400 → BAD_USER_INPUT with Exotel message', async () => {
      const error = await failure(h.client.connectCall({ from: FROM, to: 'not-a-number', callerId: CALLER_ID }));
      expect(error.code).toBe('BAD_USER_INPUT');
      expect(error.upstreamStatus).toBe(400);
      expect(error.message).toMatch(/'To' is not a valid phone number/);
    });

    it('401 (wrong token) → UPSTREAM_ERROR: the gateway’s credentials, not the client’s fault', async () => {
      const wrong = clientFor(sim, { apiToken: 'not-the-token' });
      const error = await failure(wrong.client.getCall('0123456789abcdef0123456789abcdef'));
      expect(error.code).toBe('UPSTREAM_ERROR');
      expect(error.upstreamStatus).toBe(401);
    });

    it.each([402, 403] as const)('%i insufficient balance → INSUFFICIENT_BALANCE', async (status) => {
      sim.faults.inject({ kind: 'insufficient-balance', status, endpoint: 'sms.send' });
      const error = await failure(h.client.sendSms({ from: 'ACMEIN', to: '09876543210', body: 'hi' }));
      expect(error.code).toBe('INSUFFICIENT_BALANCE');
      expect(error.upstreamStatus).toBe(status);
    });

    it('404 → null for lookups, NOT_FOUND for anything else (unknown account)', async () => {
      expect(await h.client.getCall('0123456789abcdef0123456789abcdef')).toBeNull();
      const other = clientFor(sim, { accountSid: 'no-such-account' });
      const error = await failure(other.client.listCalls({ pageSize: 5 }));
      expect(error.code).toBe('NOT_FOUND');
      expect(error.message).toMatch(/not found/i);
    });

    it('429 with Retry-After waits that long, then succeeds', async () => {
      sim.resetRequests();
      sim.faults.rateLimitNext(1, 1, 'calls.get');
      const finished = sim.calls.create({ from: FROM, to: TO, status: 'busy' });
      const call = await h.client.getCall(finished.Sid);
      expect(call?.status).toBe('BUSY');
      const [first, second] = sim.requests;
      expect(sim.requests.map((r) => r.status)).toEqual([429, 200]);
      expect(second!.at - first!.at).toBeGreaterThanOrEqual(950);
    });

    it('a 429 holds off every request of the account until Retry-After, not just the one that got it', async () => {
      sim.resetRequests();
      sim.faults.rateLimitNext(1, 1, 'calls.get');
      const [a, b] = sim.calls.list().filter((c) => c.Status === 'completed').slice(0, 2);
      const seen = h.events.length;
      const first = h.client.getCall(a!.Sid);
      // Asked once the client has the 429 in hand: it must not reach Exotel before the second is up.
      while (!h.events.slice(seen).some((e) => e.status === 429)) await new Promise((resolve) => setTimeout(resolve, 5));
      const second = h.client.getCall(b!.Sid);
      await Promise.all([first, second]);
      const limited = sim.requests.find((r) => r.status === 429)!;
      const after = sim.requests.filter((r) => r !== limited);
      expect(after).toHaveLength(2);
      for (const r of after) expect(r.at - limited.at).toBeGreaterThanOrEqual(950);
    });

    it('429 on a POST is retried too (Exotel did not process it), and the call is created once', async () => {
      sim.resetRequests();
      sim.faults.rateLimitNext(2, null, 'calls.connect');
      const call = await h.client.connectCall({ from: FROM, to: TO, callerId: CALLER_ID });
      expect(sim.requests.map((r) => r.status)).toEqual([429, 429, 200]);
      expect(sim.calls.get(call.sid)).toBeDefined();
    });

    it('429 that persists → RATE_LIMITED with retryAfterSeconds after 5 tries', async () => {
      sim.resetRequests();
      sim.faults.inject({ kind: 'rate-limit', retryAfterSeconds: null, count: 'all', endpoint: 'sms.get' });
      const error = await failure(h.client.getSms('ffffffffffffffffffffffffffffffff'));
      expect(error.code).toBe('RATE_LIMITED');
      expect(error.retryAfterSeconds).toBeGreaterThanOrEqual(1);
      expect(error.extensions.retryAfterSeconds).toBe(error.retryAfterSeconds);
      expect(sim.countRequests({ endpoint: 'sms.get' })).toBe(5);
    });

    it('429 asking for a longer wait than maxRetryWaitMs → RATE_LIMITED at once with that wait, for later requests too', async () => {
      // Its own client: the 30 s hold-off applies to the whole account (this client) afterwards.
      const own = clientFor(sim);
      sim.resetRequests();
      sim.faults.rateLimitNext(1, 30, 'calls.get');
      const error = await failure(own.client.getCall('0123456789abcdef0123456789abcdef'));
      expect(error).toMatchObject({ code: 'RATE_LIMITED', retryAfterSeconds: 30 });
      expect(sim.countRequests()).toBe(1);
      // The next request is refused without asking Exotel (longer than the queue deadline to wait).
      const next = await failure(own.client.getSms('ffffffffffffffffffffffffffffffff'));
      expect(next.code).toBe('RATE_LIMITED');
      expect(next.retryAfterSeconds).toBeGreaterThanOrEqual(28);
      expect(sim.countRequests()).toBe(1);
    });

    it('a GET that got a 5xx is retried and succeeds', async () => {
      sim.resetRequests();
      sim.faults.failNext(1, 503, 'calls.get');
      const finished = sim.calls.create({ from: FROM, to: TO, status: 'completed' });
      const call = await h.client.getCall(finished.Sid);
      expect(call?.sid).toBe(finished.Sid);
      expect(sim.requests.map((r) => r.status)).toEqual([503, 200]);
    });

    it('a GET whose connection drops is retried and succeeds', async () => {
      sim.resetRequests();
      sim.faults.inject({ kind: 'drop-connection', endpoint: 'numbers.get' });
      const meta = await h.client.getNumberMetadata('09876543210');
      expect(meta?.circle).toEqual(expect.any(String));
      expect(sim.countRequests({ endpoint: 'numbers.get' })).toBe(2);
    });

    it('a GET that keeps failing → UPSTREAM_UNAVAILABLE after maxAttemptsGet tries', async () => {
      sim.resetRequests();
      sim.faults.inject({ kind: 'error', status: 500, count: 'all', endpoint: 'calls.get' });
      const error = await failure(h.client.getCall('0123456789abcdef0123456789abcdef'));
      expect(error.code).toBe('UPSTREAM_UNAVAILABLE');
      expect(error.upstreamStatus).toBe(500);
      expect(sim.countRequests({ endpoint: 'calls.get' })).toBe(3);
    });

    it('a GET that times out is retried', async () => {
      const impatient = clientFor(sim, { timeoutMs: 150 });
      sim.resetRequests();
      sim.faults.slowNext(1, 1_000, 'sms.get');
      expect(await impatient.client.getSms('ffffffffffffffffffffffffffffffff')).toBeNull();
      expect(impatient.events.map((e) => e.status)).toEqual(['timeout', 404]);
    });

    it('a POST that got a 5xx is never retried → OUTCOME_UNKNOWN', async () => {
      sim.resetRequests();
      sim.faults.failNext(1, 500, 'calls.connect');
      const error = await failure(h.client.connectCall({ from: FROM, to: TO, callerId: CALLER_ID }));
      expect(error.code).toBe('OUTCOME_UNKNOWN');
      expect(error.message).toMatch(/may have reached Exotel/);
      expect(sim.countRequests({ endpoint: 'calls.connect' })).toBe(1);
    });

    it('a POST that timed out is never retried → OUTCOME_UNKNOWN', async () => {
      const impatient = clientFor(sim, { timeoutMs: 150 });
      sim.resetRequests();
      sim.faults.slowNext(1, 600, 'sms.send');
      const error = await failure(impatient.client.sendSms({ from: 'ACMEIN', to: '09876543210', body: 'slow' }));
      expect(error.code).toBe('OUTCOME_UNKNOWN');
      expect(error.message).toMatch(/may have reached Exotel/);
      expect(impatient.events.map((e) => e.status)).toEqual(['timeout']);
      expect(sim.countRequests({ endpoint: 'sms.send' })).toBe(1);
    });

    it('a POST whose connection drops is never retried → OUTCOME_UNKNOWN', async () => {
      sim.resetRequests();
      sim.faults.inject({ kind: 'drop-connection', endpoint: 'sms.bulksend' });
      const error = await failure(h.client.sendBulkSms({ from: 'ACMEIN', messages: [{ to: '09876543210', body: 'x' }] }));
      expect(error.code).toBe('OUTCOME_UNKNOWN');
      expect(sim.countRequests({ endpoint: 'sms.bulksend' })).toBe(1);
    });

    it('a POST refused at connect (nothing sent) → UPSTREAM_UNAVAILABLE', async () => {
      const port = await closedPort();
      const dead = clientFor(sim, { baseUrl: `http://127.0.0.1:${port}` });
      const error = await failure(dead.client.connectCall({ from: FROM, to: TO, callerId: CALLER_ID }));
      expect(error.code).toBe('UPSTREAM_UNAVAILABLE');
      expect(error.message).toMatch(/not sent/);
      expect(dead.events).toHaveLength(1);
    });
  });
});

describe('rate budget discipline', () => {
  it('holds off when Exotel says no requests are left (X-RateLimit-Remaining: 0) until its reset', async () => {
    // Exotel's budget is smaller than ours here: only its headers can keep us from a 429.
    const sim = await startSimulator({ ratePerMinute: 3, rateWindowMs: 1_000, seed: false });
    const { client } = clientFor(sim, { budget: createMemoryRateBudget({ limit: 100, windowMs: 1_000 }), queueDeadlineMs: 5_000 });
    for (let i = 0; i < 6; i++) expect(await client.getSms('ffffffffffffffffffffffffffffffff')).toBeNull();
    expect(sim.requests.map((r) => r.status)).toEqual([404, 404, 404, 404, 404, 404]);
  });

  it('never lets more than the limit through in any window', async () => {
    const windowMs = 500;
    const limit = 5;
    // The simulator referees with a slightly shorter window: arrival jitter cannot fake a violation.
    const sim = await startSimulator({ ratePerMinute: limit, rateWindowMs: windowMs - 60, seed: false });
    const { client, events } = clientFor(sim, { budget: createMemoryRateBudget({ limit, windowMs }), queueDeadlineMs: 5_000 });
    const results = await Promise.all(Array.from({ length: 14 }, () => client.getSms('ffffffffffffffffffffffffffffffff')));
    expect(results.every((r) => r === null)).toBe(true);
    expect(sim.requests.map((r) => r.status).filter((s) => s !== 404)).toEqual([]);
    expect(events).toHaveLength(14);
    const times = sim.requests.map((r) => r.at).sort((a, b) => a - b);
    for (const t of times) {
      expect(times.filter((u) => u >= t && u < t + windowMs - 60).length).toBeLessThanOrEqual(limit);
    }
  }, 15_000);

  it('queues FIFO while the budget is spent and shows the queue in rateLimit()', async () => {
    const sim = await startSimulator({ ratePerMinute: 1_000, seed: false });
    const { client } = clientFor(sim, { budget: createMemoryRateBudget({ limit: 2, windowMs: 400 }), queueDeadlineMs: 3_000 });
    await Promise.all([client.getSms('a'.repeat(32)), client.getSms('b'.repeat(32))]);
    const order: string[] = [];
    const third = client.getSms('c'.repeat(32)).then(() => order.push('c'));
    const fourth = client.getSms('d'.repeat(32)).then(() => order.push('d'));
    await waitUntil(async () => (await client.rateLimit()).queued === 2);
    expect((await client.rateLimit()).remaining).toBe(0);
    await Promise.all([third, fourth]);
    expect(order).toEqual(['c', 'd']);
    expect((await client.rateLimit()).queued).toBe(0);
  });

  it('past the queue deadline → RATE_LIMITED with retryAfterSeconds, and nothing is sent', async () => {
    const sim = await startSimulator({ ratePerMinute: 1_000, seed: false });
    const { client } = clientFor(sim, { budget: createMemoryRateBudget({ limit: 2, windowMs: 5_000 }), queueDeadlineMs: 200 });
    await client.getSms('a'.repeat(32));
    await client.getSms('b'.repeat(32));
    const error = await failure(client.getSms('c'.repeat(32)));
    expect(error.code).toBe('RATE_LIMITED');
    expect(error.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(error.retryAfterSeconds).toBeLessThanOrEqual(5);
    expect(sim.countRequests()).toBe(2);
  });

  it('a caller that gives up while queued leaves the queue, and nothing is sent', async () => {
    const sim = await startSimulator({ ratePerMinute: 1_000, seed: false });
    const { client } = clientFor(sim, { budget: createMemoryRateBudget({ limit: 1, windowMs: 2_000 }), queueDeadlineMs: 5_000 });
    await client.getSms('a'.repeat(32));
    const controller = new AbortController();
    const pending = failure(client.getSms('b'.repeat(32), { signal: controller.signal }));
    await waitUntil(async () => (await client.rateLimit()).queued === 1);
    controller.abort();
    expect((await pending).code).toBe('UPSTREAM_UNAVAILABLE');
    expect((await client.rateLimit()).queued).toBe(0);
    expect(sim.countRequests()).toBe(1);
  });

  it('background requests use only their share and fail fast rather than queue', async () => {
    const sim = await startSimulator({ ratePerMinute: 1_000, seed: false });
    const { client } = clientFor(sim, { budget: createMemoryRateBudget({ limit: 10, windowMs: 60_000 }), backgroundShare: 0.2 });
    // 20 % of 10: background alone gets exactly 2 requests, however many it asks for.
    expect(await client.getSms('a'.repeat(32), { priority: 'background' })).toBeNull();
    expect(await client.getSms('b'.repeat(32), { priority: 'background' })).toBeNull();
    const error = await failure(client.getSms('c'.repeat(32), { priority: 'background' }));
    expect(error.code).toBe('RATE_LIMITED');
    expect(error.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(sim.countRequests()).toBe(2);
    // Foreground keeps its whole reserve of 8.
    for (let i = 0; i < 8; i++) expect(await client.getSms(String(i).repeat(32))).toBeNull();
    expect((await client.rateLimit()).remaining).toBe(0);
    // With foreground's share in use, background gets nothing at all.
    expect((await failure(client.getSms('d'.repeat(32), { priority: 'background' }))).code).toBe('RATE_LIMITED');
    expect(sim.countRequests()).toBe(10);
  });
});

describe('ExoPhone paging', () => {
  it('listExoPhones follows next_page_uri through every page', async () => {
    const sim = await startSimulator({ seed: false });
    // The simulator seeds 4 ExoPhones and has no API to add more; its exposed list is its live state.
    const extra: WireExoPhone[] = Array.from({ length: 230 }, (_, i) => ({
      sid: `0802000${String(i).padStart(4, '0')}`,
      phone_number: `+91802000${String(i).padStart(4, '0')}`,
      capabilities: { voice: true, sms: false },
    }));
    (sim.exoPhones as WireExoPhone[]).push(...extra);
    const { client } = clientFor(sim);
    const phones = await client.listExoPhones();
    expect(phones).toHaveLength(234);
    expect(new Set(phones.map((p) => p.sid)).size).toBe(234);
    expect(sim.countRequests({ endpoint: 'exophones.list' })).toBe(3);
  });
});

describe('credentials canary', () => {
  const apiKey = 'canary-key-Q7Z1X';
  const apiToken = 'canary-token-XYZ9817';
  const basic = Buffer.from(`${apiKey}:${apiToken}`).toString('base64');

  function expectClean(text: string): void {
    expect(text).not.toContain(apiToken);
    expect(text).not.toContain(apiKey);
    expect(text).not.toContain(basic);
  }

  it('never appears in any log line or in any error of any class', async () => {
    const sim = await startSimulator({ apiKey, apiToken, ratePerMinute: 10_000, seed: false });
    const h = clientFor(sim, { apiKey, apiToken, timeoutMs: 150 });
    const wrongToken = clientFor(sim, { apiKey, apiToken: `${apiToken}-old` });
    const dead = clientFor(sim, { apiKey, apiToken, baseUrl: `http://127.0.0.1:${await closedPort()}` });
    const call = { from: FROM, to: TO, callerId: CALLER_ID };

    const cases: Array<[string, () => Promise<unknown>]> = [
      ['400', () => h.client.connectCall({ ...call, to: 'bad' })],
      ['401', () => wrongToken.client.getCall('0123456789abcdef0123456789abcdef')],
      ['403', () => (sim.faults.inject({ kind: 'insufficient-balance', endpoint: 'sms.send' }), h.client.sendSms({ from: 'ACMEIN', to: TO, body: 'x' }))],
      ['404', () => clientFor(sim, { apiKey, apiToken, accountSid: 'nobody' }).client.listCalls({})],
      ['429', () => (sim.faults.inject({ kind: 'rate-limit', count: 'all', retryAfterSeconds: null, endpoint: 'calls.get' }), h.client.getCall('0123456789abcdef0123456789abcdef'))],
      ['5xx GET', () => (sim.faults.clear(), sim.faults.inject({ kind: 'error', count: 'all', endpoint: 'sms.get' }), h.client.getSms('a'.repeat(32)))],
      ['5xx POST', () => (sim.faults.failNext(1, 502, 'calls.connect'), h.client.connectCall(call))],
      ['timeout', () => (sim.faults.slowNext(1, 500, 'sms.send'), h.client.sendSms({ from: 'ACMEIN', to: TO, body: 'x' }))],
      ['drop', () => (sim.faults.inject({ kind: 'drop-connection', endpoint: 'calls.connect' }), h.client.connectCall(call))],
      ['refused', () => dead.client.connectCall(call)],
      ['bad input', () => h.client.listCalls({ pageSize: 1_000 })],
    ];
    const codes: string[] = [];
    for (const [name, run] of cases) {
      const error = await failure(run());
      codes.push(`${name}:${error.code}`);
      expectClean(error.message);
      expectClean(JSON.stringify(error));
      expectClean(JSON.stringify(error.extensions));
      expectClean(JSON.stringify(error.toGraphQLError().toJSON()));
      expectClean(inspect(error, { depth: 10 }));
      expectClean(String(error.stack));
      sim.faults.clear();
    }
    expect(codes).toEqual([
      '400:BAD_USER_INPUT',
      '401:UPSTREAM_ERROR',
      '403:INSUFFICIENT_BALANCE',
      '404:NOT_FOUND',
      '429:RATE_LIMITED',
      '5xx GET:UPSTREAM_UNAVAILABLE',
      '5xx POST:OUTCOME_UNKNOWN',
      'timeout:OUTCOME_UNKNOWN',
      'drop:OUTCOME_UNKNOWN',
      'refused:UPSTREAM_UNAVAILABLE',
      'bad input:BAD_USER_INPUT',
    ]);
    const logs = [...h.logs, ...wrongToken.logs, ...dead.logs];
    expect(logs.length).toBeGreaterThan(0);
    for (const line of logs) expectClean(line);
  }, 20_000);

  it('refuses a baseUrl carrying credentials without echoing them', () => {
    let message = '';
    try {
      resolveExotelClientOptions({ accountSid: 'a', apiKey, apiToken, baseUrl: `https://${apiKey}:${apiToken}@api.exotel.com`, budget: createMemoryRateBudget({ limit: 1, windowMs: 1 }) });
    } catch (error) {
      message = String(error);
    }
    expect(message).toMatch(/must not contain credentials/);
    expectClean(message);
  });
});

describe('regions', () => {
  const budget = createMemoryRateBudget({ limit: 1, windowMs: 1_000 });
  const base = { accountSid: 'a', apiKey: 'k', apiToken: 't', budget };
  it('maps singapore (default) and mumbai to their hosts; baseUrl overrides both', () => {
    expect(resolveExotelClientOptions(base).baseUrl).toBe('https://api.exotel.com');
    expect(resolveExotelClientOptions({ ...base, region: 'mumbai' }).baseUrl).toBe('https://api.in.exotel.com');
    expect(resolveExotelClientOptions({ ...base, region: 'mumbai', baseUrl: 'http://127.0.0.1:4010/' }).baseUrl).toBe('http://127.0.0.1:4010');
  });
});

async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function waitForCallback(sim: Simulator, sid: string, eventType: 'answered' | 'terminal') {
  let found: (typeof sim.callbacks)[number] | undefined;
  await waitUntil(() => (found = sim.callbacks.find((c) => c.sid === sid && c.eventType === eventType)) !== undefined);
  return found!;
}
