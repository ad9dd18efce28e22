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
