/**
 * The fair budget queue (docs/rate-budget.md) over a real memory budget with a short window: who is
 * served first when slots are scarce, and who is told RATE_LIMITED. Orders and codes are asserted, never
 * times.
 */
import { describe, expect, it } from 'vitest';
import { createBudgetQueue } from '../../src/exotel/budget-queue.js';
import { GatewayError } from '../../src/errors.js';
import { createMemoryRateBudget } from '../../src/storage/rate-budget.js';

const WINDOW_MS = 300;

function queueOf(limit: number, options: { weights?: Record<string, number>; reserveShare?: number; queueDeadlineMs?: number } = {}) {
  return createBudgetQueue({
    budget: createMemoryRateBudget({ limit, windowMs: WINDOW_MS }),
    queueDeadlineMs: options.queueDeadlineMs ?? 5_000,
    backgroundShare: 0.2,
    attemptTimeoutMs: 0,
    weights: options.weights ?? { a: 1, b: 1 },
    reserveShare: options.reserveShare ?? 0,
    now: () => Date.now(),
  });
}

describe('the fair budget queue', () => {
  it('serves a key under its share before a key over it, whatever the order they queued in', async () => {
    const queue = queueOf(4);
    // Key a spends the whole window (twice its share).
    for (let i = 0; i < 4; i++) await (await queue.acquire({ priority: 'foreground', client: 'a' })).settle();
    const served: string[] = [];
    const wait = (client: string, label: string) =>
      queue.acquire({ priority: 'foreground', client }).then(async (hold) => {
        served.push(label);
        await hold.settle();
      });
    const waits = [wait('a', 'a1')];
    // Each joins once the one before is queued, so their arrival order is certain.
    for (const [client, label] of [['a', 'a2'], ['b', 'b1']] as const) {
      while (queue.waiting < waits.length) await new Promise((resolve) => setImmediate(resolve));
      waits.push(wait(client, label));
    }
    await Promise.all(waits);
    // FIFO would have been a1, a2, b1.
    expect(served[0]).toBe('b1');
    expect(served.slice(1)).toEqual(['a1', 'a2']);
  });

  it('tells only the key over its share RATE_LIMITED, with the wait of that key, while the other is served from the reserve', async () => {
    const queue = queueOf(4, { reserveShare: 0.5, queueDeadlineMs: 50 });
    // a: its share (2), then nothing more once only the reserve (2) is left.
    for (let i = 0; i < 2; i++) await (await queue.acquire({ priority: 'foreground', client: 'a' })).settle();
    const refused = await queue.acquire({ priority: 'foreground', client: 'a' }).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(GatewayError);
    expect((refused as GatewayError).code).toBe('RATE_LIMITED');
    expect((refused as GatewayError).message).toMatch(/\("a"\) has used its share/);
    expect((refused as GatewayError).extensions.retryAfterSeconds).toBe(1);
    // b takes the reserve.
    for (let i = 0; i < 2; i++) await (await queue.acquire({ priority: 'foreground', client: 'b' })).settle();
    expect(await queue.clientShare('a')).toEqual({ share: 2, used: 2 });
    expect(await queue.clientShare('b')).toEqual({ share: 2, used: 2 });
  });

  it('gives a heavier key a larger share', async () => {
    const queue = queueOf(8, { weights: { a: 3, b: 1 }, reserveShare: 0.25 });
    expect((await queue.clientShare('a')).share).toBe(6);
    expect((await queue.clientShare('b')).share).toBe(2);
  });

  it('trySpare takes only from a window with room to spare', async () => {
    const queue = queueOf(4);
    const first = await queue.trySpare('a', 0.5);
    expect(first).toBeDefined();
    await first!.settle();
    expect(await queue.trySpare('a', 0.5)).toBeDefined();
    // Two left: a third spare take would leave one, less than half the window.
    expect(await queue.trySpare('a', 0.5)).toBeUndefined();
    expect(await queue.acquire({ priority: 'foreground', client: 'a' })).toBeDefined();
  });
});
