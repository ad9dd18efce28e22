/**
 * smsStatusChanged at the seam between its snapshot and the live events: the cached SMS is written only
 * after its status is stored (and published), so a subscriber can arrive in between. The cache write is
 * held there on purpose (a storage wrapper, the one part that is not real: that moment cannot otherwise be
 * chosen); everything else is the real gateway, a real webhook POST and a real graphql-ws client, on
 * memory and on Redis.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { createRedisStorage } from '../../src/storage/redis.js';
import type { Cache, EventRecord, Storage } from '../../src/storage/types.js';
import { startGateway } from '../helpers/gateway.js';
import { deleteKeys, redisOrSkip, testPrefix, TEST_REDIS_URL } from '../helpers/redis.js';
import { callbackUrlsOf, post } from './webhook-helpers.js';
import { record, wsClient } from './ws-helpers.js';

const redisUp = await redisOrSkip();
const prefix = testPrefix('sms-seam');
afterAll(() => (redisUp ? deleteKeys(prefix) : undefined));

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** The storage with its cache writes of one key held, once armed, until released. */
function holdingCacheWrites(storage: Storage) {
  let armed: { key: (k: string) => boolean; reached: ReturnType<typeof deferred>; release: ReturnType<typeof deferred> } | undefined;
  const cache: Cache = {
    get: (key) => storage.cache.get(key),
    getMany: (keys) => storage.cache.getMany(keys),
    delete: (key) => storage.cache.delete(key),
    get stats() {
      return storage.cache.stats;
    },
    async set(key, value, ttlMs) {
      await held(key);
      return storage.cache.set(key, value, ttlMs);
    },
    async setUnlessNewer(key, value, ttlMs, guard) {
      await held(key);
      return storage.cache.setUnlessNewer(key, value, ttlMs, guard);
    },
  };
  const held = async (key: string) => {
    const hold = armed;
    if (hold?.key(key)) {
      armed = undefined;
      hold.reached.resolve();
      await hold.release.promise;
    }
  };
  return {
    storage: new Proxy(storage, { get: (target, p) => (p === 'cache' ? cache : Reflect.get(target, p)) }),
    hold(key: (k: string) => boolean) {
      const hold = { key, reached: deferred(), release: deferred() };
      armed = hold;
      return { reached: hold.reached.promise, release: hold.release.resolve };
    },
  };
}

const backends: Array<[string, boolean, () => Promise<Storage>]> = [
  ['memory', true, async () => createMemoryStorage()],
  ['Redis', redisUp, () => createRedisStorage({ redisUrl: TEST_REDIS_URL, keyPrefix: prefix })],
];

describe.each(backends)('smsStatusChanged on %s', (_name, enabled, makeStorage) => {
  it.skipIf(!enabled)('starts from the stored status when its subscriber reads the cache between the status being stored and the cache write, and ends', async () => {
    const base = await makeStorage();
    const wrapped = holdingCacheWrites(base);
    const gw = await startGateway({ SIMULATOR_TIME_SCALE: '1' }, {}, { storage: wrapped.storage }, { autoStop: false });
    const client = wsClient(gw.wsUrl);
    try {
      // Only the callback this test posts tells the gateway anything after the send.
      gw.simulator!.faults.dropCallbacks('all', { kind: 'sms' });
      const { body } = await gw.gql(`mutation($input: SendSmsInput!) { sendSms(input: $input) { sms { sid status } } }`, {
        input: { from: '08039591111', to: '9812345670', body: 'Your OTP is 1234' },
      });
      expect(body.errors).toBeUndefined();
      const { sid, status: sentAs } = body.data.sendSms.sms as { sid: string; status: string };
      expect(sentAs).not.toBe('DELIVERED');

      // This process has the DELIVERED event (on Redis: read back from the stream) while the cache still says `sentAs`.
      const delivered = deferred();
      const off = base.events.subscribe((e: EventRecord) => {
        if (e.kind === 'sms' && e.smsSid === sid && e.status === 'DELIVERED') delivered.resolve();
      });
      const hold = wrapped.hold((key) => key.endsWith(`:sms:${sid}`));
      const callback = post(callbackUrlsOf(gw).smsStatus, { SmsSid: sid, Status: 'delivered', DetailedStatus: 'DELIVERED_TO_HANDSET', DetailedStatusCode: '20005' });
      await Promise.all([hold.reached, delivered.promise]);
      off();

      const sub = record<{ sid: string; status: string; detailedStatus: string | null }>(client, `subscription($sid: ID!) { smsStatusChanged(sid: $sid) { sid status detailedStatus } }`, { sid }, 'smsStatusChanged');
      await sub.until((items) => items.length > 0);
      hold.release();
      expect(await callback).toEqual({ status: 200, text: 'OK' });
      // Nothing else will come for this SMS: a stream that started from `sentAs` would wait for ever.
      const ended = await Promise.race([sub.done, new Promise<'waiting'>((r) => setTimeout(() => r('waiting'), 2_000))]);
      expect(ended).toEqual([{ sid, status: 'DELIVERED', detailedStatus: 'DELIVERED_TO_HANDSET' }]);
    } finally {
      await client.dispose();
      await gw.stop();
      await base.close();
    }
  }, 20_000);
});
