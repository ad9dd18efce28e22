/**
 * Bodies that are well-formed callbacks are legitimately stored, so every generated status is invalid.
 *
 * A small seeded fuzz loop: random and malformed bodies, in every content type, to /graphql
 * and to every webhook route (with the right token, so the parsers run, and with a wrong one). The
 * server never answers 5xx, never crashes, stores and publishes nothing, and still answers a normal
 * query afterwards.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { callbackUrlsOf } from '../live/webhook-helpers.js';

/** mulberry32: deterministic, so a failure replays. */
function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEED = 20261125;
const ROUNDS = 60;

function generators(rand: () => number) {
  const pick = <T,>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
  const bytes = (n: number) => new Blob([new Uint8Array(Array.from({ length: n }, () => Math.floor(rand() * 256)))]);
  const text = (n: number) => Array.from({ length: n }, () => String.fromCharCode(32 + Math.floor(rand() * 95))).join('');
  const deep = (n: number): unknown => (n === 0 ? 1 : { a: [deep(n - 1)] });
  // The Passthru route needs nothing but a Sid-shaped CallSid, so no generated body carries a usable one.
  const noSid = [null, '', [], {}, deep(3)];
  const values = [null, true, 0, -1, 1e308, '', '{', '}', '\u0000', '\ud800', [], {}, 'x'.repeat(5000), deep(30)];
  const jsonBodies = [
    () => text(1 + Math.floor(rand() * 200)),
    () => JSON.stringify({ query: pick(values), variables: pick(values), operationName: pick(values), extensions: pick(values) }),
    () => JSON.stringify({ query: `{ ${text(40)} }` }),
    () => JSON.stringify({ query: '{ call(sid: $x) { sid } }', variables: { x: pick(values) } }),
    () => JSON.stringify({ query: 'query($s: ID!) { call(sid: $s) { sid } }', variables: { s: pick(values) } }),
    () => JSON.stringify([pick(values), pick(values)]),
    () => JSON.stringify([]),
    () => JSON.stringify(pick(values)),
    () => JSON.stringify({ query: 'mutation { sendSms(input: { from: 1, to: [], body: null }) { sms { sid } } }' }),
    () => JSON.stringify({ query: 'subscription { incomingCalls { sid } }' }),
    () => JSON.stringify({ query: '{ __typename }', extensions: { persistedQuery: { version: 1, sha256Hash: text(64) } } }),
    () => '{"query":"{ exophones { sid } }"'.slice(0, Math.floor(rand() * 30)),
    () => JSON.stringify({ CallSid: pick(noSid), Status: pick(values), Legs: pick(values), DateUpdated: pick(values) }),
    () => JSON.stringify({ CallSid: pick(noSid), SmsSid: pick(noSid), Status: pick(['bogus', '', 'COMPLETED!', 'in progress']), DateUpdated: text(19) }),
  ];
  const bodies: Array<() => { body: string | Blob | URLSearchParams; type: string | undefined }> = [
    () => ({ body: pick(jsonBodies)(), type: 'application/json' }),
    () => ({ body: pick(jsonBodies)(), type: pick(['text/plain', 'application/graphql', undefined, 'application/json; charset=latin1', 'application/json; charset=utf-16']) }),
    () => ({ body: bytes(1 + Math.floor(rand() * 500)), type: pick(['application/json', 'application/octet-stream', 'multipart/form-data; boundary=xyz', 'application/x-www-form-urlencoded']) }),
    () => ({ body: `${text(20).replace(/CallSid|SmsSid/gi, '')}=${text(20)}&CallSid=&Status=${text(5)}&${'a[b][c][d]='.repeat(50)}`, type: 'application/x-www-form-urlencoded' }),
    () => ({ body: `--xyz\r\nContent-Disposition: form-data; name="${text(5)}"\r\n\r\n${text(30)}\r\n${pick(['--xyz--', '', '--xy'])}`, type: 'multipart/form-data; boundary=xyz' }),
    () => ({ body: new URLSearchParams({ CallSid: '', SmsSid: '', Status: pick(['x', 'done', '0']), DateUpdated: pick(['2026-13-45 99:99:99', text(10), '']) }), type: undefined }),
  ];
  return { pick, next: () => pick(bodies)(), method: () => pick(['POST', 'POST', 'POST', 'GET', 'PUT']) };
}

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway({ LIVE_POLL_INTERVAL_MS: '60000', MAX_BODY_BYTES: '8192' });
});

describe('fuzzing /graphql and every webhook route', () => {
  it(`${ROUNDS} rounds × every route: no 5xx, no crash, nothing stored or published`, async () => {
    const urls = callbackUrlsOf(gw);
    const wrongToken = (u: string) => u.replace(/\/webhooks\/exotel\/[^/]+\//, '/webhooks/exotel/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/');
    const targets = [`${gw.url}/graphql`, urls.callStatus, urls.smsStatus, urls.incomingCall, wrongToken(urls.callStatus), `${gw.url}/webhooks/exotel/x/call-status`];
    const g = generators(prng(SEED));
    const published: unknown[] = [];
    const unsubscribe = gw.storage.events.subscribe((e) => published.push(e));
    const statuses = new Map<string, number>();
    const failures: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      for (const target of targets) {
        const { body, type } = g.next();
        const method = g.method();
        const res = await fetch(method === 'GET' ? `${target}?query=${encodeURIComponent(String(body).slice(0, 200))}` : target, {
          method,
          headers: { ...(type ? { 'content-type': type } : {}), 'apollo-require-preflight': '1' },
          ...(method === 'GET' ? {} : { body }),
        });
        const text = await res.text();
        statuses.set(String(res.status), (statuses.get(String(res.status)) ?? 0) + 1);
        if (res.status >= 500) failures.push(`round ${round} ${method} ${target.replace(/exotel\/[^/]+/, 'exotel/:token')} ${type} → ${res.status} ${text.slice(0, 200)}`);
        // /graphql always answers in GraphQL's shape.
        if (target.endsWith('/graphql') && method !== 'PUT' && res.status !== 404) expect(() => JSON.parse(text), text).not.toThrow();
      }
    }
    unsubscribe();
    expect(failures).toEqual([]);
    // Only 4xx (and 200s for /graphql answers with errors): the fuzz did reach the parsers.
    expect([...statuses.keys()].every((s) => s.startsWith('4') || s === '200')).toBe(true);
    expect(statuses.get('400')).toBeGreaterThan(0);
    expect(published).toEqual([]);
    expect(await gw.storage.events.lastId()).toBeFalsy();

    // Still healthy, and a normal query works.
    expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
    const ok = await gw.gql('{ exophones { sid } rateLimit { limitPerMinute } }');
    expect(ok.body.errors).toBeUndefined();
    expect(ok.body.data.rateLimit.limitPerMinute).toBe(200);
    expect(await gw.storage.events.lastId()).toBeFalsy();
  });
});
