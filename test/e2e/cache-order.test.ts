/**
 * The cached Call never goes back to an earlier status. Writers of the cache race: an Exotel answer asked
 * for before a call's terminal callback may arrive after it, and two replicas may store a call's answered
 * and terminal callbacks at once, their cache writes landing in either order. The real gateway (memory
 * storage, then Redis), a real simulator behind a gate that holds Exotel's answer, real callbacks.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { ExotelApi } from '../../src/exotel/types.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { deleteKeys, redisOrSkip, testPrefix, TEST_REDIS_URL } from '../helpers/redis.js';
import { callbackUrlsOf, callCallback, post } from '../live/webhook-helpers.js';

const CONNECT = `mutation($input: ConnectCallInput!) { connectCall(input: $input) { call { sid } } }`;
const CALL = `query($sid: ID!) { call(sid: $sid) { status conversationDurationSeconds events { status } } }`;

/** Exotel's single call lookups wait at the gate until released; everything else passes. */
function gated(exotel: ExotelApi) {
  let open: () => void = () => undefined;
  let entered: () => void = () => undefined;
  let closed = false;
  const reached = new Promise<void>((resolve) => (entered = resolve));
  const api: ExotelApi = Object.create(exotel);
  api.getCall = async (sid, options) => {
    const answer = await exotel.getCall(sid, options);
    if (closed) {
      entered();
      await new Promise<void>((resolve) => (open = resolve));
    }
    return answer;
  };
  return {
    api,
    close: () => void (closed = true),
    /** Resolves once a lookup holds its answer at the gate. */
    reached,
    release: () => {
      closed = false;
      open();
    },
  };
}

/** The call as `gw` reads it, once the lookup in flight has written its answer to the cache (bounded wait). */
async function settledCall(gw: TestGateway, sid: string, expected: string) {
  let call: { status: string; events: Array<{ status: string }> } | undefined;
  for (let i = 0; i < 50; i++) {
    call = (await gw.gql(CALL, { sid })).body.data?.call;
    if (call?.status === expected) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return call;
}

async function scenario(env: Record<string, string>) {
  // The simulator's gateway places the call and holds it in progress; the gateway under test asks it through the gate.
  const upstream = await startGateway({ LIVE_POLL_INTERVAL_MS: '3600000' });
  upstream.simulator!.faults.holdCalls('in-progress');
  upstream.simulator!.faults.dropCallbacks('all');
  const gate = gated(upstream.exotel);
  const gw = await startGateway({ LIVE_POLL_INTERVAL_MS: '3600000', RECONCILE_GRACE_SECONDS: '3600', WEBHOOK_SECRET: upstream.config.webhookSecret, ...env }, {}, { exotel: gate.api });
  const { body } = await upstream.gql(CONNECT, { input: { from: '09876543210', to: '+919812345670', callerId: '08039591111' } });
  const sid = body.data.connectCall.call.sid as string;
  for (let i = 0; i < 100 && upstream.simulator!.calls.get(sid)?.Status !== 'in-progress'; i++) await new Promise((resolve) => setTimeout(resolve, 10));

  // A query asks Exotel, which answers "in-progress"; the answer is held while the call ends.
  gate.close();
  const asked = gw.gql(CALL, { sid });
  await gate.reached;
  expect((await post(callbackUrlsOf(gw).callStatus, callCallback(sid, 'completed', { ConversationDuration: '7' }))).status).toBe(200);
  gate.release();
  expect((await asked).body.data.call.status).toBe('IN_PROGRESS');

  // The late answer did not take the cached call back: it reads as its history does.
  const call = await settledCall(gw, sid, 'COMPLETED');
  expect(call).toEqual({ status: 'COMPLETED', conversationDurationSeconds: 7, events: [{ status: 'COMPLETED' }] });
}

const redisUp = await redisOrSkip();

describe('a late Exotel answer does not take the cached call back to an earlier status', () => {
  it('in memory', async () => {
    await scenario({});
  });

  describe.skipIf(!redisUp)('', () => {
    const prefix = testPrefix('cache-order');
    afterAll(() => deleteKeys(prefix));
    it('on Redis', async () => {
      await scenario({ REDIS_URL: TEST_REDIS_URL, REDIS_KEY_PREFIX: prefix });
    });
  });
});
