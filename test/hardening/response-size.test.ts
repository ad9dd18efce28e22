/**
 * MAX_RESPONSE_BYTES: an answer larger than the limit is withheld, on HTTP and graphql-ws, with an error
 * that names the limit; answers within it are untouched.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { ackedSocket } from './ws-raw.js';

const FIELDS = 'sid parentCallSid from to phoneNumberSid status direction startTime endTime durationSeconds price recordingUrl answeredBy customField dateCreated dateUpdated';
const BY_SID = `query($sids: [ID!]!) { callsBySid(sids: $sids) { ${FIELDS} } }`;
const WITHHELD = { message: 'The answer was withheld: it is larger than MAX_RESPONSE_BYTES allows (4096 bytes). Ask for fewer items or fields, or split the request.', extensions: { code: 'BAD_USER_INPUT', reason: 'MAX_RESPONSE_BYTES' } };

const BULK = `mutation($input: SendBulkSmsInput!) { sendBulkSms(input: $input) { messages { sid from to body status dateCreated } errors { index code } } }`;
/** A bulk SMS whose answer is well over 4,096 bytes: 40 messages with 60-character bodies. */
const bulkInput = (tag: string) => ({
  from: '08039591111',
  messages: Array.from({ length: 40 }, (_, i) => ({ to: `98123${String(45_000 + i).padStart(5, '0')}`, body: `${tag} message ${i} `.padEnd(60, '.') })),
});

let gw: TestGateway;
let sids: string[];
beforeAll(async () => {
  gw = await startGateway({ MAX_RESPONSE_BYTES: '4096', LIVE_POLL_INTERVAL_MS: '60000' });
  sids = gw.simulator!.calls.list().filter((c) => c.Status === 'completed').slice(0, 40).map((c) => c.Sid);
});

describe('MAX_RESPONSE_BYTES', () => {
  it('HTTP: an answer over the limit → 400 naming the limit; a small one is answered', async () => {
    const small = await gw.gql(BY_SID, { sids: sids.slice(0, 2) });
    expect(small.status).toBe(200);
    expect(small.body.data.callsBySid).toHaveLength(2);
    const big = await gw.gql(BY_SID, { sids });
    expect(big.status).toBe(400);
    expect(big.body).toEqual({ errors: [WITHHELD] });
    expect(gw.logs.filter((l) => l.msg === 'answer over MAX_RESPONSE_BYTES withheld')).toEqual([expect.objectContaining({ level: 'info', maxResponseBytes: 4096 })]);
  });

  it('HTTP: a batch counts as one answer', async () => {
    const op = { query: BY_SID, variables: { sids: sids.slice(0, 8) } };
    const res = await fetch(`${gw.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([op, op, op]) });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ errors: [WITHHELD] });
  });

  it("HTTP: a mutation's answer is sent whatever its size, since it is the only account of what was done", async () => {
    const before = gw.simulator!.countRequests({ endpoint: 'sms.bulksend' });
    const res = await gw.gql(BULK, { input: bulkInput('http') });
    expect(res.status).toBe(200);
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data.sendBulkSms.messages).toHaveLength(40);
    expect(JSON.stringify(res.body).length).toBeGreaterThan(4096);
    expect(gw.simulator!.countRequests({ endpoint: 'sms.bulksend' })).toBe(before + 1);
  });

  it("graphql-ws: a mutation's answer is sent whatever its size", async () => {
    const s = await ackedSocket(gw.wsUrl);
    try {
      s.send({ type: 'subscribe', id: 'bulk', payload: { query: BULK, variables: { input: bulkInput('ws') } } });
      const answer = (await s.next((m) => m.id === 'bulk')) as { payload: { data?: { sendBulkSms: { messages: unknown[] } }; errors?: unknown } };
      expect(answer.payload.errors).toBeUndefined();
      expect(answer.payload.data?.sendBulkSms.messages).toHaveLength(40);
    } finally {
      s.ws.terminate();
    }
  });

  it('graphql-ws: the same error in place of the answer', async () => {
    const s = await ackedSocket(gw.wsUrl);
    try {
      s.send({ type: 'subscribe', id: 'big', payload: { query: BY_SID, variables: { sids } } });
      expect(await s.next((m) => m.id === 'big')).toEqual({ id: 'big', type: 'next', payload: { errors: [WITHHELD] } });
      s.send({ type: 'subscribe', id: 'small', payload: { query: BY_SID, variables: { sids: sids.slice(0, 1) } } });
      expect(await s.next((m) => m.id === 'small')).toMatchObject({ type: 'next', payload: { data: { callsBySid: [{ sid: sids[0] }] } } });
    } finally {
      s.ws.terminate();
    }
  });
});
