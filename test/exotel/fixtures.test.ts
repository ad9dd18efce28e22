/**
 * Every recorded Exotel answer shape (test/fixtures/exotel/) through the real client over real HTTP: a
 * plain node:http server answers with the fixture exactly as recorded, and the client must read it.
 * A fixture file without a case here fails the suite, so a new shape cannot be added unread.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/errors.js';
import { createExotelClient } from '../../src/exotel/client.js';
import type { ExotelApi } from '../../src/exotel/types.js';
import { createMemoryRateBudget } from '../../src/storage/rate-budget.js';
import { loadFixtures, type Fixture } from '../helpers/exotel-fixtures.js';
import { failure } from '../helpers/failure.js';

const fixtures = loadFixtures();
const servers: Server[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
});

interface Served {
  client: ExotelApi;
  requests: Array<{ method: string; path: string }>;
  debugLogs: Array<Record<string, unknown>>;
  warnLogs: Array<Record<string, unknown>>;
}

/**
 * A server that answers every request with the fixture; `v1NotFound` makes v1 ExoPhone listings 404 (so
 * the client falls back to v2_beta).
 */
async function serve(fixture: Fixture, options: { v1NotFound?: boolean } = {}): Promise<Served> {
  const requests: Served['requests'] = [];
  const server = createServer((req: IncomingMessage, res) => {
    const path = (req.url ?? '').split('?')[0]!;
    requests.push({ method: req.method ?? '', path });
    req.resume();
    if (options.v1NotFound && path.startsWith('/v1/') && path.includes('IncomingPhoneNumbers')) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ RestException: { Status: 404, Message: 'Not Found' } }));
      return;
    }
    const text = typeof fixture.body === 'string' ? fixture.body : JSON.stringify(fixture.body);
    res.writeHead(fixture.status, { 'content-type': fixture.contentType ?? 'application/json' });
    res.end(text);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const debugLogs: Served['debugLogs'] = [];
  const warnLogs: Served['warnLogs'] = [];
  const client = createExotelClient({
    accountSid: 'acme1',
    apiKey: 'fixture-key',
    apiToken: 'fixture-token',
    baseUrl: `http://127.0.0.1:${port}`,
    budget: createMemoryRateBudget({ limit: 1_000, windowMs: 60_000 }),
    timeoutMs: 2_000,
    maxAttemptsGet: 1,
    logger: { debug: (obj) => debugLogs.push(obj), warn: (obj) => warnLogs.push(obj) },
  });
  return { client, requests, debugLogs, warnLogs };
}


const SMS = { from: 'WEBDEV', to: '09812345670', body: 'Hello' };
const CONNECT = { from: '09912345670', to: '09812345670', callerId: '08047112233' };

