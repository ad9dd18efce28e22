/** Delivers events to local listeners in log order, one at a time, isolating listeners from each other. */
import type { EventRecord } from './types.js';
import type { StorageLogger } from './options.js';

export interface FanOut {
  add(listener: (event: EventRecord) => void): () => void;
  publish(event: EventRecord): void;
  readonly size: number;
  clear(): void;
}

export function createFanOut(logger: StorageLogger): FanOut {
  const listeners = new Set<(event: EventRecord) => void>();
  const queue: EventRecord[] = [];
  let draining = false;
  return {
    add(listener) {
      // A wrapper per call, so subscribing the same function twice gives two independent subscriptions.
      const entry = (event: EventRecord) => listener(event);
      listeners.add(entry);
      return () => {
        listeners.delete(entry);
      };
    },
    publish(event) {
      queue.push(event);
      // A listener that appends (memory delivers synchronously) must not overtake the event being delivered.
      if (draining) return;
      draining = true;
      try {
        for (let next = queue.shift(); next; next = queue.shift()) {
          for (const listener of [...listeners]) {
            try {
              listener(next);
            } catch (err) {
              logger.error({ err, eventId: next.id }, 'event listener threw; other listeners still get the event');
            }
          }
        }
      } finally {
        draining = false;
      }
    },
    get size() {
      return listeners.size;
    },
    clear() {
      listeners.clear();
      queue.length = 0;
    },
  };
}
