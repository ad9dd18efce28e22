/**
 * Graceful shutdown of a real gateway process: SIGTERM in the middle of a stream of webhooks.
 * Every callback answered 200 must be in the event log afterwards — the log lives in Redis under a
 * unique key prefix, so it is read after the process has gone. The process exits 0 within its bound,
 * a graphql-ws client is told 1001 Going Away, and the log records the shutdown.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCallbackUrls } from '../../src/live/callback-urls.js';
import { createSimulator, type Simulator } from '../../src/simulator/index.js';
import { createStorage } from '../../src/storage/index.js';
import type { Storage } from '../../src/storage/types.js';
import { spawnGateway, stopAllProcesses, type GatewayProcess } from '../helpers/processes.js';
import { redisOrSkip, testPrefix, TEST_REDIS_URL } from '../helpers/redis.js';
import { callCallback, post } from '../live/webhook-helpers.js';
import { ackedSocket } from './ws-raw.js';

const WEBHOOK_SECRET = 'shutdown-webhook-secret-0123456789';
const CLIENT_KEY = 'shutdown-client-key-0123456789';
const WORKERS = 6;
/** Callbacks answered 200 before SIGTERM is sent (the stream keeps going after it). */
const BEFORE_SIGTERM = 60;

describe.skipIf(!(await redisOrSkip()))('SIGTERM during a stream of webhooks', () => {
  let sim: Simulator;
  let gw: GatewayProcess;
  let reader: Storage | undefined;
  const prefix = testPrefix('shutdown');

  beforeAll(async () => {
    sim = await createSimulator({ port: 0, host: '127.0.0.1', seed: false, log: () => undefined });
    gw = await spawnGateway('shutdown', {
      EXOTEL_ACCOUNT_SID: sim.accountSid,
      EXOTEL_API_KEY: sim.apiKey,
      EXOTEL_API_TOKEN: sim.apiToken,
      EXOTEL_BASE_URL: sim.url,
      WEBHOOK_SECRET,
      GATEWAY_API_KEYS: `ops:${CLIENT_KEY}:read+write`,
      REDIS_URL: TEST_REDIS_URL,
      REDIS_KEY_PREFIX: prefix,
      LIVE_POLL_INTERVAL_MS: '60000',
      LOG_LEVEL: 'info',
    });
  });
  afterAll(async () => {
    await stopAllProcesses();
    await reader?.close();
    await sim?.stop();
  });

  it('loses no callback that was answered 200, closes sockets with 1001 and exits 0', async () => {
    const urls = createCallbackUrls({ publicUrl: gw.url, webhookSecret: WEBHOOK_SECRET, accountSid: sim.accountSid });
    const socket = await ackedSocket(gw.wsUrl, `Bearer ${CLIENT_KEY}`);

    const answered: string[] = [];
    const refusedOrCut: string[] = [];
    let otherStatuses = 0;
    let seq = 0;
    let resolveEnough!: () => void;
    const enough = new Promise<void>((r) => (resolveEnough = r));
    const exited = gw.exited;
    let gone = false;
    void exited.then(() => (gone = true));

    const worker = async (w: number) => {
      while (!gone) {
        const sid = `sd${w}x${++seq}x${process.pid}`;
        try {
          const res = await post(urls.callStatus, callCallback(sid, 'completed'));
          if (res.status === 200) answered.push(sid);
          else otherStatuses++;
        } catch {
          // Connection refused or cut mid-request: not answered, so Exotel would retry. Not a loss.
          refusedOrCut.push(sid);
          if (refusedOrCut.length > 200) return;
        }
        if (answered.length >= BEFORE_SIGTERM) resolveEnough();
      }
    };
    const workers = Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));

    await enough;
    const atSignal = answered.length;
    const signalledAt = Date.now();
    gw.child.kill('SIGTERM');
    const info = await exited;
    const tookMs = Date.now() - signalledAt;
    await workers;

    expect(info).toEqual({ code: 0, signal: null });
    // main.ts bounds shutdown (shutdownTimeoutMs, about 19 s here); a healthy drain is far quicker.
    expect(tookMs).toBeLessThan(15_000);
    expect((await socket.closed).code).toBe(1001);
    expect(otherStatuses).toBe(0);
    // Requests in flight at the signal were drained, not dropped: answers kept arriving after it.
    expect(answered.length).toBeGreaterThan(atSignal);

    const logs = gw.logs();
    expect(logs.some((l) => l.msg === 'shutting down' && l.signal === 'SIGTERM')).toBe(true);
    expect(logs.some((l) => l.msg === 'gateway stopped')).toBe(true);

    // Every 200 is in the log, read from Redis after the process is gone.
    reader = await createStorage({ redisUrl: TEST_REDIS_URL, eventRetentionHours: 1, eventRetentionCount: 100_000 }, undefined, { keyPrefix: prefix });
    const missing: string[] = [];
    for (const sid of answered) {
      const history = await reader.events.callHistory(sim.accountSid, sid);
      if (!history.some((e) => e.status === 'COMPLETED' && e.source === 'WEBHOOK')) missing.push(sid);
    }
    // (What was refused or cut was never answered 200, so Exotel would retry it: not a loss.)
    expect({ answered: answered.length, missing }).toEqual({ answered: answered.length, missing: [] });
  });
});
