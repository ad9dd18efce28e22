/** The live pipeline on Redis storage (streams event log, Lua call state, lease, OpenItems ZSETs). */
import { afterAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { callStatusRank } from '../../src/exotel/types.js';
import { startGateway } from '../helpers/gateway.js';
import { redisOrSkip, testPrefix, TEST_REDIS_URL } from '../helpers/redis.js';
import { record, wsClient } from './ws-helpers.js';

const redisUp = await redisOrSkip();

describe.skipIf(!redisUp)('live status on Redis', () => {
  const prefix = testPrefix('live');
  afterAll(async () => {
    const redis = new Redis(TEST_REDIS_URL);
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });

  it('follows a call from SNAPSHOT to COMPLETED, and recovers a dropped terminal callback', async () => {
    const gw = await startGateway({
      REDIS_URL: TEST_REDIS_URL,
      REDIS_KEY_PREFIX: prefix,
      SIMULATOR_TIME_SCALE: '0.1',
      LIVE_POLL_INTERVAL_MS: '50',
      RECONCILE_GRACE_SECONDS: '0',
    });
    const client = wsClient(gw.wsUrl);
    try {
      const connect = async (extra: Record<string, unknown> = {}) => {
        const { body } = await gw.gql(`mutation($input: ConnectCallInput!) { connectCall(input: $input) { call { sid } } }`, {
          input: { from: '09876543210', to: '+919812345670', callerId: '08039591111', ...extra },
        });
        expect(body.errors).toBeUndefined();
        return body.data.connectCall.call.sid as string;
      };
      // Held at ringing until the poller has shown it, so the phase cannot slip by between two polls.
      gw.simulator!.faults.holdCalls('ringing');
      const sid = await connect();
      const watch = record<{ status: 'QUEUED' | 'RINGING' | 'IN_PROGRESS' | 'COMPLETED'; source: string }>(client, `subscription($sid: ID!) { callStatusChanged(sid: $sid) { status source } }`, { sid }, 'callStatusChanged');
      await watch.until((items) => items.some((e) => e.status === 'RINGING'));
      gw.simulator!.faults.releaseCalls({ at: 'ringing' });
      const events = await watch.done;
      expect(events[0]!.source).toBe('SNAPSHOT');
      expect(events.map((e) => e.status)).toEqual(expect.arrayContaining(['RINGING', 'IN_PROGRESS', 'COMPLETED']));
      for (let i = 1; i < events.length; i++) expect(callStatusRank(events[i]!.status)).toBeGreaterThan(callStatusRank(events[i - 1]!.status));

      gw.simulator!.faults.dropCallbacks('all', { kind: 'call', eventType: 'terminal' });
      const sub = record<{ callSid: string; status: string; source: string }>(client, `subscription($after: ID) { callEvents(after: $after) { callSid status source } }`, { after: (await gw.storage.events.lastId()) ?? '0-0' }, 'callEvents');
      const dropped = await connect({ timeLimit: 5, timeOut: 5 });
      const all = await sub.until((items) => items.some((e) => e.callSid === dropped && e.status === 'COMPLETED'));
      expect(all.find((e) => e.callSid === dropped && e.status === 'COMPLETED')!.source).toBe('POLL');
    } finally {
      await client.dispose();
      await gw.stop();
    }
  }, 20_000);
});
