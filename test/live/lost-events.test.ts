/**
 * Replica B cut off from Redis's event stream (its reader's connection stalled by a proxy, as a network
 * partition does) while replica A takes callbacks past EVENT_RETENTION_COUNT: the events after B's last one
 * are trimmed before B reads them. B's subscribers are told, each stream ending with STORAGE_UNAVAILABLE
 * (reason EVENTS_LOST) once what came before the gap is delivered, instead of going on as if nothing was
 * missed; resubscribing works. Two real gateways on the shared Redis, real graphql-ws clients, real callbacks.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { startGateway } from '../helpers/gateway.js';
import { deleteKeys, redisOrSkip, testPrefix, TEST_REDIS_URL } from '../helpers/redis.js';
import { startStallProxy } from '../helpers/stall-proxy.js';
import { callbackUrlsOf, callCallback, post } from './webhook-helpers.js';
import { record, wsClient } from './ws-helpers.js';

const prefix = testPrefix('lost-events-gw');
const newSid = () => randomBytes(16).toString('hex');

describe.skipIf(!(await redisOrSkip()))('a replica that fell behind the event log past its count cap', () => {
  afterAll(() => deleteKeys(prefix));

  it("ends its subscribers' streams with EVENTS_LOST after what came before the gap; they can subscribe again", async () => {
    const proxy = await startStallProxy(TEST_REDIS_URL);
    afterAll(() => proxy.close());
    const env = { REDIS_KEY_PREFIX: prefix, EVENT_RETENTION_COUNT: '1000', LIVE_POLL_INTERVAL_MS: '3600000', RECONCILE_GRACE_SECONDS: '3600' };
    const a = await startGateway({ ...env, REDIS_URL: TEST_REDIS_URL });
    const b = await startGateway({ ...env, REDIS_URL: proxy.url, WEBHOOK_SECRET: a.config.webhookSecret });
    const toA = (sid: string, status: string) => post(callbackUrlsOf(a).callStatus, callCallback(sid, status));
    const client = wsClient(b.wsUrl);

    const going = newSid();
    expect((await toA(going, 'in-progress')).status).toBe(200);
    const all = record<{ id: string; callSid: string }>(client, 'subscription { callEvents { id callSid } }', {}, 'callEvents');
    const one = record<{ status: string }>(client, 'subscription($sid: ID!) { callStatusChanged(sid: $sid) { status } }', { sid: going }, 'callStatusChanged');
    await one.until((items) => items.length === 1);
    // callEvents is live once an event reaches it.
    while (all.items.length === 0) {
      expect((await toA(newSid(), 'completed')).status).toBe(200);
      await all.until((items) => items.length > 0, 500).catch(() => undefined);
    }

    // B's reader sends its next read, and nothing after it reaches Redis.
    proxy.stallAfter((sent) => /xread/i.test(sent));
    const before = newSid();
    expect((await toA(before, 'completed')).status).toBe(200);
    await all.until((items) => items.some((e) => e.callSid === before));
    for (let i = 0; i < 30; i++) await Promise.all(Array.from({ length: 50 }, () => toA(newSid(), 'completed')));
    expect((await toA(going, 'completed')).status).toBe(200);
    proxy.release();

    await expect(all.done).rejects.toBeDefined();
    await expect(one.done).rejects.toBeDefined();
    for (const sub of [all, one]) expect(sub.error).toMatchObject([{ extensions: { code: 'STORAGE_UNAVAILABLE', reason: 'EVENTS_LOST', retryAfterSeconds: 1 } }]);
    expect(all.items.some((e) => e.callSid === before)).toBe(true);

    // Subscribing again: the call's current state; a replay from the last id B gave is refused as expired.
    const again = record<{ status: string }>(client, 'subscription($sid: ID!) { callStatusChanged(sid: $sid) { status } }', { sid: going }, 'callStatusChanged');
    expect((await again.done).map((e) => e.status)).toEqual(['COMPLETED']);
    const resumed = record(client, 'subscription($after: ID) { callEvents(after: $after) { id } }', { after: all.items.at(-1)!.id }, 'callEvents');
    await expect(resumed.done).rejects.toBeDefined();
    expect(resumed.error).toMatchObject([{ extensions: { code: 'BAD_USER_INPUT', reason: 'EVENTS_EXPIRED' } }]);
    await client.dispose();
  }, 60_000);
});
