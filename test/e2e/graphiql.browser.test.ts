/**
 * The self-hosted GraphiQL page in a real browser (Debian's chromium through playwright-core), plus the
 * /graphiql route's HTTP behaviour. The page must load with no failed request and no request to another
 * origin, show the docs from the SDL's descriptions, and run a query against the gateway.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, get as httpGet, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import express from 'express';
import { WebSocketServer } from 'ws';
import { useServer } from 'graphql-ws/use/ws';
import { makeExecutableSchema } from '@graphql-tools/schema';
import { ApolloServer } from '@apollo/server';
import { expressMiddleware } from '@as-integrations/express5';
import { chromium, type Browser, type Page } from 'playwright-core';
import { graphiqlRouter, type GraphiqlRouterOptions } from '../../src/graphiql/route.js';
import { API_KEY_PLACEHOLDER, cleanHeaders, socketClosedMessage, withApiKey } from '../../src/graphiql/headers.js';
import { loadTypeDefs } from '../../src/graphql/schema-sdl.js';
import type { Resolvers } from '../../src/generated/graphql.js';
import type { CallEventRecord } from '../../src/storage/types.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { callbackUrlsOf, callCallback, post } from '../live/webhook-helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) {
  const why = `${CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium) to run the GraphiQL browser test`;
  if (process.env.CI) throw new Error(why);
  console.warn(`[graphiql.browser] skipping browser tests: ${why}`);
}

const root = new URL('../../', import.meta.url);
const version = (JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { version: string }).version;

const SCHEMA_SERVER = 'test schema server';

interface Running {
  url: string;
  kind: string;
  stop(): Promise<void>;
}

/** The one event the schema server's `callEvents` delivers. */
const EVENT: CallEventRecord = {
  kind: 'call',
  id: '1700000000000-0',
  accountSid: 'test-account',
  callSid: 'CA-graphiql-test',
  status: 'RINGING',
  at: '2026-11-20T10:00:00+05:30',
  source: 'WEBHOOK',
  forward: true,
};

/**
 * A small server for the /graphiql route's HTTP tests (options the real gateway does not expose, such as a
 * missing bundle): express 5 + the /graphiql router + Apollo Server and graphql-ws over the real SDL,
 * resolving only `gateway`, `rateLimit` and `callEvents` (one event). The browser tests use the real gateway.
 */
