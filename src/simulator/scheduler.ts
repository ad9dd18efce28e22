/** Timers of one simulator instance: scaled simulated time, all cancelled by stop(). */
import { setMaxListeners } from 'node:events';

export interface Scheduler {
  /** Runs `fn` after `simSeconds` of simulated time (× timeScale in real time). */
  afterSim(simSeconds: number, fn: () => void): void;
  /** Runs `fn` after `ms` real milliseconds (fault delays are real time). */
  afterReal(ms: number, fn: () => void): void;
  /** Resolves after `ms` real milliseconds, or at once when stopped. */
  sleep(ms: number): Promise<void>;
  /** Real milliseconds for `simSeconds` of simulated time. */
  scaledMs(simSeconds: number): number;
  /** Aborted on stop(): in-flight callback requests listen to it. */
  readonly signal: AbortSignal;
  readonly stopped: boolean;
  stop(): void;
}

export function createScheduler(timeScale: number, onError: (err: unknown) => void): Scheduler {
  const timers = new Set<NodeJS.Timeout>();
  const controller = new AbortController();
  // Every sleep and in-flight callback request listens to it until it ends: a busy simulator has dozens at
  // once, which is no leak (each listener goes when its sleep or request ends), so Node's warning past 10 is off.
  setMaxListeners(0, controller.signal);
  const afterReal = (ms: number, fn: () => void): void => {
    if (controller.signal.aborted) return;
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (controller.signal.aborted) return;
      // A bug in one transition must not take the simulator (or the gateway hosting it) down.
      try {
        fn();
      } catch (err) {
        onError(err);
      }
    }, Math.max(0, ms));
    timers.add(timer);
  };
  const scaledMs = (simSeconds: number): number => simSeconds * 1000 * timeScale;
  return {
    afterSim: (simSeconds, fn) => afterReal(scaledMs(simSeconds), fn),
    afterReal,
    sleep: (ms) => new Promise((resolve) => {
      if (controller.signal.aborted) return resolve();
      const onAbort = () => resolve();
      const timer = setTimeout(() => {
        timers.delete(timer);
        // The signal lives as long as the simulator: a listener left on it per sleep would pile up.
        controller.signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      timers.add(timer);
      controller.signal.addEventListener('abort', onAbort, { once: true });
    }),
    scaledMs,
    signal: controller.signal,
    get stopped() {
      return controller.signal.aborted;
    },
    stop() {
      controller.abort();
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
    },
  };
}
