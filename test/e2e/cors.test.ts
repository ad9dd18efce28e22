/**
 * CORS for GraphQL over HTTP (CORS_ALLOWED_ORIGINS): the headers over real HTTP, then a page on another
 * origin in a real browser (Debian's chromium through playwright-core) that can read the gateway's answers
 * only when its origin is listed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser } from 'playwright-core';
import { startGateway, type TestGateway } from '../helpers/gateway.js';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && process.env.CI) throw new Error(`${CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium)`);

const APP = 'https://dash.example.in';
const KEY = 'dash-secret-0123456789';
const ENV = { GATEWAY_API_KEYS: `dash:${KEY}:read`, CORS_ALLOWED_ORIGINS: `${APP}, http://localhost:3000`, LIVE_POLL_INTERVAL_MS: '60000' };
const QUERY = JSON.stringify({ query: '{ gateway { mode } }' });

const preflight = (gw: TestGateway, origin: string) =>
  fetch(`${gw.url}/graphql`, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
  });

describe('CORS on /graphql', () => {
  it('answers a listed origin’s preflight, and lets its page read the answer and the request id', async () => {
    const gw = await startGateway(ENV);
    const pre = await preflight(gw, APP);
    expect(pre.status).toBe(204);
    expect(await pre.text()).toBe('');
    expect(pre.headers.get('access-control-allow-origin')).toBe(APP);
    expect(pre.headers.get('access-control-allow-methods')).toBe('GET,POST');
    expect(pre.headers.get('access-control-allow-headers')).toBe('authorization,content-type');
    expect(pre.headers.get('access-control-max-age')).toBe('600');
    // Keys go in Authorization, never in cookies.
    expect(pre.headers.get('access-control-allow-credentials')).toBeNull();
    expect(pre.headers.get('vary')).toMatch(/origin/i);

    const res = await fetch(`${gw.url}/graphql`, { method: 'POST', headers: { origin: APP, authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body: QUERY });
    expect(await res.json()).toEqual({ data: { gateway: { mode: 'SIMULATOR' } } });
    expect(res.headers.get('access-control-allow-origin')).toBe(APP);
    expect(res.headers.get('access-control-expose-headers')).toBe('x-request-id');
    expect(res.headers.get('x-request-id')).toBeTruthy();
    // A preflight is a request like any other in the access log (written once it is done), and ends there.
    await expect.poll(() => gw.logs.some((l) => l.method === 'OPTIONS' && l.route === '/graphql' && l.status === 204 && l.requestId === pre.headers.get('x-request-id'))).toBe(true);
    expect(gw.logs.filter((l) => l.level === 'warn' || l.level === 'error').map((l) => l.msg)).toEqual([expect.stringMatching(/^SIMULATOR MODE/)]);
    expect(gw.logs.filter((l) => /CORS/.test(String(l.msg)))).toEqual([]);
  });

  it('gives an unlisted origin no CORS headers (its browser keeps the answer from the page)', async () => {
    const gw = await startGateway(ENV);
    const pre = await preflight(gw, 'https://evil.example.com');
    expect(pre.headers.get('access-control-allow-origin')).toBeNull();
    await pre.text();
    // The page sees only a network error it cannot read, so the operator is told which origin was refused
    // and why: the client's doing, so info and counted, not a warning.
    const refused = { level: 'info', requestId: pre.headers.get('x-request-id'), origin: 'https://evil.example.com', msg: expect.stringContaining('not in CORS_ALLOWED_ORIGINS') };
    await expect.poll(() => gw.logs.filter((l) => /CORS_ALLOWED_ORIGINS/.test(String(l.msg)))).toEqual([expect.objectContaining(refused)]);
    expect(await (await fetch(`${gw.url}/metrics`)).text()).toContain('gateway_client_errors_total{kind="auth"} 1');
    const res = await fetch(`${gw.url}/graphql`, { method: 'POST', headers: { origin: 'https://evil.example.com', authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body: QUERY });
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    expect((await res.json()).data).toEqual({ gateway: { mode: 'SIMULATOR' } });
  });

  it('sends no CORS headers at all when CORS_ALLOWED_ORIGINS is unset', async () => {
    const gw = await startGateway({ LIVE_POLL_INTERVAL_MS: '60000' });
    const pre = await preflight(gw, APP);
    expect(pre.headers.get('access-control-allow-origin')).toBeNull();
    // Apollo's answer to a request it does not serve.
    expect(pre.status).toBe(400);
    expect((await pre.json()).errors).toBeDefined();
    await expect
      .poll(() => gw.logs.filter((l) => /CORS_ALLOWED_ORIGINS/.test(String(l.msg))))
      .toEqual([expect.objectContaining({ level: 'info', origin: APP, msg: expect.stringContaining('CORS_ALLOWED_ORIGINS is empty') })]);
    const res = await fetch(`${gw.url}/graphql`, { method: 'POST', headers: { origin: APP, 'content-type': 'application/json' }, body: QUERY });
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    expect((await res.json()).data).toEqual({ gateway: { mode: 'SIMULATOR' } });
  });
});

describe.skipIf(!haveChromium)('CORS in a real browser', () => {
  let browser: Browser;
  let app: Server;
  let appOrigin: string;

  beforeAll(async () => {
    // The page's own server: another origin than the gateway's (another port).
    app = createHttpServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>dashboard</title>'));
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    appOrigin = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  });
  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => app?.close(resolve));
  });

  /** What a page on appOrigin gets when it asks the gateway, with its key, as a dashboard would. */
  const askFromPage = async (gatewayUrl: string) => {
    const page = await browser.newPage();
    try {
      await page.goto(appOrigin);
      return await page.evaluate(
        async ({ url, key, body }) => {
          try {
            const res = await fetch(`${url}/graphql`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body });
            return { status: res.status, body: await res.json(), requestId: res.headers.get('x-request-id') };
          } catch (err) {
            return { failed: String(err) };
          }
        },
        { url: gatewayUrl, key: KEY, body: QUERY },
      );
    } finally {
      await page.close();
    }
  };

  it('a listed origin’s page reads the answer and its request id; an unlisted one is refused by the browser', async () => {
    const listed = await startGateway({ ...ENV, CORS_ALLOWED_ORIGINS: appOrigin });
    expect(await askFromPage(listed.url)).toEqual({ status: 200, body: { data: { gateway: { mode: 'SIMULATOR' } } }, requestId: expect.any(String) });

    const unlisted = await startGateway(ENV);
    expect(await askFromPage(unlisted.url)).toEqual({ failed: expect.stringMatching(/Failed to fetch/) });
  });
});
