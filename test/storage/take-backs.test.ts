/**
 * The owed idempotency take-backs (src/storage/take-backs.ts) on their own: retried until Redis answers,
 * never past the record's expiry, at most maxOwed of them, and one last try at close. The take-back is a
 * recording fake here; test/scale/idempotency-take-back.test.ts runs the real one against redis-server.
 */
import { describe, expect, it } from 'vitest';
import { createTakeBacks, type TakeBack } from '../../src/storage/take-backs.js';
import { waitUntil } from '../helpers/processes.js';

function recordingLogger() {
  const lines: Array<{ level: string; msg: string; fields: Record<string, unknown> }> = [];
  const at = (level: string) => (fields: Record<string, unknown>, msg: string) => void lines.push({ level, msg, fields });
  return { lines, logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } as never };
}

/** A take-back that fails (Redis unreachable) until `reachable` is set, then answers `removed`. */
function fakeTakeBack(removed = true) {
  const tries: string[] = [];
  const state = { reachable: false };
  const takeBack: TakeBack = async (_key, record) => {
    tries.push(record);
    if (!state.reachable) throw new Error('Stream isn\'t writeable and enableOfflineQueue options is false');
    return removed;
  };
  return { tries, state, takeBack };
}

const timings = { firstDelayMs: 1, maxDelayMs: 4 };

describe('owed idempotency take-backs', () => {
  it('retries a take-back until Redis answers it, then no more', async () => {
    const { tries, state, takeBack } = fakeTakeBack();
    const { lines, logger } = recordingLogger();
    const takeBacks = createTakeBacks(takeBack, { clock: () => 0, logger, timings });
    takeBacks.owe('idem:k', '{"owner":"a"}', 60_000);
    takeBacks.owe('idem:k', '{"owner":"a"}', 60_000);
    await waitUntil(() => tries.length >= 3, 'a few failed tries', 5_000, 1);
    expect(lines).toEqual([]);
    state.reachable = true;
    await waitUntil(() => takeBacks.size() === 0, 'the take-back to be answered', 5_000, 1);
    const settled = tries.length;
    expect(lines).toEqual([{ level: 'info', msg: 'idempotency take-back done', fields: { key: 'idem:k', removed: true } }]);
    await new Promise((r) => setTimeout(r, 20));
    expect(tries.length).toBe(settled);
    expect(new Set(tries)).toEqual(new Set(['{"owner":"a"}']));
    await takeBacks.close();
  });

  it('stops retrying once the record it would remove has expired by itself', async () => {
    const { tries, takeBack } = fakeTakeBack();
    const { lines, logger } = recordingLogger();
    let now = 1_000;
    const takeBacks = createTakeBacks(takeBack, { clock: () => now, logger, timings });
    takeBacks.owe('idem:k', 'r', 2_000);
    await waitUntil(() => tries.length >= 2, 'a few failed tries', 5_000, 1);
    now = 2_000;
    await waitUntil(() => takeBacks.size() === 0, 'the take-back to be dropped', 5_000, 1);
    const dropped = tries.length;
    await new Promise((r) => setTimeout(r, 20));
    expect(tries.length).toBe(dropped);
    expect(lines.map((l) => l.msg)).toEqual(['idempotency take-back dropped: the record it owed expires by itself']);
    await takeBacks.close();
  });

  it('keeps at most maxOwed, and says so for the one it does not keep', async () => {
    const { takeBack } = fakeTakeBack();
    const { lines, logger } = recordingLogger();
    const takeBacks = createTakeBacks(takeBack, { clock: () => 0, logger, timings: { ...timings, maxOwed: 2 } });
    for (const record of ['a', 'b', 'c']) takeBacks.owe(`idem:${record}`, record, 60_000);
    expect(takeBacks.size()).toBe(2);
    expect(lines).toEqual([expect.objectContaining({ level: 'warn', fields: { key: 'idem:c', owed: 2 } })]);
    await takeBacks.close();
  });

  it('counts each take-back not kept, and logs a long outage\'s in two warn lines: the first, and their count once one is answered', async () => {
    const { state, takeBack } = fakeTakeBack();
    const { lines, logger } = recordingLogger();
    const lost: string[] = [];
    const takeBacks = createTakeBacks(takeBack, { clock: () => 0, logger, timings: { ...timings, maxOwed: 2 }, onLost: (reason, count) => lost.push(`${reason}:${count}`) });
    const refused = Array.from({ length: 500 }, (_, i) => `idem:refused-${i}`);
    for (const key of ['idem:a', 'idem:b', ...refused]) takeBacks.owe(key, key, 60_000);
    expect(lost).toEqual(refused.map(() => 'overflow:1'));
    const warnings = () => lines.filter((l) => l.level === 'warn');
    expect(warnings().map((l) => l.fields)).toEqual([{ key: 'idem:refused-0', owed: 2 }]);
    // Each one still to be found, with its key.
    expect(lines.filter((l) => l.msg.startsWith('idempotency take-back not kept')).map((l) => l.fields.key)).toEqual(refused);
    state.reachable = true;
    await waitUntil(() => takeBacks.size() === 0, 'the owed take-backs answered', 5_000, 1);
    expect(warnings().map((l) => l.fields)).toEqual([{ key: 'idem:refused-0', owed: 2 }, { failures: 500 }]);
    await takeBacks.close();
    expect(warnings()).toHaveLength(2);
  });

  it('counts the take-backs still owed at close as lost, after the count of those it did not keep', async () => {
    const { takeBack } = fakeTakeBack();
    const { lines, logger } = recordingLogger();
    const lost: string[] = [];
    const takeBacks = createTakeBacks(takeBack, { clock: () => 0, logger, timings: { firstDelayMs: 60_000, maxDelayMs: 60_000, maxOwed: 2 }, onLost: (reason, count) => lost.push(`${reason}:${count}`) });
    for (const key of ['a', 'b', 'c', 'd', 'e']) takeBacks.owe(`idem:${key}`, key, 600_000);
    await takeBacks.close();
    takeBacks.owe('idem:f', 'f', 600_000);
    expect(lost).toEqual(['overflow:1', 'overflow:1', 'overflow:1', 'shutdown:2', 'shutdown:1']);
    expect(lines.filter((l) => l.level === 'warn').map((l) => l.fields)).toEqual([{ key: 'idem:c', owed: 2 }, { failures: 3 }, { owed: 2 }, { key: 'idem:f' }]);
  });

  it('tries each owed take-back once more at close, then never again', async () => {
    const { tries, takeBack } = fakeTakeBack();
    const { lines, logger } = recordingLogger();
    // Long delays: the only tries after the first are close()'s.
    const takeBacks = createTakeBacks(takeBack, { clock: () => 0, logger, timings: { firstDelayMs: 60_000, maxDelayMs: 60_000 } });
    takeBacks.owe('idem:a', 'a', 600_000);
    takeBacks.owe('idem:b', 'b', 600_000);
    await takeBacks.close();
    expect(tries.sort()).toEqual(['a', 'b']);
    expect(takeBacks.size()).toBe(0);
    expect(lines).toEqual([expect.objectContaining({ level: 'warn', fields: { owed: 2 } })]);
    takeBacks.owe('idem:c', 'c', 600_000);
    expect(takeBacks.size()).toBe(0);
  });
});
