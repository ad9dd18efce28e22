import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, GatewayError } from '../../src/errors.js';
import { createIdempotency, fingerprint, stableStringify, type IdempotencyLogger } from '../../src/graphql/idempotency.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import type { Storage } from '../../src/storage/types.js';

const storages: Storage[] = [];
afterEach(async () => {
  for (const s of storages.splice(0)) await s.close();
});
function store() {
  const s = createMemoryStorage();
  storages.push(s);
  return s.idempotency;
}
const spec = (key: string | undefined, input: unknown = { to: '+919812345670' }) => ({ operation: 'sendSms', key, scope: 'acct:client', input, checkHint: 'the SMS list' });

describe('stableStringify and fingerprint', () => {
  it('ignore key order and undefined fields', () => {
    expect(stableStringify({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: undefined } })).toBe('{"a":{"d":[1,{"x":1,"y":2}]},"b":1}');
    expect(fingerprint('op', { a: 1, b: 2 })).toBe(fingerprint('op', { b: 2, a: 1 }));
    expect(fingerprint('op', { a: 1 })).not.toBe(fingerprint('other', { a: 1 }));
  });
});

describe('createIdempotency', () => {
  it('runs without a key every time', async () => {
    const idem = createIdempotency(store());
    let sent = 0;
    await idem.run(spec(undefined), async () => ++sent);
    await idem.run(spec(undefined), async () => ++sent);
    expect(sent).toBe(2);
  });

  it('replays the stored result and does not send again', async () => {
    const idem = createIdempotency(store());
    let sent = 0;
    const a = await idem.run(spec('k'), async () => ({ sid: `s${++sent}` }));
    const b = await idem.run(spec('k'), async () => ({ sid: `s${++sent}` }));
    expect(a).toEqual({ result: { sid: 's1' }, replayed: false });
    expect(b).toEqual({ result: { sid: 's1' }, replayed: true });
    expect(sent).toBe(1);
  });

  it('keeps scopes apart', async () => {
    const idem = createIdempotency(store());
    await idem.run(spec('k'), async () => 1);
    const other = await idem.run({ ...spec('k'), scope: 'acct:other-client' }, async () => 2);
    expect(other).toEqual({ result: 2, replayed: false });
  });

  it('answers IDEMPOTENCY_CONFLICT for another input', async () => {
    const idem = createIdempotency(store());
    await idem.run(spec('k'), async () => 1);
    await expect(idem.run(spec('k', { to: '+919812345671' }), async () => 2)).rejects.toMatchObject({ code: ErrorCode.IDEMPOTENCY_CONFLICT });
  });

  it('records OUTCOME_UNKNOWN (and unexpected errors) so a retry is never sent', async () => {
    const idem = createIdempotency(store());
    let sent = 0;
    const unknown = async () => {
      sent += 1;
      throw new GatewayError(ErrorCode.OUTCOME_UNKNOWN, 'timeout');
    };
    await expect(idem.run(spec('k'), unknown)).rejects.toMatchObject({ code: ErrorCode.OUTCOME_UNKNOWN });
    await expect(idem.run(spec('k'), unknown)).rejects.toMatchObject({ code: ErrorCode.OUTCOME_UNKNOWN, message: expect.stringMatching(/the SMS list/) });
    expect(sent).toBe(1);
    await expect(idem.run(spec('bug'), async () => Promise.reject(new Error('bug')))).rejects.toThrow('bug');
    await expect(idem.run(spec('bug'), async () => 1)).rejects.toMatchObject({ code: ErrorCode.OUTCOME_UNKNOWN });
  });

  it('frees the key after an error that certainly did not reach Exotel', async () => {
    const idem = createIdempotency(store());
    await expect(idem.run(spec('k'), async () => Promise.reject(new GatewayError(ErrorCode.RATE_LIMITED, 'later', { retryAfterSeconds: 3 })))).rejects.toMatchObject({
      code: ErrorCode.RATE_LIMITED,
    });
    expect(await idem.run(spec('k'), async () => 'sent')).toEqual({ result: 'sent', replayed: false });
  });

  it('waits for a pending first request, then answers its result', async () => {
    const idem = createIdempotency(store(), { pollIntervalMs: 5 });
    let release!: (v: string) => void;
    const first = idem.run(spec('k'), () => new Promise<string>((r) => (release = r)));
    await new Promise((r) => setImmediate(r));
    const second = idem.run(spec('k'), async () => 'second');
    release('first');
    expect(await first).toEqual({ result: 'first', replayed: false });
    expect(await second).toEqual({ result: 'first', replayed: true });
  });

  it('answers IDEMPOTENCY_CONFLICT while pending after the wait, and OUTCOME_UNKNOWN once the pending record is stale', async () => {
    // The store stamps startedAt with the wall clock; this clock runs ahead of it on demand.
    let aheadMs = 0;
    const idem = createIdempotency(store(), { pendingWaitMs: 0, pendingStaleMs: 60_000, now: () => Date.now() + aheadMs });
    const first = idem.run(spec('k'), () => new Promise<string>(() => {}));
    void first;
    await new Promise((r) => setImmediate(r));
    await expect(idem.run(spec('k'), async () => 'x')).rejects.toMatchObject({ code: ErrorCode.IDEMPOTENCY_CONFLICT, message: expect.stringMatching(/in progress/) });
    aheadMs = 60_001;
    await expect(idem.run(spec('k'), async () => 'x')).rejects.toMatchObject({ code: ErrorCode.OUTCOME_UNKNOWN });
  });
});

