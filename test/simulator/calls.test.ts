/** Call lifecycle, status callbacks (form, multipart, JSON) and bulk call details of the simulator. */
import { describe, expect, it } from 'vitest';
import { CALL_OUTCOME_BY_LAST_DIGIT, callOutcomeFor, CALL_TIMELINE_SECONDS } from '../../src/simulator/index.js';
import { api, startReceiver, startSim } from './helpers.js';

const TERMINAL = new Set(['completed', 'busy', 'no-answer', 'failed', 'canceled']);
const base = { From: '09876543210', CallerId: '08039591111' };

/** A To number whose last digit gives `outcome` under the documented rule. */
function toFor(outcome: 'completed' | 'busy' | 'no-answer' | 'failed'): string {
  const digit = Object.keys(CALL_OUTCOME_BY_LAST_DIGIT).find((d) => CALL_OUTCOME_BY_LAST_DIGIT[d] === outcome) ?? '0';
  return `0912345678${digit}`;
}

describe('simulator call lifecycle', () => {
  it.each(['completed', 'busy', 'no-answer', 'failed'] as const)('reaches %s by the last-digit rule', async (outcome) => {
    const sim = await startSim();
    const to = toFor(outcome);
    expect(callOutcomeFor(to)).toBe(outcome);
    // Subscribed before connecting: the first transition may come before the answer is read.
    const changes: Array<{ sid: string; status: string }> = [];
    sim.calls.onChange((c) => changes.push({ sid: c.Sid, status: c.Status }));
    const res = await api(sim, 'Calls/connect.json', { form: { ...base, To: to, TimeOut: '5' } });
    expect(res.status).toBe(200);
    const sid: string = res.body.Call.Sid;
    // Like real Exotel Sids: 32 characters, the last one past hex.
    expect(sid).toMatch(/^[0-9a-f]{31}[g-z]$/);
    // Like Exotel, connect answers the new call as in-progress; its details still go through every phase.
    expect(res.body.Call).toMatchObject({ Status: 'in-progress', To: to, From: base.From, PhoneNumberSid: base.CallerId, Direction: 'outbound-api', Duration: null, Price: null, EndTime: null });
    const done = await sim.calls.waitFor(sid, (c) => c.Duration !== null);
    const seen = changes.filter((c) => c.sid === sid).map((c) => c.status).filter((st, i, all) => all[i - 1] !== st);
    expect(done.Status).toBe(outcome);
    expect(seen[0]).toBe('ringing');
    if (outcome === 'completed') expect(seen).toEqual(['ringing', 'in-progress', 'completed']);
    else expect(seen).not.toContain('in-progress');

    const details = await api(sim, `Calls/${sid}.json?details=true`);
    expect(details.status).toBe(200);
    const call = details.body.Call;
    expect(call.Status).toBe(outcome);
    // Exotel says "human" on every ended call, busy and unanswered ones too.
    expect(call.AnsweredBy).toBe('human');
    expect(call.DateCreated).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    expect(call.EndTime).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    // Real call details carry Duration and Price as JSON numbers.
    expect(typeof call.Duration).toBe('number');
    expect(typeof call.Price).toBe('number');
    expect(call.Details.Legs).toHaveLength(2);
    expect(call.Details.Leg2Status).toBe(outcome);
    expect(call.Details.Legs[1].Leg).toMatchObject({ Id: 2, Status: outcome });
    if (outcome === 'completed') {
      expect(call.Details.ConversationDuration).toBe(CALL_TIMELINE_SECONDS.talk);
      expect(Number(call.Duration)).toBeGreaterThan(0);
    } else expect(call.Details.ConversationDuration).toBe(0);
  });

  it('ends a completed call at TimeLimit and fills Duration only after the end', async () => {
    const sim = await startSim({ timeScale: 0.02 });
    const res = await api(sim, 'Calls/connect.json', { form: { ...base, To: toFor('completed'), TimeLimit: '2' } });
    const sid: string = res.body.Call.Sid;
    const ended = await sim.calls.waitFor(sid, (c) => TERMINAL.has(c.Status));
    expect(ended.Duration).toBeNull();
    expect((await api(sim, `Calls/${sid}.json`)).body.Call.Duration).toBeNull();
    const final = await sim.calls.waitFor(sid, (c) => c.Duration !== null);
    expect(final.Details?.ConversationDuration).toBe(2);
  });

  it('connects a number to a flow (one leg, decided on From)', async () => {
    const sim = await startSim();
    const res = await api(sim, 'Calls/connect.json', {
      form: { From: '09876543211', CallerId: base.CallerId, Url: `http://my.exotel.com/${sim.accountSid}/exoml/start_voice/12345` },
    });
    expect(res.status).toBe(200);
    expect(res.body.Call.To).toBe('');
    const done = await sim.calls.waitFor(res.body.Call.Sid, (c) => c.Duration !== null);
    expect(done.Status).toBe('busy');
    expect(done.Details?.Legs).toHaveLength(1);
  });

  it('normalises numbers the way Exotel echoes them (0 + 10 digits)', async () => {
    const sim = await startSim();
    const res = await api(sim, 'Calls/connect.json', { form: { From: '+919876543210', To: '9123456780', CallerId: '+918039591111' } });
    expect(res.body.Call).toMatchObject({ From: '09876543210', To: '09123456780', PhoneNumberSid: '08039591111' });
  });
});

