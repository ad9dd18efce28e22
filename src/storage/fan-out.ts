/** Delivers events to local listeners in log order, one at a time, isolating listeners from each other. */
import type { EventRecord, LostEvents } from './types.js';
import type { StorageLogger } from './options.js';

export interface FanOut {
  /** `onLost` is told of events the log lost before they could be published (EventLog.subscribe). */
  add(listener: (event: EventRecord) => void, onLost?: (lost: LostEvents) => void): () => void;
  publish(event: EventRecord): void;
  /** Tells every listener of lost events, in order with the events published: after those before them. */
  lost(lost: LostEvents): void;
  readonly size: number;
  clear(): void;
}

export function createFanOut(logger: StorageLogger): FanOut {
  // A wrapper per add, so subscribing the same function twice gives two independent subscriptions.
  const listeners = new Set<{ event: (event: EventRecord) => void; lost: ((lost: LostEvents) => void) | undefined }>();
  const queue: Array<EventRecord | { lost: LostEvents }> = [];
  let draining = false;
  const deliver = (next: EventRecord | { lost: LostEvents }) => {
    for (const listener of [...listeners]) {
      try {
        if ('lost' in next) listener.lost?.(next.lost);
        else listener.event(next);
      } catch (err) {
        logger.error({ err, eventId: 'lost' in next ? undefined : next.id }, 'event listener threw; other listeners still get the event');
      }
    }
  };
  const enqueue = (next: EventRecord | { lost: LostEvents }) => {
    queue.push(next);
    // A listener that appends (memory delivers synchronously) must not overtake the event being delivered.
    if (draining) return;
    draining = true;
    try {
      for (let item = queue.shift(); item; item = queue.shift()) deliver(item);
    } finally {
      draining = false;
    }
  };
  return {
    add(listener, onLost) {
      const entry = { event: listener, lost: onLost };
      listeners.add(entry);
      return () => {
        listeners.delete(entry);
      };
    },
    publish: enqueue,
    lost: (lost) => enqueue({ lost }),
    get size() {
      return listeners.size;
    },
    clear() {
      listeners.clear();
      queue.length = 0;
    },
  };
}