describe('what counts as "certainly not sent"', () => {
  it('treats an unreadable answer (UPSTREAM_ERROR without an HTTP status) as maybe sent', async () => {
    const idem = createIdempotency(store());
    await expect(idem.run(spec('k'), async () => Promise.reject(new GatewayError(ErrorCode.UPSTREAM_ERROR, 'not JSON')))).rejects.toThrow('not JSON');
    await expect(idem.run(spec('k'), async () => 'again')).rejects.toMatchObject({ code: ErrorCode.OUTCOME_UNKNOWN });
  });

  it('treats an Exotel refusal (UPSTREAM_ERROR with a 4xx) as not sent', async () => {
    const idem = createIdempotency(store());
    await expect(idem.run(spec('k'), async () => Promise.reject(new GatewayError(ErrorCode.UPSTREAM_ERROR, 'refused', { upstreamStatus: 403 })))).rejects.toThrow('refused');
    expect(await idem.run(spec('k'), async () => 'again')).toEqual({ result: 'again', replayed: false });
  });
});

describe('a record that storage does not write, in the log', () => {
  /** The memory store, with writes after begin failing as on a Redis that stopped answering. */
  function failingWrites() {
    const inner = store();
    const down = () => Promise.reject(new Error('Command timed out'));
    return { ...inner, finish: down, abandon: down };
  }
  function recorder() {
    const lines: Array<[string, string]> = [];
    const at = (level: string) => (_fields: object, msg: string) => void lines.push([level, msg]);
    return { lines, logger: { debug: at('debug'), info: at('info'), warn: at('warn') } as unknown as IdempotencyLogger };
  }

  it('says whether anything was sent: refused before sending at info, sent (or maybe sent) and not recorded at warn', async () => {
    const idem = createIdempotency(failingWrites());
    const { lines, logger } = recorder();
    expect(await idem.run({ ...spec('sent'), logger }, async () => ({ sid: 'SM1' }))).toEqual({ result: { sid: 'SM1' }, replayed: false });
    await expect(idem.run({ ...spec('maybe'), logger }, async () => Promise.reject(new GatewayError(ErrorCode.OUTCOME_UNKNOWN, 'timed out')))).rejects.toThrow();
    await expect(idem.run({ ...spec('refused'), logger }, async () => Promise.reject(new GatewayError(ErrorCode.RATE_LIMITED, 'busy')))).rejects.toThrow();
    const down = createIdempotency({ ...failingWrites(), begin: () => Promise.reject(new Error('Connection is closed.')) });
    await expect(down.run({ ...spec('unchecked'), logger }, async () => 'never')).rejects.toMatchObject({ code: ErrorCode.STORAGE_UNAVAILABLE });
    expect(lines).toEqual([
      ['warn', expect.stringMatching(/^mutation sent to Exotel but its idempotency record not confirmed written/)],
      ['warn', expect.stringMatching(/^idempotency record of a mutation that may have reached Exotel not confirmed written/)],
      ['warn', expect.stringMatching(/^idempotency key not confirmed freed after a mutation that was not sent/)],
      ['info', 'mutation refused with STORAGE_UNAVAILABLE: its idempotencyKey could not be checked, so nothing was sent to Exotel'],
    ]);
  });
});