describe('simulator status callbacks', () => {
  it('posts only the terminal callback with the default four fields, form-urlencoded', async () => {
    const sim = await startSim();
    const rx = await startReceiver();
    const res = await api(sim, 'Calls/connect.json', { form: { ...base, To: toFor('completed'), StatusCallback: rx.url } });
    const sid = res.body.Call.Sid;
    const [cb] = await rx.waitFor(1);
    await sim.calls.waitFor(sid, (c) => c.Duration !== null);
    expect(rx.received).toHaveLength(1);
    expect(cb!.contentType).toBe('application/x-www-form-urlencoded');
    expect(Object.keys(cb!.fields).sort()).toEqual(['CallSid', 'DateUpdated', 'RecordingUrl', 'Status']);
    expect(cb!.fields).toMatchObject({ CallSid: sid, Status: 'completed', RecordingUrl: '' });
  });

  it('posts answered then terminal with every extended field when StatusCallbackEvents are given', async () => {
    const sim = await startSim();
    const rx = await startReceiver();
    const res = await api(sim, 'Calls/connect.json', {
      form: { ...base, To: toFor('completed'), StatusCallback: rx.url, 'StatusCallbackEvents[0]': 'terminal', 'StatusCallbackEvents[1]': 'answered', CustomField: 'order-42', Record: 'true' },
    });
    const sid = res.body.Call.Sid;
    const [answered, terminal] = await rx.waitFor(2);
    expect(answered!.fields).toMatchObject({ CallSid: sid, EventType: 'answered', Status: 'in-progress', CustomField: 'order-42', To: toFor('completed'), From: base.From, PhoneNumberSid: base.CallerId, Direction: 'outbound-api', CallType: 'trans' });
    expect(terminal!.fields).toMatchObject({ CallSid: sid, EventType: 'terminal', Status: 'completed', ConversationDuration: String(CALL_TIMELINE_SECONDS.talk) });
    for (const key of ['DateCreated', 'StartTime', 'EndTime', 'DateUpdated']) expect(terminal!.fields[key]).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    expect(terminal!.fields['Legs[0][Status]']).toBe('completed');
    expect(terminal!.fields['Legs[1][OnCallDuration]']).toBe(String(CALL_TIMELINE_SECONDS.talk));
    expect(terminal!.fields.RecordingUrl).toMatch(new RegExp(`/__sim/recordings/${sid}\\.mp3$`));
    const recording = await fetch(terminal!.fields.RecordingUrl);
    expect(recording.status).toBe(200);
    expect(recording.headers.get('content-type')).toBe('audio/mpeg');
    await recording.arrayBuffer();
  });

  it('posts JSON when StatusCallbackContentType=application/json, and no answered event for a busy call', async () => {
    const sim = await startSim();
    const rx = await startReceiver();
    const res = await api(sim, 'Calls/connect.json', {
      form: { ...base, To: toFor('busy'), StatusCallback: rx.url, 'StatusCallbackEvents[0]': 'terminal', 'StatusCallbackEvents[1]': 'answered', StatusCallbackContentType: 'application/json' },
    });
    await rx.waitFor(1);
    await sim.calls.waitFor(res.body.Call.Sid, (c) => c.Duration !== null);
    expect(rx.received).toHaveLength(1);
    const cb = rx.received[0]!;
    expect(cb.contentType).toBe('application/json');
    expect(cb.fields).toMatchObject({ CallSid: res.body.Call.Sid, EventType: 'terminal', Status: 'busy', ConversationDuration: 0 });
    expect(cb.fields.Legs).toEqual([{ OnCallDuration: 1, Status: 'completed' }, { OnCallDuration: 0, Status: 'busy' }]);
  });

  it('posts multipart/form-data when asked', async () => {
    const sim = await startSim();
    const rx = await startReceiver();
    await api(sim, 'Calls/connect.json', { form: { ...base, To: toFor('no-answer'), TimeOut: '3', StatusCallback: rx.url, StatusCallbackContentType: 'multipart/form-data' } });
    const [cb] = await rx.waitFor(1);
    expect(cb!.contentType).toMatch(/^multipart\/form-data; boundary=/);
    expect(cb!.fields.Status).toBe('no-answer');
  });

  it('retries at most twice when the receiver does not answer 2xx', async () => {
    const sim = await startSim();
    const rx = await startReceiver();
    rx.respond = 500;
    const res = await api(sim, 'Calls/connect.json', { form: { ...base, To: toFor('failed'), StatusCallback: rx.url } });
    await rx.waitFor(3);
    // Wait until the simulator has recorded the third (last) attempt before checking nothing more comes.
    await expect.poll(() => sim.callbacks.filter((c) => c.sid === res.body.Call.Sid).length).toBe(3);
    expect(sim.callbacks.map((c) => c.attempt)).toEqual([1, 2, 3]);
    expect(rx.received).toHaveLength(3);
  });

  it('retries when the receiver does not answer within the (scaled) 15 s', async () => {
    const sim = await startSim({ timeScale: 0.005 });
    const rx = await startReceiver();
    rx.respond = 'hang';
    await api(sim, 'Calls/connect.json', { form: { ...base, To: toFor('failed'), StatusCallback: rx.url } });
    await rx.waitFor(3);
    await expect.poll(() => sim.callbacks.length).toBe(3);
    expect(sim.callbacks.every((c) => c.outcome === 'timeout')).toBe(true);
  });
});

