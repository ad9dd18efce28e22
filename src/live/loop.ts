/**
 * A background task repeated every `intervalMs`: the next run starts `intervalMs` after the previous one
 * ended, so a slow run never overlaps itself. Timers are unref'd so they never keep a process alive.
 */
import type { Logger } from '../logger.js';

export interface Loop {
  /** Runs the task now (tests) and waits for it; concurrent calls share the run in flight. */
  runNow(): Promise<void>;
  /** Stops scheduling and waits for a run in flight. */
  stop(): Promise<void>;
}

/** Starts `task` every `intervalMs` (first run after one interval). */
export function startLoop(name: string, intervalMs: number, task: () => Promise<void>, logger: Logger): Loop {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;

  const run = (): Promise<void> =>
    (running ??= task()
      .catch((err: unknown) => logger.warn({ err, loop: name }, 'background task failed; retrying next interval'))
      .finally(() => {
        running = undefined;
        schedule();
      }));

  const schedule = () => {
    if (stopped) return;
    clearTimeout(timer);
    timer = setTimeout(() => void run(), intervalMs);
    timer.unref();
  };

  schedule();
  return {
    runNow: run,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