async function startSchemaServer(routerOptions: GraphiqlRouterOptions = {}): Promise<Running> {
  const resolvers: Resolvers = {
    Query: {
      gateway: () => ({ mode: 'SIMULATOR', version }),
      rateLimit: () => ({ limitPerMinute: 200, remaining: 200, resetsAt: new Date().toISOString(), queued: 0, myShare: null, myUsed: null }),
    },
    Subscription: {
      callEvents: {
        subscribe: async function* () {
          yield { callEvents: EVENT };
        },
      },
    },
  };
  const schema = makeExecutableSchema({ typeDefs: loadTypeDefs(), resolvers: resolvers as never });
  const apollo = new ApolloServer({ schema });
  await apollo.start();
  const app = express();
  app.use(graphiqlRouter(routerOptions));
  app.use('/graphql', express.json(), expressMiddleware(apollo));
  const server: Server = createHttpServer(app);
  const wsServer = new WebSocketServer({ server, path: '/graphql' });
  const ws = useServer({ schema }, wsServer);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    kind: SCHEMA_SERVER,
    async stop() {
      await ws.dispose();
      await apollo.stop();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

/** The real gateway (src/server.ts): simulator upstream, memory storage, GraphiQL at /graphiql. */
async function startRealGateway(): Promise<Running & { gateway: TestGateway }> {
  const gateway = await startGateway({}, {}, {}, { autoStop: false });
  return { url: gateway.url, kind: 'real gateway (src/server.ts)', gateway, stop: () => gateway.stop() };
}

/** Text of a Monaco editor as a user sees it (Monaco renders spaces as non-breaking spaces). */
async function editorText(page: Page, selector: string): Promise<string> {
  const text = await page.locator(`${selector} .view-lines`).first().innerText();
  return text.replace(/\u00a0/g, ' ');
}

describe('GraphiQL route', () => {
  let server: Running;
  let emptyDir: string;
  let bare: Running;

  beforeAll(async () => {
    execFileSync(process.execPath, ['scripts/build-graphiql.mjs'], { cwd: root, stdio: 'pipe' });
    server = await startSchemaServer({ mode: 'SIMULATOR' });
    emptyDir = mkdtempSync(join(tmpdir(), 'graphiql-missing-'));
    bare = await startSchemaServer({ bundleDir: emptyDir });
  });
  afterAll(async () => {
    await server?.stop();
    await bare?.stop();
    if (emptyDir) rmSync(emptyDir, { recursive: true, force: true });
  });

  it('serves index.html revalidated on each load, under a CSP that allows only its own origin', async () => {
    const res = await fetch(`${server.url}/graphiql`);
    const html = await res.text();
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(res.headers.get('cache-control')).toBe('no-cache');
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-eval');
    expect(csp).not.toMatch(/https?:\/\//);
    expect(html).toContain('<div id="root"></div>');
    expect(html).toContain('data-gateway-mode="SIMULATOR"');
    // Every script and stylesheet is a same-origin path.
    const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(refs.filter((r) => r !== 'data:,').every((r) => r.startsWith('/graphiql/assets/'))).toBe(true);
  });

  it('serves content-hashed assets cacheable for a year, and 404 for unknown ones', async () => {
    const html = await (await fetch(`${server.url}/graphiql`)).text();
    const script = /<script type="module" src="([^"]+)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    const asset = await fetch(`${server.url}${script}`);
    const js = await asset.text();
    expect(asset.status).toBe(200);
    expect(asset.headers.get('content-type')).toMatch(/javascript/);
    expect(asset.headers.get('cache-control')).toMatch(/max-age=31536000.*immutable/);
    expect(js.length).toBeGreaterThan(1000);
    const missing = await fetch(`${server.url}/graphiql/assets/no-such-file.js`);
    expect(missing.status).toBe(404);
    expect(await missing.text()).toBe('Not found\n');
  });

  it('sends the gzipped copy of an asset to a client that accepts gzip, and the plain file to one that does not', async () => {
    const html = await (await fetch(`${server.url}/graphiql`)).text();
    const script = /<script type="module" src="([^"]+)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    /** The raw bytes and headers (fetch would undo the encoding). */
    const raw = (acceptEncoding: string | undefined) =>
      new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }>((resolve, reject) => {
        httpGet(`${server.url}${script}`, { headers: acceptEncoding === undefined ? {} : { 'accept-encoding': acceptEncoding } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
          res.on('error', reject);
        }).on('error', reject);
      });
    const plain = await raw(undefined);
    expect(plain.status).toBe(200);
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.headers.vary).toMatch(/Accept-Encoding/i);
    for (const acceptEncoding of ['gzip, deflate, br', 'gzip']) {
      const gzipped = await raw(acceptEncoding);
      expect(gzipped.status).toBe(200);
      expect(gzipped.headers['content-encoding']).toBe('gzip');
      expect(gzipped.headers['content-type']).toMatch(/javascript/);
      expect(gzipped.headers['cache-control']).toMatch(/max-age=31536000.*immutable/);
      expect(gzipped.headers.vary).toMatch(/Accept-Encoding/i);
      expect(gzipped.body.length).toBeLessThan(plain.body.length / 2);
      expect(gunzipSync(gzipped.body).equals(plain.body)).toBe(true);
    }
    for (const acceptEncoding of ['identity', 'gzip;q=0, br']) {
      const refused = await raw(acceptEncoding);
      expect(refused.headers['content-encoding']).toBeUndefined();
      expect(refused.body.equals(plain.body)).toBe(true);
    }
  });

  it('sends a gzipped copy only of an asset, only to GET or HEAD, and the plain file when the copy cannot be sent', async () => {
    /** The raw answer to `method path` (the path as written: no client tidies `..` away), gzip accepted. */
    const raw = (base: string, method: string, path: string) =>
      new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }>((resolve, reject) => {
        const { hostname, port } = new URL(base);
        const req = httpRequest({ host: hostname, port, method, path, headers: { 'accept-encoding': 'gzip' } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      });
    const dir = mkdtempSync(join(tmpdir(), 'graphiql-gzip-'));
    const js = 'console.log("graphiql");\n'.repeat(100);
    mkdirSync(join(dir, 'assets'));
    writeFileSync(join(dir, 'index.html'), '<!doctype html>\n<html lang="en"></html>\n');
    writeFileSync(join(dir, 'assets', 'app-1.js'), js);
    writeFileSync(join(dir, 'assets', 'app-1.js.gz'), gzipSync(js));
    // A copy that cannot be sent (a directory where the file should be): the plain file answers instead.
    writeFileSync(join(dir, 'assets', 'broken-1.js'), js);
    mkdirSync(join(dir, 'assets', 'broken-1.js.gz'));
    // Beside the assets directory, never reachable through it.
    writeFileSync(join(dir, 'secret.txt.gz'), gzipSync('not an asset'));
    const app = await startSchemaServer({ bundleDir: dir });
    try {
      const gzipped = await raw(app.url, 'GET', '/graphiql/assets/app-1.js');
      expect([gzipped.status, gzipped.headers['content-encoding'], gunzipSync(gzipped.body).toString()]).toEqual([200, 'gzip', js]);
      const fallback = await raw(app.url, 'GET', '/graphiql/assets/broken-1.js');
      expect([fallback.status, fallback.headers['content-encoding'], fallback.body.toString()]).toEqual([200, undefined, js]);
      expect(fallback.headers['content-type']).toMatch(/javascript/);
      const outside = await raw(app.url, 'GET', '/graphiql/assets/../secret.txt');
      expect(outside.status).toBe(404);
      expect(outside.headers['content-encoding']).toBeUndefined();
      // Only GET and HEAD are served, as express.static serves them.
      const posted = await raw(app.url, 'POST', '/graphiql/assets/app-1.js');
      expect([posted.status, posted.headers['content-encoding']]).toEqual([404, undefined]);
    } finally {
      await app.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('answers 503 with the build command when the bundle is missing', async () => {
    const res = await fetch(`${bare.url}/graphiql`);
    const text = await res.text();
    expect(res.status).toBe(503);
    expect(text).toContain('npm run build:graphiql');
  });

  it('never sends the unfilled API key template, and lower-cases header names for graphql-ws', () => {
    expect(cleanHeaders({ Authorization: `Bearer ${API_KEY_PLACEHOLDER}`, 'X-Trace': 'abc' })).toEqual({ 'x-trace': 'abc' });
    expect(cleanHeaders({ Authorization: 'Bearer s3cret' })).toEqual({ authorization: 'Bearer s3cret' });
    expect(cleanHeaders(undefined)).toEqual({});
  });

  it('sends the key field\'s secret after Bearer, whatever form it was pasted in, unless the tab sets its own', () => {
    const bearer = { authorization: 'Bearer s3cret-0123456789abcdef' };
    expect(withApiKey({}, 's3cret-0123456789abcdef')).toEqual(bearer);
    expect(withApiKey({}, ' Bearer s3cret-0123456789abcdef ')).toEqual(bearer);
    expect(withApiKey({}, 'backend:s3cret-0123456789abcdef:read+write')).toEqual(bearer);
    expect(withApiKey({ authorization: 'Bearer other' }, 's3cret-0123456789abcdef')).toEqual({ authorization: 'Bearer other' });
    expect(withApiKey({ 'x-trace': 'a' }, '')).toEqual({ 'x-trace': 'a' });
    expect(socketClosedMessage(4403, 'Forbidden')).toBe('The gateway closed the WebSocket (4403 Forbidden): the API key is missing or wrong: put the secret part of name:secret:scopes in the API key field');
    expect(socketClosedMessage(4403, 'Forbidden: send connectionParams { authorization: "Bearer <api key>" } in connection_init')).toBe(
      'The gateway closed the WebSocket (4403 Forbidden): the API key is missing or wrong: put the secret part of name:secret:scopes in the API key field',
    );
  });
});

describe.skipIf(!haveChromium)('GraphiQL in chromium', () => {
  let server: Running & { gateway: TestGateway };
  let browser: Browser;
  let page: Page;
  const requests: string[] = [];
  const failures: string[] = [];
  const problems: string[] = [];

  beforeAll(async () => {
    execFileSync(process.execPath, ['scripts/build-graphiql.mjs'], { cwd: root, stdio: 'pipe' });
    server = await startRealGateway();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    page = await browser.newPage();
    page.on('request', (r) => requests.push(r.url()));
    page.on('requestfailed', (r) => failures.push(`${r.url()}: ${r.failure()?.errorText ?? 'failed'}`));
    page.on('response', (r) => {
      if (r.status() >= 400) failures.push(`${r.url()}: HTTP ${r.status()}`);
    });
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error') problems.push(`console error: ${msg.text()}`);
    });
    await page.goto(`${server.url}/graphiql`, { waitUntil: 'load' });
    await page.locator('.graphiql-query-editor .monaco-editor').waitFor({ state: 'visible' });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('loads everything from the gateway itself, Monaco workers included, with no failed request', async () => {
    // The GraphQL worker starts once the schema is in; wait for it before judging the request log.
    // Both workers start on their own time after the page is up: waited for, not expected at once.
    await expect.poll(() => requests.some((u) => /graphql\.worker-[^/]+\.js$/.test(u)), { timeout: 15_000 }).toBe(true);
    await expect.poll(() => requests.some((u) => /editor\.worker-[^/]+\.js$/.test(u)), { timeout: 15_000 }).toBe(true);
    const origin = new URL(server.url).origin;
    const offOrigin = requests.filter((u) => !u.startsWith('data:') && !u.startsWith('blob:') && new URL(u).origin !== origin);
    expect(offOrigin).toEqual([]);
    expect(failures).toEqual([]);
    expect(problems).toEqual([]);
  });

  it('shows the simulator banner', async () => {
    const banner = page.getByTestId('simulator-banner');
    await banner.waitFor({ state: 'visible' });
    expect(await banner.innerText()).toContain('Simulator mode');
  });

  it('pre-fills a seeded call, a connectCall mutation and an incoming-calls watch', async () => {
    // The whole document, not just the lines Monaco happens to render: GraphiQL exposes monaco globally.
    const models = await page.evaluate(() => {
      const monaco = (globalThis as { __MONACO?: { editor: { getModels(): Array<{ uri: { path: string }; getValue(): string }> } } }).__MONACO;
      return (monaco?.editor.getModels() ?? []).map((m) => ({ path: m.uri.path, value: m.getValue() }));
    });
    const operation = models.find((m) => m.value.includes('query RecentCalls'));
    expect(operation?.value).toContain('calls(first: 5');
    const seededSid = /call\(sid: "([^"]+)"\)/.exec(operation?.value ?? '')?.[1];
    expect(seededSid).toBeDefined();
    expect(server.gateway.simulator!.calls.get(seededSid!)?.Status).toBe('completed');
    expect(operation?.value).toContain('mutation ConnectCall');
    expect(operation?.value).toContain('# Simulator: play one with the curl line of the start log ("play an incoming call").\nsubscription IncomingCalls {\n  incomingCalls {\n    sid\n    from\n    to\n    status');
    expect(await editorText(page, '.graphiql-query-editor')).toContain('query Gateway');
  });

  it('opens the Docs explorer and shows the descriptions written in the SDL', async () => {
    await page.locator('.graphiql-sidebar button[aria-label="Show Documentation Explorer"]').click();
    const docs = page.locator('.graphiql-doc-explorer');
    await docs.waitFor({ state: 'visible' });
    await docs.getByText('Query', { exact: true }).first().click();
    await docs.getByText('Read operations. Lookups answer from the cache').waitFor({ state: 'visible' });
    await docs.getByText('gateway', { exact: true }).first().click();
    await docs.getByText('About this gateway: whether it talks to the real Exotel or the simulator').waitFor({ state: 'visible' });
  });

  it('runs the Gateway query from the run button and shows its result', async () => {
    await page.locator('.graphiql-execute-button').click();
    // The example holds several operations, so the run button asks which one.
    await page.getByRole('menuitem', { name: 'Gateway' }).click();
    await expect.poll(() => editorText(page, '.result-window'), { timeout: 15_000 }).toContain('"mode": "SIMULATOR"');
    const result = await editorText(page, '.result-window');
    expect(result).toContain(`"version": "${version}"`);
    expect(result).toContain('"limitPerMinute"');
    expect(failures).toEqual([]);
    expect(problems).toEqual([]);
  });

  it('answers the pre-filled OneCall and ConnectCall on their first run', async () => {
    await page.locator('.graphiql-execute-button').click();
    await page.getByRole('menuitem', { name: 'OneCall' }).click();
    await expect.poll(() => editorText(page, '.result-window'), { timeout: 15_000 }).toContain('"status": "COMPLETED"');
    expect(await editorText(page, '.result-window')).not.toContain('"errors"');
    await page.locator('.graphiql-execute-button').click();
    await page.getByRole('menuitem', { name: 'ConnectCall' }).click();
    await expect.poll(() => editorText(page, '.result-window'), { timeout: 15_000 }).toContain('"connectCall"');
    expect(await editorText(page, '.result-window')).toContain('"status": "QUEUED"');
    expect(failures).toEqual([]);
    expect(problems).toEqual([]);
  });

  it('watches incoming calls with the pre-filled subscription, played with the command of the start log', async () => {
    await page.locator('.graphiql-execute-button').click();
    await page.getByRole('menuitem', { name: 'IncomingCalls' }).click();
    // What the page's comment points at: the start log's line with the simulator's incoming-call command.
    const hint = server.gateway.logs.find((l) => String(l.msg).startsWith('play an incoming call'));
    const playUrl = /curl -XPOST (\S+)/.exec(String(hint?.msg))?.[1];
    expect(playUrl).toBe(`${server.gateway.simulator!.url}/__sim/incoming-calls`);
    const played: string[] = [];
    await expect
      .poll(
        async () => {
          // Play fresh incoming calls until the page's subscription is live and shows one.
          if ((await editorText(page, '.result-window')).includes('"incomingCalls"')) return true;
          const res = await fetch(playUrl!, { method: 'POST' });
          played.push(((await res.json()) as { incomingCall: { sid: string } }).incomingCall.sid);
          return (await editorText(page, '.result-window')).includes('"incomingCalls"');
        },
        { timeout: 15_000, interval: 500 },
      )
      .toBe(true);
    // The result pane wraps long lines, so the Sid may start a line of its own.
    const shown = /"sid":\s*"([^"]+)"/.exec(await editorText(page, '.result-window'))?.[1];
    expect(played).toContain(shown);
    // Stop the watch so the next test starts from an idle run button.
    await page.locator('.graphiql-execute-button').click();
    await expect.poll(() => page.locator('.graphiql-execute-button').getAttribute('aria-label')).toMatch(/^Execute/);
  });

  it('runs a subscription over graphql-ws on the page\'s own origin and shows a live event', async () => {
    const sockets: string[] = [];
    page.on('websocket', (ws) => sockets.push(ws.url()));
    await page.locator('.graphiql-execute-button').click();
    await page.getByRole('menuitem', { name: 'CallEvents' }).click();
    await expect.poll(() => sockets.length, { timeout: 15_000 }).toBe(1);
    // Exotel's status callback for a call, posted to the gateway's webhook while the page listens.
    const sidPrefix = 'ca0graphiql0browser0test';
    let n = 0;
    const urls = callbackUrlsOf(server.gateway);
    await expect
      .poll(
        async () => {
          // Until the page's subscription is registered, an event would go by unseen: post again, for
          // another call (a repeat of the same status is stored but not published again).
          if ((await editorText(page, '.result-window')).includes(sidPrefix)) return true;
          await post(urls.callStatus, callCallback(`${sidPrefix}${String(n++).padStart(8, '0')}`, 'in-progress'));
          return (await editorText(page, '.result-window')).includes(sidPrefix);
        },
        { timeout: 15_000, interval: 500 },
      )
      .toBe(true);
    expect(await editorText(page, '.result-window')).toContain('"status": "IN_PROGRESS"');
    expect(sockets).toEqual([`${server.url.replace(/^http/, 'ws')}/graphql`]);
    expect(failures).toEqual([]);
    expect(problems).toEqual([]);
    if (process.env.GRAPHIQL_SCREENSHOT) await page.screenshot({ path: process.env.GRAPHIQL_SCREENSHOT });
  });
});

