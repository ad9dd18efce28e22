/**
 * The background retries of Passthru requests answered 200 but not stored (src/live/incoming-retries.ts),
 * on their own, for what a real Redis cannot be made to do on cue: a store that never answers while many
 * requests wait on it, and a request added after stop(). test/scale/storage-outage-webhooks.test.ts runs
 * them on the real server against a redis-server that is stopped or stalled.
 */
import { describe, expect, it } from 'vitest';
import type { IncomingCallRequest } from '../../src/live/incoming.js';
import { createIncomingRetries, type IncomingRetryOptions } from '../../src/live/incoming-retries.js';
import { waitUntil } from '../helpers/processes.js';

function recordingLogger() {
  const lines: Array<{ level: string; msg: string; fields: Record<string, unknown> }> = [];
  const at = (level: string) => (fields: Record<string, unknown>, msg: string) => void lines.push({ level, msg, fields });
  return { lines, logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } as never };
}

const request = (callSid: string): IncomingCallRequest => ({ kind: 'incoming-request', callSid, status: 'IN_PROGRESS', at: '2025-01-10T10:00:00+05:30', fields: {}, unreadable: [] });

/** Retries over a store that never answers (a Redis stalled for good), counting what it was asked and what became of each. */
function stalled(options: Partial<IncomingRetryOptions> = {}) {
  const stores: string[] = [];
  const outcomes: string[] = [];
  const { lines, logger } = recordingLogger();
  const retries = createIncomingRetries({
    store: (r) => {
      stores.push(r.callSid);
      return new Promise(() => {});
    },
    logger,
    baseDelayMs: 1,
    maxDelayMs: 1,
    attempts: 100,
    maxPending: 1_000,
    stopTimeoutMs: 20,
    onRetry: (event) => outcomes.push(event.outcome === 'dropped' ? `dropped:${event.reason}` : event.outcome),
    ...options,
  });
  return { retries, stores, outcomes, lines };
}

/** Retries over a store that fails at once while `state.down` (a Redis that cannot be reached), and stores otherwise. */
function unreachable(options: Partial<IncomingRetryOptions> = {}) {
  const state = { down: true };
  const outcomes: string[] = [];
  const { lines, logger } = recordingLogger();
  const retries = createIncomingRetries({
    store: () => (state.down ? Promise.reject(new Error('Stream isn\'t writeable and enableOfflineQueue options is false')) : Promise.resolve()),
    logger,
    baseDelayMs: 1,
    maxDelayMs: 1,
    attempts: 3,
    maxPending: 10,
    stopTimeoutMs: 20,
    onRetry: (event) => outcomes.push(event.outcome === 'dropped' ? `dropped:${event.reason}` : event.outcome),
    ...options,
  });
  const loud = () => lines.filter((l) => l.level === 'error' || l.level === 'warn');
  const dropsAt = (level: string) => lines.filter((l) => l.level === level && l.msg.startsWith('incoming call dropped')).map((l) => l.fields.callSid);
  return { retries, state, outcomes, lines, loud, dropsAt };
}