/** What the client must make of each fixture. */
const cases: Record<string, (fixture: Fixture) => Promise<void>> = {
  'call-details-numbers': async (fixture) => {
    const { client, debugLogs } = await serve(fixture);
    const call = await client.getCall('4a2f0d5be3c1a7b9d2e8f0c1b6a3189g');
    expect(call).toMatchObject({
      sid: '4a2f0d5be3c1a7b9d2e8f0c1b6a3189g',
      status: 'BUSY',
      durationSeconds: 11,
      price: 0.75,
      parentCallSid: null,
      recordingUrl: null,
      answeredBy: 'human',
      dateCreated: '2024-03-14T17:02:41+05:30',
      endTime: '2024-03-14T17:02:52+05:30',
    });
    expect(debugLogs).toEqual([]);
  },
  'call-details-strings': async (fixture) => {
    const { client } = await serve(fixture);
    const call = await client.getCall('b6cfaf5f5cef3ca0fc937749ef96d245', { details: true });
    expect(call).toMatchObject({ status: 'COMPLETED', durationSeconds: 47, price: 1.5, conversationDurationSeconds: 40 });
    expect(call?.legs).toEqual([
      { id: 1, status: 'COMPLETED', onCallDurationSeconds: 47 },
      { id: 2, status: 'COMPLETED', onCallDurationSeconds: 40 },
    ]);
  },
  'call-connect-in-progress': async (fixture) => {
    const { client } = await serve(fixture);
    const call = await client.connectCall(CONNECT);
    // "in-progress" in a connect answer means placed, not answered (src/exotel/calls.ts): QUEUED until a phase follows.
    expect(call).toMatchObject({ sid: '91c0e5a7d3b2f4e6a8c0d2e4f6a8162m', status: 'QUEUED', endTime: null, durationSeconds: null, price: null });
  },
  'sms-send': async (fixture) => {
    const { client } = await serve(fixture);
    const sms = await client.sendSms(SMS);
    expect(sms).toMatchObject({ status: 'QUEUED', detailedStatusCode: 21010, dateSent: null, price: null, from: '0XXXXXX4890/WEBDEV' });
  },
  'sms-legacy-null': async (fixture) => {
    const { client, debugLogs } = await serve(fixture);
    const sms = await client.sendSms(SMS);
    expect(sms).toMatchObject({
      sid: '7c1e9a3f5b7d9e1a3c5e7a9b1d3f1a8u',
      status: 'QUEUED',
      detailedStatusCode: 21010,
      detailedStatus: 'PENDING_TO_OPERATOR',
      dateSent: null,
      price: null,
      from: '/acme1',
      dateCreated: '2024-06-10T09:15:02+05:30',
    });
    // "null" is an empty value, not an unreadable one.
    expect(debugLogs).toEqual([]);
  },
  'sms-bulk-long': async (fixture) => {
    const { client } = await serve(fixture);
    const results = await client.sendBulkSms({ from: 'WEBDEV', messages: [{ to: '09812345670', body: 'Order 1 shipped' }, { to: '12', body: 'Order 2 shipped' }] });
    expect(results[0]).toMatchObject({ ok: true, sms: { sid: '5e0b2c4d6f8a0b2c4d6e8f0a2b4c6d8e', status: 'QUEUED' } });
    expect(results[1]).toMatchObject({ ok: false, status: 400, message: 'Invalid Recipient [12]' });
  },
  'sms-bulk-short': async (fixture) => {
    const { client } = await serve(fixture);
    const results = await client.sendBulkSms({ from: 'WEBDEV', messages: [{ to: '09812345670', body: 'one' }, { to: '09812345671', body: 'two' }] });
    expect(results).toEqual([
      { ok: true, to: '09812345670', sms: expect.objectContaining({ sid: '2d4f6a8c0e2b4d6f8a0c2e4b6d8f162m', status: 'QUEUED', from: 'WEBDEV', to: '09812345670', body: 'one', detailedStatusCode: null, dateSent: null, price: null }) },
      { ok: true, to: '09812345671', sms: expect.objectContaining({ sid: '3e5a7c9e1b3d5f7a9c1e3b5d7f9a189g', status: 'QUEUED', body: 'two' }) },
    ]);
  },
  'exophones-v1': async (fixture) => {
    const { client, requests } = await serve(fixture);
    const phones = await client.listExoPhones();
    expect(phones).toEqual([
      { sid: '08047112233', phoneNumber: '+918047112233', friendlyName: 'Support line', capabilities: ['voice', 'sms'], region: null },
      { sid: '08047112234', phoneNumber: '+918047112234', friendlyName: null, capabilities: ['voice'], region: null },
    ]);
    // No next-page URI: exactly one request, to the v1 listing.
    expect(requests).toEqual([{ method: 'GET', path: '/v1/Accounts/acme1/IncomingPhoneNumbers.json' }]);
  },
  'exophones-v2beta-page': async (fixture) => {
    const { client, requests } = await serve(fixture, { v1NotFound: true });
    const phones = await client.listExoPhones();
    expect(phones).toEqual([{ sid: '011XXXXXXX1', phoneNumber: '+911100000001', friendlyName: '011XXXXXXX6', capabilities: ['voice', 'sms'], region: 'DL' }]);
    expect(requests.map((r) => r.path)).toEqual(['/v1/Accounts/acme1/IncomingPhoneNumbers.json', '/v2_beta/Accounts/acme1/IncomingPhoneNumbers']);
  },
  'error-json-code-35008': async (fixture) => {
    const { client } = await serve(fixture);
    const error = await failure(client.connectCall(CONNECT));
    // A 503 on a POST stays OUTCOME_UNKNOWN (the call may have been placed), now with Exotel's code and words.
    expect(error.code).toBe(ErrorCode.OUTCOME_UNKNOWN);
    expect(error.extensions).toMatchObject({ upstreamStatus: 503, exotelCode: 35008 });
    expect(error.message).toContain('Service Unavailable');
  },
  'error-json-code-340030': async (fixture) => {
    const { client } = await serve(fixture);
    const error = await failure(client.sendSms(SMS));
    expect(error.code).toBe(ErrorCode.UPSTREAM_ERROR);
    expect(error.extensions).toMatchObject({ upstreamStatus: 403, exotelCode: 340030 });
    expect(error.message).toContain('Your account is not yet KYC compliant');
  },
  'error-xml': async (fixture) => {
    const { client } = await serve(fixture);
    const error = await failure(client.sendSms(SMS));
    expect(error.code).toBe(ErrorCode.BAD_USER_INPUT);
    expect(error.extensions).toMatchObject({ upstreamStatus: 400, exotelCode: 40210 });
    expect(error.message).toContain("Invalid Parameters: No 'From' specified");
  },
};

describe('recorded Exotel answers through the real client over HTTP', () => {
  it('has a case for every fixture file, and every fixture names its source', () => {
    expect([...fixtures.keys()].sort()).toEqual(Object.keys(cases).sort());
    for (const [name, fixture] of fixtures) {
      expect(fixture._source?.length ?? 0, name).toBeGreaterThan(20);
      expect(typeof fixture.endpoint, name).toBe('string');
    }
  });

  for (const [name, check] of Object.entries(cases)) {
    it(`reads ${name}`, async () => {
      const fixture = fixtures.get(name);
      expect(fixture, `test/fixtures/exotel/${name}.json`).toBeDefined();
      await check(fixture!);
    });
  }
});

describe('a bulk call listing with one call the gateway cannot read', () => {
  it('leaves that call out with a warning and reads the rest of the page', async () => {
    const recorded = fixtures.get('call-details-numbers')!;
    const good = (recorded.body as { Call: Record<string, unknown> }).Call;
    const bad = { ...good, Sid: '5b3e1f6ca4d2b8c0e3f9a1d2c7b4290h', Status: 'exploded' };
    const listing = { ...recorded, body: { Metadata: { Total: 2, PageSize: 2, FirstPageUri: null, NextPageUri: null, PrevPageUri: null }, Calls: [bad, good] } };
    const { client, warnLogs } = await serve(listing);
    const page = await client.listCalls({ sids: [String(bad.Sid), String(good.Sid)] });
    expect(page.calls.map((c) => c.sid)).toEqual([good.Sid]);
    expect(warnLogs).toEqual([expect.objectContaining({ object: 'Call', reason: expect.stringContaining('status') })]);
  });
});
