/**
 * A real graphql-ws client for tests, and a recorder of one subscription's messages with deferred-style
 * waits (no sleeps): `until(predicate)` resolves as soon as the recorded messages satisfy it.
 */
import { afterEach } from 'vitest';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';

export interface WsClientOptions {
  authorization?: string;
}

/** A graphql-ws client on `wsUrl` that does not reconnect (tests want to see every failure). */
export function wsClient(wsUrl: string, options: WsClientOptions = {}): Client {
  return createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    lazy: true,
    ...(options.authorization ? { connectionParams: { authorization: options.authorization } } : {}),
  });
}

/** wsClient for a test file whose clients are each disposed after the test that made them. */
export function wsClientsPerTest(): (wsUrl: string, options?: WsClientOptions) => Client {
  const clients: Client[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.dispose()));
  });
  return (wsUrl, options) => {
    const c = wsClient(wsUrl, options);
    clients.push(c);
    return c;
  };
}

export interface Recorded<T> {
  /** Data of every `next` message, in order. */
  readonly items: T[];
  /** GraphQL errors or a socket close, if the operation failed. */
  readonly error: unknown;
  readonly completed: boolean;
  /** Resolves when the operation completes (or rejects when it errors). */
  readonly done: Promise<T[]>;
  /** Resolves once `predicate(items)` holds; rejects after `timeoutMs` with what was seen. */
  until(predicate: (items: T[]) => boolean, timeoutMs?: number): Promise<T[]>;
  /** Unsubscribes. */
  dispose(): void;
}

/** Subscribes and records; `field` picks the root field out of each `data`. */
export function record<T = any>(client: Client, query: string, variables: Record<string, unknown>, field: string): Recorded<T> {
  const items: T[] = [];
  const waiters = new Set<() => void>();
  const state = { error: undefined as unknown, completed: false };
  let resolveDone!: (items: T[]) => void;
  let rejectDone!: (err: unknown) => void;
  const done = new Promise<T[]>((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });
  done.catch(() => undefined);
  const wake = () => waiters.forEach((w) => w());
  const dispose = client.subscribe<Record<string, T>>(
    { query, variables },
    {
      next: (message) => {
        if (message.errors) state.error = message.errors;
        if (message.data) items.push(message.data[field] as T);
        wake();
      },
      error: (err) => {
        state.error = err;
        rejectDone(err);
        wake();
      },
      complete: () => {
        state.completed = true;
        // A subscription that fails at subscribe time arrives as one `next` with errors, then `complete`.
        if (state.error !== undefined) rejectDone(state.error);
        else resolveDone(items);
        wake();
      },
    },
  );
  return {
    items,
    get error() {
      return state.error;
    },
    get completed() {
      return state.completed;
    },
    done,
    until(predicate, timeoutMs = 10_000) {
      return new Promise<T[]>((resolve, reject) => {
        const check = () => {
          if (predicate(items)) {
            cleanup();
            resolve(items);
          } else if (state.error !== undefined || state.completed) {
            cleanup();
            reject(new Error(`subscription ended before the condition held: ${JSON.stringify({ items, error: state.error instanceof Error ? state.error.message : state.error, completed: state.completed })}`));
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out waiting; seen ${JSON.stringify(items)}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    dispose,
  };
}