describe('background retries of unstored Passthru requests', () => {
  it('logs the drops of a long outage in two error lines, the first and their count, and each with its callSid at info', async () => {
    const { retries, outcomes, loud, dropsAt } = unreachable();
    const sids = Array.from({ length: 200 }, (_, i) => `CA${i}`);
    for (const sid of sids) retries.add(request(sid));
    // 190 dropped as too many waited, the last 10 once their retries are spent; then none waits.
    await waitUntil(() => retries.pending === 0, 'every request dropped', 5_000, 1);
    expect(outcomes.filter((o) => o.startsWith('dropped')).length).toBe(200);
    expect(outcomes.filter((o) => o === 'dropped:overflow').length).toBe(190);
    expect(loud().map((l) => [l.level, l.fields])).toEqual([
      ['error', { callSid: 'CA0', reason: 'overflow' }],
      ['error', { failures: 200 }],
    ]);
    expect(loud()[1]!.msg).toMatch(/^incoming calls dropped while storage was down/);
    expect([...dropsAt('error'), ...dropsAt('info')].sort()).toEqual([...sids].sort());
    await retries.stop();
    expect(loud()).toHaveLength(2);
  });

  it('logs the count of an outage\'s drops once a request is stored again, and the next outage\'s first drop at error again', async () => {
    const { retries, state, loud } = unreachable({ attempts: 1_000, maxPending: 2 });
    for (const sid of ['CA1', 'CA2', 'CA3', 'CA4', 'CA5']) retries.add(request(sid));
    expect(loud().map((l) => l.fields)).toEqual([{ callSid: 'CA1', reason: 'overflow' }]);
    state.down = false;
    await waitUntil(() => retries.pending === 0, 'the waiting requests stored', 5_000, 1);
    expect(loud().map((l) => l.fields)).toEqual([{ callSid: 'CA1', reason: 'overflow' }, { failures: 3 }]);
    state.down = true;
    for (const sid of ['CA6', 'CA7', 'CA8']) retries.add(request(sid));
    expect(loud().map((l) => l.fields).slice(2)).toEqual([{ callSid: 'CA6', reason: 'overflow' }]);
    // Drops before the shutdown are counted apart from those at it.
    await retries.stop();
    expect(loud().map((l) => l.fields).slice(3)).toEqual([{ count: 2, callSids: ['CA7', 'CA8'], stillTrying: 0 }]);
  });

  it('logs the count of an outage\'s drops when the gateway stops in the middle of it, before the line of what the stop drops', async () => {
    const { retries, loud } = unreachable({ attempts: 1_000, maxPending: 2 });
    for (const sid of ['CA1', 'CA2', 'CA3', 'CA4']) retries.add(request(sid));
    expect(loud().map((l) => l.fields)).toEqual([{ callSid: 'CA1', reason: 'overflow' }]);
    await retries.stop();
    expect(loud().map((l) => l.fields)).toEqual([{ callSid: 'CA1', reason: 'overflow' }, { failures: 2 }, { count: 2, callSids: ['CA3', 'CA4'], stillTrying: 0 }]);
  });

  it('keeps at most maxPending when every waiting request is in the middle of an attempt: the new one is dropped', async () => {
    const { retries, stores, outcomes, lines } = stalled({ maxPending: 2 });
    retries.add(request('CA1'));
    retries.add(request('CA2'));
    await waitUntil(() => stores.length === 2, 'both requests in an attempt', 5_000, 1);
    retries.add(request('CA3'));
    expect(retries.pending).toBe(2);
    expect(outcomes.filter((o) => o.startsWith('dropped'))).toEqual(['dropped:overflow']);
    expect(lines.filter((l) => l.level === 'error').map((l) => [l.fields.callSid, l.fields.reason])).toEqual([['CA3', 'overflow']]);
    await retries.stop();
  });

  it('stop() gives up on an attempt storage never answers after stopTimeoutMs, and says it is still under way', async () => {
    const { retries, stores, outcomes, lines } = stalled();
    retries.add(request('CA1'));
    await waitUntil(() => stores.length === 1, 'the request in an attempt', 5_000, 1);
    await retries.stop();
    expect(retries.pending).toBe(0);
    expect(outcomes.at(-1)).toBe('dropped:shutdown');
    expect(lines.filter((l) => l.level === 'error').map((l) => l.fields)).toEqual([{ count: 1, callSids: ['CA1'], stillTrying: 1 }]);
  });

  it('drops a request added after stop() at once: no retry is left behind to run after storage has closed', async () => {
    const { retries, stores, outcomes, lines } = stalled();
    await retries.stop();
    retries.add(request('CA1'));
    expect(retries.pending).toBe(0);
    expect(outcomes).toEqual(['dropped:shutdown']);
    expect(lines.map((l) => [l.level, l.fields.callSid])).toEqual([['error', 'CA1']]);
    // Several of its retry delays later, nothing has been tried.
    await new Promise((r) => setTimeout(r, 20));
    expect(stores).toEqual([]);
  });
});