describe.skipIf(!haveChromium)('GraphiQL against a production gateway with client keys', () => {
  const SECRET = 'graphiql-browser-secret-0123456789';
  let gateway: TestGateway;
  let browser: Browser;
  let page: Page;
  const problems: string[] = [];

  beforeAll(async () => {
    execFileSync(process.execPath, ['scripts/build-graphiql.mjs'], { cwd: root, stdio: 'pipe' });
    gateway = await startGateway({ NODE_ENV: 'production', INTROSPECTION: 'authenticated', GATEWAY_API_KEYS: `browser:${SECRET}:read+write` }, {}, {}, { autoStop: false });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
    page = await browser.newPage();
    // A step whose element never comes fails with what it waited for, before the test's own timeout.
    page.setDefaultTimeout(15_000);
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    await page.goto(`${gateway.url}/graphiql`, { waitUntil: 'load' });
    await page.locator('.graphiql-query-editor .monaco-editor').waitFor({ state: 'visible' });
  });
  afterAll(async () => {
    await browser?.close();
    await gateway?.stop();
  });

  const executeButton = () => page.locator('.graphiql-execute-button');
  /**
   * Runs one of the pre-filled operations from the run button's menu. GraphiQL reads the operations out of
   * the editor 100 ms after it changes (typing, switching tabs), and until then the button acts on the
   * previous ones: wait for it to offer this tab's menu.
   */
  const run = async (operation: string) => {
    await expect.poll(() => executeButton().getAttribute('aria-haspopup')).toBe('menu');
    await executeButton().click();
    await page.getByRole('menuitem', { name: operation }).click();
  };
  /** GraphiQL's saved tabs (it writes them half a second after a change; a reload reopens what was saved). */
  const savedTabs = () =>
    page.evaluate(() => {
      const saved = JSON.parse(localStorage.getItem('graphiql:tabState') ?? 'null') as { tabs: Array<{ title: string }>; activeTabIndex: number } | null;
      return saved && { titles: saved.tabs.map((t) => t.title), active: saved.activeTabIndex };
    });

  it('loads the schema once the key is entered (INTROSPECTION=authenticated), and runs a query with it', async () => {
    // Pasting a whole GATEWAY_API_KEYS entry works too: the secret part is what goes after Bearer.
    await page.getByTestId('api-key').fill(`browser:${SECRET}:read+write`);
    await page.getByTestId('remember-key').check();
    await page.locator('.graphiql-sidebar button[aria-label="Show Documentation Explorer"]').click();
    const docs = page.locator('.graphiql-doc-explorer');
    await docs.getByText('Query', { exact: true }).first().click();
    await docs.getByText('Read operations. Lookups answer from the cache').waitFor({ state: 'visible', timeout: 15_000 });
    await run('Gateway');
    await expect.poll(() => editorText(page, '.result-window'), { timeout: 15_000 }).toContain('"mode": "SIMULATOR"');
  });

  it('sends the key from a new tab too', async () => {
    await page.locator('.graphiql-tab-add').click();
    await expect.poll(() => page.locator('.graphiql-tab').count()).toBe(2);
    await expect.poll(() => editorText(page, '.graphiql-query-editor')).toBe('');
    await page.locator('.graphiql-query-editor .monaco-editor').first().click();
    // Pasted as one input: typed key by key, Monaco's auto-closing and suggestions race the keystrokes.
    await page.keyboard.insertText('query Limits { rateLimit { limitPerMinute } }');
    // The tab takes the operation's name once GraphiQL has read it; the run button then runs it (not the
    // first tab's operations, which it offers until then).
    await page.locator('.graphiql-tab-active', { hasText: 'Limits' }).waitFor();
    await expect.poll(() => executeButton().getAttribute('aria-haspopup')).toBeNull();
    await executeButton().click();
    await expect.poll(() => editorText(page, '.result-window'), { timeout: 15_000 }).toContain('"limitPerMinute": 200');
    expect(await page.getByTestId('api-key').inputValue()).toBe(`browser:${SECRET}:read+write`);
  });

  it('keeps the key across a reload', async () => {
    // Back to the first tab, with the pre-filled operations, and reload once GraphiQL has saved that.
    await page.locator('.graphiql-tab', { hasText: 'Gateway' }).click();
    await expect.poll(savedTabs).toEqual({ titles: ['Gateway', 'Limits'], active: 0 });
    await page.reload({ waitUntil: 'load' });
    await page.locator('.graphiql-query-editor .monaco-editor').waitFor({ state: 'visible' });
    expect(await page.locator('.graphiql-tab-active').innerText()).toBe('Gateway');
    expect(await page.getByTestId('api-key').inputValue()).toBe(`browser:${SECRET}:read+write`);
    expect(await page.getByTestId('remember-key').isChecked()).toBe(true);
    await run('Gateway');
    await expect.poll(() => editorText(page, '.result-window'), { timeout: 15_000 }).toContain('"mode": "SIMULATOR"');
  });

  it('shows a socket the gateway closes (4403, wrong key) as an error in the result pane, not a spinner', async () => {
    await page.getByTestId('api-key').fill('not-the-key-000000000000');
    await run('CallEvents');
    await expect.poll(() => editorText(page, '.result-window'), { timeout: 15_000 }).toContain('4403');
    // The whole message, not the part of the long line Monaco renders.
    const texts = await page.evaluate(() => {
      const monaco = (globalThis as { __MONACO?: { editor: { getModels(): Array<{ getValue(): string }> } } }).__MONACO;
      return (monaco?.editor.getModels() ?? []).map((m) => m.getValue());
    });
    expect(texts.find((t) => t.includes('"errors"') && t.includes('4403'))).toContain('the API key is missing or wrong');
    // The run has ended: the button offers to run again rather than to stop.
    await expect.poll(() => executeButton().getAttribute('aria-label')).toMatch(/^Execute/);
    expect(problems).toEqual([]);
  });
});
