/**
 * Budget-aware batching (src/graphql/lookups.ts): with budget to spare a batch of cold lookups leaves
 * after a short window; when the window's budget is short, it stays open to fill so the few requests
 * left carry many Sids each. Real gateway, real HTTP, the simulator counting every upstream request.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../helpers/gateway.js';

const LIMIT = 20;
const CALL = 'query($sid: ID!) { call(sid: $sid) { sid status } }';
const NUMBER = 'query($n: String!) { numberMetadata(number: $n) { phoneNumber } }';

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway({
    EXOTEL_RATE_LIMIT_PER_MIN: String(LIMIT),
    // A long window, so nothing leaves it during the test: every count below is of one window.
    EXOTEL_RATE_WINDOW_MS: '600000',
    EXOTEL_RATE_QUEUE_MS: '4000',
    EXOTEL_BATCH_HOLD_MS: '1500',
    LIVE_POLL_INTERVAL_MS: '600000',
  });
});
afterAll(() => gw?.stop());

describe('budget-aware batching', () => {
  it('holds a batch open while the budget is short, so lookups arriving one by one share one bulk request', async () => {
    const sim = gw.simulator!;
    // Spend most of the window (well past half of it), one number lookup each.
    for (let i = 0; i < 14; i++) {
      const res = await gw.gql(NUMBER, { n: `+91981${String(2_000_000 + i * 7).padStart(7, '0')}` });
      expect(res.body.errors).toBeUndefined();
    }
    const sids = sim.calls
      .list()
      .filter((c) => ['completed', 'busy', 'no-answer', 'failed', 'canceled'].includes(c.Status))
      .slice(0, 30)
      .map((c) => c.Sid);
    expect(sids).toHaveLength(30);
    sim.resetRequests();

    // 30 separate requests, one cold call each, 20 ms apart: far more than the 6 requests left could carry
    // one by one.
    const answers = await Promise.all(
      sids.map(async (sid, i) => {
        await new Promise((r) => setTimeout(r, i * 20));
        return gw.gql(CALL, { sid });
      }),
    );
    for (const [i, res] of answers.entries()) {
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data.call.sid).toBe(sids[i]);
    }
    const upstream = sim.requests;
    expect(upstream.every((r) => r.status !== 429)).toBe(true);
    expect(upstream.length).toBeLessThanOrEqual(2);
    const rate = await gw.gql('{ rateLimit { remaining } }');
    expect(rate.body.data.rateLimit.remaining).toBeGreaterThanOrEqual(LIMIT - 14 - 2);
  });
});
