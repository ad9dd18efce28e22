/**
 * The simulator's own answers against the recorded Exotel shapes (test/fixtures/exotel/): the same keys
 * and the same JSON types, field by field. The client is tested against the same fixtures
 * (test/exotel/fixtures.test.ts), so the two cannot drift apart in the same wrong direction.
 *
 * Rule per field: a key of the fixture must be in the simulator's answer and vice versa (except the
 * few extras listed per shape); where the fixture has a value, the simulator's must have the same JSON type
 * (a number stays a number, "null" stays a string); where the fixture has null, any value is fine.
 */
import { describe, expect, it } from 'vitest';
import { loadFixtures, type Fixture } from '../helpers/exotel-fixtures.js';
import type { Fault } from '../../src/simulator/faults.js';
import type { Simulator } from '../../src/simulator/index.js';
import { api, startSim, type SimResponse } from './helpers.js';

const fixtures = loadFixtures();

type JsonType = 'null' | 'array' | 'object' | 'string' | 'number' | 'boolean';
const jsonType = (v: unknown): JsonType => (v === null ? 'null' : Array.isArray(v) ? 'array' : (typeof v as JsonType));

/** Every difference between the simulator's answer and the fixture, as readable lines. */
function shapeDifferences(sim: unknown, fixture: unknown, extras: ReadonlySet<string>, path = '$'): string[] {
  if (fixture === null) return [];
  const want = jsonType(fixture);
  const got = jsonType(sim);
  if (want !== got) return [`${path}: ${got} (${JSON.stringify(sim)?.slice(0, 60)}), recorded ${want}`];
  if (want === 'array') {
    const f = fixture as unknown[];
    const s = sim as unknown[];
    if (f.length === 0 || s.length === 0) return [];
    // Item by item when the lengths agree (bulk answers mix messages and errors), else each against the first.
    return s.flatMap((item, i) => shapeDifferences(item, f.length === s.length ? f[i] : f[0], extras, `${path}[${i}]`));
  }
  if (want === 'object') {
    const f = fixture as Record<string, unknown>;
    const s = sim as Record<string, unknown>;
    const out: string[] = [];
    for (const key of Object.keys(f)) {
      if (!(key in s)) out.push(`${path}.${key}: missing, recorded ${jsonType(f[key])}`);
      else out.push(...shapeDifferences(s[key], f[key], extras, `${path}.${key}`));
    }
    for (const key of Object.keys(s)) if (!(key in f) && !extras.has(key)) out.push(`${path}.${key}: not in the recorded shape`);
    return out;
  }
  return [];
}

/** The tags inside <RestException> of an XML error body. */
const xmlTags = (xml: string): string[] => [...(/<RestException>([\s\S]*)<\/RestException>/.exec(xml)?.[1] ?? '').matchAll(/<(\w+)>/g)].map((m) => m[1]!).sort();

const BUSY_TO = '09812345671'; // simulator rule: last digit 1 → busy
const CONNECT = { From: '09912345670', To: '09812345670', CallerId: '08039591111' };
const SMS = { From: 'WEBDEV', To: '09812345670', Body: 'Hello' };
const BULK = { From: 'WEBDEV', 'Messages[0][To]': '09812345670', 'Messages[0][Body]': 'one', 'Messages[1][To]': '12', 'Messages[1][Body]': 'two' };

async function finishedCall(sim: Simulator, to: string): Promise<string> {
  const sid = (await api(sim, 'Calls/connect.json', { form: { ...CONNECT, To: to } })).body.Call.Sid as string;
  await sim.calls.waitFor(sid, (c) => c.Duration !== null);
  return sid;
}

