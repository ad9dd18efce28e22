/**
 * A POST that Exotel answered 2xx, but with an answer the client cannot read (XML, an HTML page from a
 * proxy, JSON without the created object): Exotel took the request, so the call may be placed or the SMS
 * sent. That is OUTCOME_UNKNOWN — never UPSTREAM_ERROR, which tells the client Exotel refused it and
 * invites a resend that would place a second call. A GET answered the same way stays UPSTREAM_ERROR.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { createExotelClient } from '../../src/exotel/client.js';
import type { ExotelApi } from '../../src/exotel/types.js';
import { certainlyNotSent } from '../../src/graphql/idempotency.js';
import { createMemoryRateBudget } from '../../src/storage/rate-budget.js';
import { failure } from '../helpers/failure.js';

const servers: Server[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
});

/** A client whose Exotel answers every request 200 with `body`; counts the requests. */
async function answering(body: string, contentType: string): Promise<{ client: ExotelApi; requests: () => number }> {
  let requests = 0;
  const server = createServer((req, res) => {
    requests++;
    req.resume();
    res.writeHead(200, { 'content-type': contentType });
    res.end(body);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const client = createExotelClient({
    accountSid: 'acme1',
    apiKey: 'unreadable-key',
    apiToken: 'unreadable-token',
    baseUrl: `http://127.0.0.1:${port}`,
    budget: createMemoryRateBudget({ limit: 1_000, windowMs: 60_000 }),
    timeoutMs: 2_000,
    maxAttemptsGet: 1,
    logger: { debug: () => {}, warn: () => {} },
  });
  return { client, requests: () => requests };
}

// Exotel's own answer form when a path lacks `.json` (and what it sends for errors even when JSON was asked).
const XML_CALL = '<?xml version="1.0" encoding="UTF-8"?>\n<TwilioResponse><Call><Sid>b6cfaf0000000000000000000000189g</Sid><Status>in-progress</Status></Call></TwilioResponse>';
const CONNECT = { from: '09912345670', to: '09812345670', callerId: '08047112233' };
const SMS = { from: 'WEBDEV', to: '09812345670', body: 'Hello' };

describe('a 2xx answer to a POST that cannot be read', () => {
  it('connectCall answered 200 in XML → OUTCOME_UNKNOWN, sent once, its key not freed', async () => {
    const { client, requests } = await answering(XML_CALL, 'application/xml');
    const error = await failure(client.connectCall(CONNECT));
    expect(error.code).toBe('OUTCOME_UNKNOWN');
    expect(error.upstreamStatus).toBe(200);
    expect(certainlyNotSent(error)).toBe(false);
    expect(requests()).toBe(1);
  });

  it('connectCall answered 200 with JSON that holds no readable call → OUTCOME_UNKNOWN', async () => {
    for (const body of ['{}', '{"Call": {"Status": "in-progress"}}', '{"Call": {"Sid": "b6cfaf0000000000000000000000189g", "Status": "dialling"}}']) {
      const { client } = await answering(body, 'application/json');
      const error = await failure(client.connectCall(CONNECT));
      expect({ body, code: error.code }).toEqual({ body, code: 'OUTCOME_UNKNOWN' });
    }
  });

  it('connectCallToFlow answered 200 with an HTML page → OUTCOME_UNKNOWN', async () => {
    const { client } = await answering('<html><body>OK</body></html>', 'text/html');
    const error = await failure(client.connectCallToFlow({ from: '09912345670', callerId: '08047112233', flowId: '12345' }));
    expect(error.code).toBe('OUTCOME_UNKNOWN');
  });

  it('sendSms answered 200 without an SMSMessage, or not in JSON → OUTCOME_UNKNOWN', async () => {
    for (const [body, type] of [['{"Status": "queued"}', 'application/json'], ['<TwilioResponse><SMSMessage/></TwilioResponse>', 'application/xml']] as const) {
      const { client } = await answering(body, type);
      const error = await failure(client.sendSms(SMS));
      expect({ body, code: error.code }).toEqual({ body, code: 'OUTCOME_UNKNOWN' });
    }
  });

  it('sendBulkSms answered 200 not in JSON → OUTCOME_UNKNOWN', async () => {
    const { client } = await answering('<TwilioResponse/>', 'application/xml');
    const error = await failure(client.sendBulkSms({ from: 'WEBDEV', messages: [{ to: '09812345670', body: 'Hello' }] }));
    expect(error.code).toBe('OUTCOME_UNKNOWN');
  });

  it('a GET answered 200 not in JSON stays UPSTREAM_ERROR: nothing was created', async () => {
    const { client } = await answering(XML_CALL, 'application/xml');
    const error = await failure(client.getCall('b6cfaf0000000000000000000000189g'));
    expect(error.code).toBe('UPSTREAM_ERROR');
  });
});
