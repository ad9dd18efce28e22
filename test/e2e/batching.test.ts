/**
 * DataLoader batching (docs/rate-budget.md): however a query asks for calls, the loads of one request become bulk
 * call-details requests of at most EXOTEL_BULK_BATCH_SIZE Sids, and finished calls are then served from
 * the cache. Counted at the simulator.
 */
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Simulator } from '../../src/simulator/index.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';

let gw: TestGateway;
let sim: Simulator;

beforeAll(async () => {
  gw = await startGateway();
  sim = gw.simulator!;
});
beforeEach(() => sim.resetRequests());

const finished = () => sim.calls.list().filter((c) => ['completed', 'busy', 'no-answer', 'failed', 'canceled'].includes(c.Status));
const BY_SID = 'query($sids: [ID!]!) { callsBySid(sids: $sids) { sid status } }';

describe('calls are batched per request', () => {
  it('one request for 250 distinct calls makes exactly 3 bulk requests, and repeating it makes none', async () => {
    const sids = finished().slice(0, 250).map((c) => c.Sid);
    expect(new Set(sids).size).toBe(250);
    const first = await gw.gql(BY_SID, { sids });
    expect(first.body.errors).toBeUndefined();
    expect(first.body.data.callsBySid.map((c: { sid: string }) => c.sid)).toEqual(sids);
    expect(sim.countRequests({ endpoint: 'calls.list' })).toBe(3);
    expect(sim.countRequests()).toBe(3);
    // Every bulk request carried at most 100 Sids (Exotel's limit).
    for (const r of sim.requests) expect(String(r.query.Sid ?? '').split(',').length).toBeLessThanOrEqual(100);

    sim.resetRequests();
    const misses = gw.storage.cache.stats.misses;
    const again = await gw.gql(BY_SID, { sids });
    expect(again.body.data.callsBySid.map((c: { sid: string }) => c.sid)).toEqual(sids);
    expect(sim.countRequests()).toBe(0);
    expect(gw.storage.cache.stats.misses).toBe(misses);
  });

  it('50 aliases of `call` make 1 upstream request', async () => {
    const sids = finished().slice(250, 300).map((c) => c.Sid);
    expect(sids).toHaveLength(50);
    const query = `{ ${sids.map((sid, i) => `c${i}: call(sid: "${sid}") { sid }`).join(' ')} }`;
    const { body } = await gw.gql(query);
    expect(body.errors).toBeUndefined();
    sids.forEach((sid, i) => expect(body.data[`c${i}`].sid).toBe(sid));
    expect(sim.countRequests()).toBe(1);
    expect(sim.countRequests({ endpoint: 'calls.list' })).toBe(1);
  });

  it('collapses duplicates, keeps order and gives null for unknown Sids without failing the rest', async () => {
    // A fresh gateway so nothing is cached yet.
    const cold = await startGateway();
    const csim = cold.simulator!;
    const known = csim.calls.list().filter((c) => c.Status === 'completed').slice(0, 3).map((c) => c.Sid);
    const unknown = ['00000000000000000000000000000001', '00000000000000000000000000000002'];
    const sids = [known[0]!, unknown[0]!, known[1]!, known[0]!, unknown[1]!, known[2]!, known[1]!];
    csim.resetRequests();
    const { body } = await cold.gql(BY_SID, { sids });
    expect(body.errors).toBeUndefined();
    expect(body.data.callsBySid.map((c: { sid: string } | null) => c?.sid ?? null)).toEqual([known[0], null, known[1], known[0], null, known[2], known[1]]);
    // One bulk request for the 5 distinct Sids; the 2 absent from it are looked up singly (they could be live).
    expect(csim.countRequests({ endpoint: 'calls.list' })).toBe(1);
    expect(csim.requests.find((r) => r.endpoint === 'calls.list')!.query.Sid!.split(',').sort()).toEqual([...new Set(sids)].sort());
    expect(csim.countRequests({ endpoint: 'calls.get' })).toBe(2);
  });

  it('remembers for a minute that Exotel has no such call, so repeating a wrong Sid spends no budget', async () => {
    const cold = await startGateway();
    const csim = cold.simulator!;
    const wrong = ['00000000000000000000000000000071', '00000000000000000000000000000072'];
    csim.resetRequests();
    const first = await cold.gql(BY_SID, { sids: wrong });
    expect(first.body.data.callsBySid).toEqual([null, null]);
    expect(csim.countRequests()).toBe(3); // one bulk request, then one single lookup each
    csim.resetRequests();
    const again = await cold.gql(BY_SID, { sids: wrong });
    expect(again.body.data.callsBySid).toEqual([null, null]);
    expect(csim.countRequests()).toBe(0);
    // A status callback for such a Sid proves it exists: the next lookup asks Exotel again.
    const { callbackUrlsOf, callCallback, post } = await import('../live/webhook-helpers.js');
    expect((await post(callbackUrlsOf(cold).callStatus, callCallback(wrong[0]!, 'completed'))).status).toBe(200);
    csim.resetRequests();
    const after = await cold.gql(BY_SID, { sids: [wrong[0]!] });
    expect(after.body.data.callsBySid[0]?.sid).toBe(wrong[0]);
  });

  it('forgets "no such call" when a callback for the Sid arrives, even one too thin to cache the call from', async () => {
    const gwx = await startGateway();
    const xsim = gwx.simulator!;
    const sid = xsim.calls.list().find((c) => c.Status === 'completed')!.Sid;
    // Exotel said "no such call" a moment before its records caught up (a lookup racing the call's creation).
    const { createEntityCache } = await import('../../src/cache/entities.js');
    await createEntityCache(gwx.storage.cache, gwx.exotel.accountSid).putUnknownCall(sid);
    xsim.resetRequests();
    expect((await gwx.gql(BY_SID, { sids: [sid] })).body.data.callsBySid).toEqual([null]);
    expect(xsim.countRequests()).toBe(0);
    // Exotel's four default fields only: nothing to cache the call from, yet it proves the call exists.
    const { callbackUrlsOf, post } = await import('../live/webhook-helpers.js');
    const thin = { CallSid: sid, Status: 'completed', DateUpdated: '2026-01-15 10:00:00', RecordingUrl: '' };
    expect((await post(callbackUrlsOf(gwx).callStatus, thin)).status).toBe(200);
    const after = await gwx.gql(BY_SID, { sids: [sid] });
    expect(after.body.data.callsBySid[0]).toMatchObject({ sid });
    expect(xsim.countRequests()).toBeGreaterThan(0);
  });

  it('fetches live calls singly, since Exotel bulk listing omits them', async () => {
    // Held ringing: a call that ended before the bulk request would be in its answer.
    sim.faults.holdCalls('ringing', { to: '+919800000020' });
    const live = sim.calls.create({ from: '+919800000010', to: '+919800000020', callerId: '08039591111' });
    const done = finished()[0]!.Sid;
    sim.resetRequests();
    const { body } = await gw.gql(BY_SID, { sids: [live.Sid, done] });
    expect(body.errors).toBeUndefined();
    expect(body.data.callsBySid[0].sid).toBe(live.Sid);
    expect(['QUEUED', 'RINGING', 'IN_PROGRESS', 'COMPLETED']).toContain(body.data.callsBySid[0].status);
    // `done` was cached by the first test, so the live call was the only Sid left: one single lookup, no bulk request.
    expect(sim.countRequests({ endpoint: 'calls.get' })).toBe(1);
    expect(sim.countRequests()).toBe(1);
  });

  it('honours EXOTEL_BULK_BATCH_SIZE', async () => {
    const small = await startGateway({ EXOTEL_BULK_BATCH_SIZE: '20' });
    const ssim = small.simulator!;
    const sids = ssim.calls.list().filter((c) => c.Status === 'completed').slice(0, 45).map((c) => c.Sid);
    ssim.resetRequests();
    const { body } = await small.gql(BY_SID, { sids });
    expect(body.errors).toBeUndefined();
    expect(body.data.callsBySid).toHaveLength(45);
    expect(ssim.countRequests({ endpoint: 'calls.list' })).toBe(3);
  });

  it('batches nested CallEvent.call loads with the top-level ones', async () => {
    // A fresh gateway: nothing cached, so every load goes upstream.
    const cold = await startGateway();
    const [a, b, c] = cold.simulator!.calls.list().filter((x) => x.Status === 'completed').slice(0, 3);
    for (const call of [a!, b!]) {
      await cold.storage.events.append({
        kind: 'call', accountSid: cold.simulator!.accountSid, callSid: call.Sid, status: 'COMPLETED', at: '2026-11-20T10:00:00+05:30', source: 'WEBHOOK', forward: true,
      });
    }
    cold.simulator!.resetRequests();
    const { body } = await cold.gql(`query($a: ID!, $b: ID!, $c: ID!) {
      a: call(sid: $a) { sid events { call { sid } } }
      b: call(sid: $b) { sid events { call { sid } } }
      c: call(sid: $c) { sid } }`, { a: a!.Sid, b: b!.Sid, c: c!.Sid });
    expect(body.errors).toBeUndefined();
    expect(body.data.a.events[0].call.sid).toBe(a!.Sid);
    expect(body.data.b.events[0].call.sid).toBe(b!.Sid);
    // The top-level loads make one bulk request; the nested loads hit the request's loader cache.
    expect(cold.simulator!.countRequests()).toBe(1);
  });
});

