/**
 * The simulator's scheduler: sleeps end on time or at stop(), and leave nothing behind on its signal. Many at
 * once (callbacks waiting out their delays) are normal for a busy simulator: no listener-leak warning.
 */
import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { createScheduler } from '../../src/simulator/scheduler.js';

describe('simulator scheduler', () => {
  it('removes the abort listener of every sleep that ended, so a long-running simulator does not pile them up', async () => {
    const scheduler = createScheduler(1, () => {});
    await Promise.all(Array.from({ length: 25 }, () => scheduler.sleep(1)));
    expect(getEventListeners(scheduler.signal, 'abort')).toHaveLength(0);
    scheduler.stop();
  });

  it('ends a pending sleep at stop()', async () => {
    const scheduler = createScheduler(1, () => {});
    const pending = scheduler.sleep(60_000);
    expect(getEventListeners(scheduler.signal, 'abort')).toHaveLength(1);
    scheduler.stop();
    await expect(pending).resolves.toBeUndefined();
    // And a sleep asked for after stop() ends at once.
    await expect(scheduler.sleep(60_000)).resolves.toBeUndefined();
  });

  it('holds many sleeps at once without a listener-leak warning', async () => {
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.name);
    process.on('warning', onWarning);
    try {
      const scheduler = createScheduler(1, () => {});
      const sleeps = Array.from({ length: 50 }, () => scheduler.sleep(60_000));
      expect(getEventListeners(scheduler.signal, 'abort')).toHaveLength(50);
      scheduler.stop();
      await Promise.all(sleeps);
      // Process warnings are emitted on a later tick.
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings).not.toContain('MaxListenersExceededWarning');
    } finally {
      process.off('warning', onWarning);
    }
  });
});
