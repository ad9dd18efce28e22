/**
 * A background task repeated every `intervalMs`: the next run starts `intervalMs` after the previous one
 * ended, so a slow run never overlaps itself. Timers are unref'd so they never keep a process alive.
 *
 * A task that fails while what it needs is down (Redis, Exotel) fails every interval for the whole outage:
 * its failures are logged once per run of failures (the first at warn, with its error, the others at
 * debug), and one info line with their count when a run succeeds again.
 */
import type { Logger } from '../logger.js';
import { createOutageLog } from '../outage-log.js';

export interface Loop {
  /** Runs the task now (tests) and waits for it; concurrent calls share the run in flight. */
  runNow(): Promise<void>;
  /** Stops scheduling, cancels a run in flight (its signal aborts) and waits for it to end. */
  stop(): Promise<void>;
}

/**
 * Starts `task` every `intervalMs` (first run after one interval). The task's signal aborts when the loop
 * stops: a run waiting on Exotel (a timeout and its retries can take tens of seconds) ends then, rather than
 * holding shutdown past its bound.
 */
export function startLoop(name: string, intervalMs: number, task: (signal: AbortSignal) => Promise<void>, logger: Logger): Loop {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  const stopping = new AbortController();
  const log = logger.child({ loop: name });
  const failures = createOutageLog(log, {
    level: 'warn',
    until: 'a run succeeds',
    recoveredMessage: 'background task ran cleanly again after failed runs',
  });

  const run = (): Promise<void> =>
    (running ??= task(stopping.signal)
      .then(
        () => failures.recovered(),
        (err: unknown) => {
          // Cancelled by stop(): not a failure of the task.
          if (stopping.signal.aborted) log.debug({ err }, 'background task cancelled by stop');
          else failures.failed({ err }, 'background task failed; retrying next interval');
        },
      )
      .finally(() => {
        running = undefined;
        schedule();
      }));

  const schedule = () => {
    if (stopping.signal.aborted) return;
    clearTimeout(timer);
    timer = setTimeout(() => void run(), intervalMs);
    timer.unref();
  };

  schedule();
  return {
    runNow: run,
    async stop() {
      stopping.abort();
      clearTimeout(timer);
      await running;
    },
  };
}