describe('cold lookups of concurrent requests share upstream requests', () => {
  it('200 concurrent `call(sid)` requests make a handful of bulk requests, each answered with its own call', async () => {
    // Generous windows so every request of the burst joins an open batch even on a loaded machine.
    const cold = await startGateway({ EXOTEL_COALESCE_MS: '50', EXOTEL_COALESCE_MAX_MS: '1000' });
    const csim = cold.simulator!;
    const sids = csim.calls.list().filter((c) => ['completed', 'busy', 'no-answer', 'failed', 'canceled'].includes(c.Status)).slice(0, 200).map((c) => c.Sid);
    expect(sids).toHaveLength(200);
    csim.resetRequests();
    const answers = await Promise.all(sids.map((sid) => cold.gql('query($sid: ID!) { call(sid: $sid) { sid status } }', { sid })));
    answers.forEach((a, i) => {
      expect(a.body.errors).toBeUndefined();
      expect(a.body.data.call.sid).toBe(sids[i]);
    });
    // One request per 100 Sids would be 2; each request alone would be 200. (A batch that got one Sid only is a
    // single lookup: one request either way.)
    expect(csim.countRequests()).toBeGreaterThanOrEqual(2);
    expect(csim.countRequests()).toBeLessThanOrEqual(6);
  });

  it('two requests for the same live call in flight at once make one single lookup', async () => {
    const cold = await startGateway({ EXOTEL_COALESCE_MS: '20' });
    const csim = cold.simulator!;
    // Held ringing (a number ending in 1 is busy, so it never gets to in-progress): out of Exotel's bulk
    // listing however slow this machine is.
    csim.faults.holdCalls('ringing', { to: '+919800000021' });
    const live = csim.calls.create({ from: '+919800000011', to: '+919800000021', callerId: '08039591111' });
    csim.resetRequests();
    const [a, b] = await Promise.all([1, 2].map(() => cold.gql('query($sid: ID!) { call(sid: $sid) { sid } }', { sid: live.Sid })));
    expect(a!.body.data.call.sid).toBe(live.Sid);
    expect(b!.body.data.call.sid).toBe(live.Sid);
    // One Sid in the shared batch: a single lookup, which also answers for a live call.
    expect(csim.countRequests({ endpoint: 'calls.get' })).toBe(1);
    expect(csim.countRequests()).toBe(1);
  });
});