/** How to get the simulator's answer of the same kind as each fixture, and the extra keys it may add. */
const cases: Record<string, { extras?: string[]; answer(sim: Simulator): Promise<SimResponse> }> = {
  'call-details-numbers': { extras: ['CustomField'], answer: async (sim) => api(sim, `Calls/${await finishedCall(sim, BUSY_TO)}.json`) },
  'call-details-strings': {
    extras: ['CustomField'],
    answer: async (sim) => {
      const sid = await finishedCall(sim, CONNECT.To);
      sim.faults.inject({ kind: 'answer-form', form: 'call-strings' });
      return api(sim, `Calls/${sid}.json?details=true`);
    },
  },
  'call-connect-in-progress': { extras: ['CustomField'], answer: (sim) => api(sim, 'Calls/connect.json', { form: CONNECT }) },
  'sms-send': { extras: ['CustomId', 'SmsUnits'], answer: (sim) => api(sim, 'Sms/send.json', { form: SMS }) },
  'sms-legacy-null': {
    extras: ['CustomId', 'SmsUnits'],
    answer: (sim) => {
      sim.faults.inject({ kind: 'answer-form', form: 'legacy-sms' });
      return api(sim, 'Sms/send.json', { form: SMS });
    },
  },
  'sms-bulk-long': { extras: ['CustomId', 'SmsUnits'], answer: (sim) => api(sim, 'Sms/bulksend.json', { form: BULK }) },
  'sms-bulk-short': {
    answer: (sim) => {
      sim.faults.inject({ kind: 'answer-form', form: 'bulk-sms-short' });
      return api(sim, 'Sms/bulksend.json', { form: { ...BULK, 'Messages[1][To]': '09812345671' } });
    },
  },
  'exophones-v1': { answer: (sim) => api(sim, 'IncomingPhoneNumbers.json') },
  'exophones-v2beta-page': { extras: ['total'], answer: (sim) => api(sim, `/v2_beta/Accounts/${sim.accountSid}/IncomingPhoneNumbers`) },
  'error-json-code-35008': {
    answer: (sim) => {
      sim.faults.inject({ kind: 'exotel-error', status: 503, code: 35008, endpoint: 'calls.connect' });
      return api(sim, 'Calls/connect.json', { form: CONNECT });
    },
  },
  'error-json-code-340030': {
    answer: (sim) => {
      sim.faults.inject({ kind: 'exotel-error', status: 403, code: 340030, endpoint: 'sms.send' });
      return api(sim, 'Sms/send.json', { form: SMS });
    },
  },
  'error-xml': {
    answer: (sim) => {
      sim.faults.inject({ kind: 'exotel-error', status: 400, code: 40210, format: 'xml', endpoint: 'sms.send' } satisfies Fault);
      return api(sim, 'Sms/send.json', { form: SMS });
    },
  },
};

describe("the simulator's answers have the recorded shapes", () => {
  it('has a case for every fixture', () => {
    expect(Object.keys(cases).sort()).toEqual([...fixtures.keys()].sort());
  });

  for (const [name, { extras = [], answer }] of Object.entries(cases)) {
    it(`answers like ${name}`, async () => {
      const fixture: Fixture = fixtures.get(name)!;
      const sim = await startSim();
      const res = await answer(sim);
      expect(res.status).toBe(fixture.status);
      if (typeof fixture.body === 'string') {
        expect(res.headers.get('content-type')).toMatch(/xml/);
        expect(xmlTags(String(res.body))).toEqual(xmlTags(fixture.body));
        return;
      }
      expect(shapeDifferences(res.body, fixture.body, new Set(extras))).toEqual([]);
    });
  }

  it('notices a drift: a number sent as a string, a missing key, an extra key', () => {
    const recorded = { Call: { Sid: 'a', Duration: 11, RecordingUrl: '' } };
    expect(shapeDifferences({ Call: { Sid: 'a', Duration: '11', RecordingUrl: '', Extra: 1 } }, recorded, new Set())).toEqual([
      '$.Call.Duration: string ("11"), recorded number',
      '$.Call.Extra: not in the recorded shape',
    ]);
    expect(shapeDifferences({ Call: { Sid: 'a', Duration: 11 } }, recorded, new Set())).toEqual(['$.Call.RecordingUrl: missing, recorded string']);
  });
});