describe('simulator bulk call details', () => {
  it('returns seeded history with Metadata, never live calls, and pages with After', async () => {
    const sim = await startSim({ seedCalls: 120, timeScale: 1 });
    const live = await api(sim, 'Calls/connect.json', { form: { ...base, To: toFor('completed') } });
    const liveSid = live.body.Call.Sid;
    const seen = new Set<string>();
    let next: string | null = `/v1/Accounts/${sim.accountSid}/Calls.json?PageSize=50`;
    let pages = 0;
    while (next) {
      const page: { status: number; body: any } = await api(sim, next);
      expect(page.status).toBe(200);
      expect(page.body.Metadata).toMatchObject({ Total: 120, PageSize: 50 });
      for (const c of page.body.Calls) {
        expect(TERMINAL.has(c.Status)).toBe(true);
        expect(seen.has(c.Sid)).toBe(false);
        seen.add(c.Sid);
      }
      if (page.body.Metadata.NextPageUri) expect(page.body.Metadata.NextPageUri).toMatch(/[?&]After=/);
      next = page.body.Metadata.NextPageUri;
      pages++;
    }
    expect(pages).toBe(3);
    expect(seen.size).toBe(120);
    expect(seen.has(liveSid)).toBe(false);
    expect((await api(sim, `Calls.json?Sid=${liveSid}`)).body.Calls).toHaveLength(0);
    expect((await api(sim, `Calls/${liveSid}.json`)).body.Call.Status).toBe('queued');
  });

  it('sorts, pages back with Before, and filters by Sid, Status, Direction, To and DateCreated', async () => {
    const sim = await startSim({ seedCalls: 80 });
    const all = (await api(sim, 'Calls.json?PageSize=100&SortBy=DateCreated:asc')).body.Calls as any[];
    expect(all).toHaveLength(80);
    const times = all.map((c) => c.DateCreated);
    expect([...times].sort()).toEqual(times);

    const p1 = (await api(sim, 'Calls.json?PageSize=30')).body;
    const p2 = (await api(sim, p1.Metadata.NextPageUri)).body;
    expect(p1.Metadata.PrevPageUri).toBeNull();
    expect(p2.Metadata.PrevPageUri).toMatch(/Before=/);
    const back = (await api(sim, p2.Metadata.PrevPageUri)).body;
    expect(back.Calls.map((c: any) => c.Sid)).toEqual(p1.Calls.map((c: any) => c.Sid));

    const sids = all.slice(0, 3).map((c) => c.Sid);
    expect(((await api(sim, `Calls.json?Sid=${sids.join(',')}`)).body.Calls as any[]).map((c) => c.Sid).sort()).toEqual([...sids].sort());

    const busy = (await api(sim, 'Calls.json?Status=busy&PageSize=100')).body;
    expect(busy.Calls.length).toBeGreaterThan(0);
    expect(busy.Calls.every((c: any) => c.Status === 'busy')).toBe(true);
    expect(busy.Metadata.Total).toBe(all.filter((c) => c.Status === 'busy').length);

    const inbound = (await api(sim, 'Calls.json?Direction=inbound&PageSize=100')).body.Calls as any[];
    expect(inbound.length).toBe(all.filter((c) => c.Direction === 'inbound').length);

    const someTo = all[0].To;
    const byTo = (await api(sim, `Calls.json?To=${encodeURIComponent(someTo)}&PageSize=100`)).body.Calls as any[];
    expect(byTo.length).toBe(all.filter((c) => c.To === someTo).length);

    const [lo, hi] = [all[10].DateCreated, all[20].DateCreated];
    const range = (await api(sim, `Calls.json?PageSize=100&DateCreated=${encodeURIComponent(`gte:${lo};lte:${hi}`)}`)).body.Calls as any[];
    expect(range.length).toBe(all.filter((c) => c.DateCreated >= lo && c.DateCreated <= hi).length);
  });

  it('searches only the last 31 days without DateCreated, older calls with it', async () => {
    const sim = await startSim({ seed: false });
    const old = sim.calls.create({ from: '09876543210', to: '09123456780', status: 'completed', createdAt: Date.now() - 40 * 24 * 3600 * 1000 });
    const recent = sim.calls.create({ from: '09876543210', to: '09123456781', status: 'busy', createdAt: Date.now() - 2 * 24 * 3600 * 1000 });
    const plain = (await api(sim, 'Calls.json')).body.Calls.map((c: any) => c.Sid);
    expect(plain).toEqual([recent.Sid]);
    expect((await api(sim, `Calls.json?Sid=${old.Sid}`)).body.Calls).toHaveLength(0);
    const from = old.DateCreated.slice(0, 10);
    const ranged = await api(sim, `Calls.json?Sid=${old.Sid}&DateCreated=${encodeURIComponent(`gte:${from} 00:00:00;lte:${from} 23:59:59`)}`);
    expect(ranged.body.Calls.map((c: any) => c.Sid)).toEqual([old.Sid]);
  });

  it('includes Details when details=true and seeds deterministic, rule-abiding history', async () => {
    const a = await startSim({ seedCalls: 40 });
    const b = await startSim({ seedCalls: 40 });
    const la = (await api(a, 'Calls.json?PageSize=40&details=true')).body.Calls as any[];
    const lb = (await api(b, 'Calls.json?PageSize=40')).body.Calls as any[];
    expect(la.map((c) => c.Sid)).toEqual(lb.map((c) => c.Sid));
    expect(la.every((c) => /^[0-9a-z]{32}$/.test(c.Sid) && Array.isArray(c.Details.Legs))).toBe(true);
    expect(new Set(la.map((c) => c.Status)).size).toBeGreaterThan(1);
    for (const c of la.filter((c) => c.Direction !== 'inbound')) expect(c.Status).toBe(callOutcomeFor(c.To));
    // As real call details: "human" on every ended call, whatever its outcome.
    expect(la.filter((c) => c.AnsweredBy !== 'human').map((c) => [c.Status, c.AnsweredBy])).toEqual([]);
  });
});
