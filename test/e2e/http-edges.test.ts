/**
 * The edges of the gateway's HTTP surface that a client meets by mistake, over real HTTP against the real
 * server: a path nothing is served at gets a GraphQL-shaped JSON 404 naming where GraphQL is (never an HTML
 * page, never the path echoed), counted as a client mistake.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../helpers/gateway.js';

/** The value of one series of the gateway's /metrics text (0 when absent). */
async function series(gw: TestGateway, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway({ LIVE_POLL_INTERVAL_MS: '60000' });
});

describe('a path nothing is served at', () => {
  const notFound = { errors: [{ message: expect.stringContaining('GraphQL is served at /graphql'), extensions: { code: 'NOT_FOUND' } }] };

  it('is a 404 with a GraphQL-shaped JSON body naming /graphql, whatever the method; counted as a client mistake and logged at info only', async () => {
    const before = await series(gw, 'gateway_client_errors_total', 'kind="path"');
    const logged = gw.logs.length;
    const json = { 'content-type': 'application/json' };
    const query = JSON.stringify({ query: '{ gateway { mode } }' });
    const requests: Array<[string, RequestInit]> = [
      // A GraphQL client pointed at a near miss of the path.
      ['/graphql/', { method: 'POST', headers: json, body: query }],
      ['/GraphQL', { method: 'POST', headers: json, body: query }],
      ['/graphql/elsewhere', { method: 'GET' }],
      ['/api/graphql?query=%7B__typename%7D', { method: 'GET' }],
      ['/', { method: 'GET' }],
      ['/webhooks/other', { method: 'POST' }],
    ];
    for (const [path, init] of requests) {
      const res = await fetch(`${gw.url}${path}`, init);
      const text = await res.text();
      expect({ path, status: res.status, type: res.headers.get('content-type') }).toEqual({ path, status: 404, type: 'application/json; charset=utf-8' });
      expect(JSON.parse(text), path).toEqual(notFound);
      expect(res.headers.get('x-request-id'), path).toBeTruthy();
    }
    expect(await series(gw, 'gateway_client_errors_total', 'kind="path"')).toBe(before + requests.length);
    const lines = gw.logs.slice(logged).filter((l) => l.msg !== 'http request' || l.status === 404);
    expect(lines.filter((l) => l.level !== 'info')).toEqual([]);
    expect(lines.filter((l) => l.msg === 'http request').map((l) => l.route)).toEqual(['/graphql', '(other)', '/graphql', '(other)', '(other)', '/webhooks/(other)']);
  });

  it('never echoes the request back', async () => {
    const res = await fetch(`${gw.url}/%3Cscript%3Ealert(1)%3C%2Fscript%3E?to=%2B919812345678`);
    const text = await res.text();
    expect(res.status).toBe(404);
    expect(JSON.parse(text)).toEqual(notFound);
    expect(text).not.toMatch(/script|alert|9812345678/i);
  });

  it('leaves the routes that are served alone', async () => {
    expect((await gw.gql('{ gateway { mode } }')).body.data.gateway.mode).toBe('SIMULATOR');
    const health = await fetch(`${gw.url}/healthz`);
    expect([health.status, await health.json()]).toEqual([200, { status: 'ok' }]);
  });
});
