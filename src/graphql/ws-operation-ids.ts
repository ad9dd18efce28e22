/**
 * One operation per id at a time on a graphql-ws socket, as graphql-transport-ws means it.
 *
 * The protocol lets a client subscribe again with an id it has completed. graphql-ws forgets a completed id
 * at once, while the operation it started may still be on its way (a subscription reading its snapshot);
 * a new subscribe with that id then makes graphql-ws file the old operation under the id too, where the new
 * one replaces it. The old one is out of reach from then on: nothing ends it, not the client's complete nor
 * the socket's close, so it keeps its event channel and its place in the gauges for the life of the process,
 * and sends every event to the id a second time while the socket lasts. So a subscribe whose id is still
 * running on the server is held here until that operation has ended, and only then handed to graphql-ws.
 *
 * A subscribe repeating the id of an operation the client has not completed is the client's mistake, and
 * the socket is closed with 4409 here: graphql-ws would name the whole id in the reason, and a reason over
 * 123 bytes throws in ws (printed as an internal error, the socket closed 4500).
 */

/** The close code graphql-transport-ws gives a subscribe whose id is in use (graphql-ws CloseCode.SubscriberAlreadyExists). */
export const CLOSE_SUBSCRIBER_EXISTS = 4409;

/** What the socket does with one client message. */
export type Routing =
  /** Hand it to graphql-ws now; for a subscribe, tell `ended(id)` once graphql-ws's handling of it has finished. */
  | { action: 'pass'; track?: string }
  /** Keep it: it goes to graphql-ws (through route() again) when the id's running operation has ended. */
  | { action: 'hold' }
  /** Nothing to do: a complete of a subscribe that was still held (so it never runs). */
  | { action: 'drop' }
  /** Close the socket with 4409 and `reason`. */
  | { action: 'duplicate'; reason: string }
  /** More subscribes held on this socket than it may hold: refuse this one with RATE_LIMITED. */
  | { action: 'refuse'; id: string };

interface Running {
  /** The client completed it; it may still be ending on the server. */
  completed: boolean;
  /** A subscribe with the same id, waiting for this one to end. */
  next: string | undefined;
}

/** The parts of a client message this cares about; undefined for anything but a well-formed subscribe or complete. */
function operationOf(data: string): { type: 'subscribe' | 'complete'; id: string } | undefined {
  // Parsed whole, never sniffed: JSON may spell "subscribe" with escapes. Everything else, malformed messages
  // too, is graphql-ws's to answer.
  let message: unknown;
  try {
    message = JSON.parse(data);
  } catch {
    return undefined;
  }
  if (typeof message !== 'object' || message === null) return undefined;
  const { type, id } = message as { type?: unknown; id?: unknown };
  if ((type !== 'subscribe' && type !== 'complete') || typeof id !== 'string' || id === '') return undefined;
  return { type, id };
}

/** The 4409 reason: graphql-ws's own words, with the id when it fits in a close reason (123 bytes). */
function duplicateReason(id: string): string {
  const reason = `Subscriber for ${id} already exists`;
  return Buffer.byteLength(reason) <= 123 ? reason : 'Subscriber for this operation id already exists';
}

/** The operation ids running on one socket, and the subscribes waiting for one of them to end. */
export class OperationIds {
  private readonly running = new Map<string, Running>();
  private held = 0;

  /** `maxHeld`: subscribes this socket may have waiting at once (its operation limit). */
  constructor(private readonly maxHeld: number) {}

  /** Decides what happens to the client message `data` (its text). */
  route(data: string): Routing {
    const operation = operationOf(data);
    if (!operation) return { action: 'pass' };
    const { id } = operation;
    const running = this.running.get(id);
    if (operation.type === 'complete') {
      if (running?.next !== undefined) {
        running.next = undefined;
        this.held--;
        return { action: 'drop' };
      }
      if (running) running.completed = true;
      return { action: 'pass' };
    }
    if (!running) {
      this.running.set(id, { completed: false, next: undefined });
      return { action: 'pass', track: id };
    }
    if (!running.completed || running.next !== undefined) return { action: 'duplicate', reason: duplicateReason(id) };
    if (this.held >= this.maxHeld) return { action: 'refuse', id };
    running.next = data;
    this.held++;
    return { action: 'hold' };
  }

  /** graphql-ws has finished with the operation `id`; answers the subscribe held for its id, if any, to route again. */
  ended(id: string): string | undefined {
    const running = this.running.get(id);
    if (!running) return undefined;
    this.running.delete(id);
    if (running.next !== undefined) this.held--;
    return running.next;
  }
}
