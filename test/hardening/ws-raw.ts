/**
 * A raw graphql-transport-ws socket for tests that need to see exact close codes and frames, which the
 * graphql-ws client hides behind retries and its own errors.
 */
import WebSocket from 'ws';

export interface RawSocket {
  ws: WebSocket;
  /** Resolves with the close code and reason (also when the handshake itself fails: code -1). */
  closed: Promise<{ code: number; reason: string }>;
  /** Resolves with the HTTP status when the upgrade is refused. */
  refused: Promise<number>;
  /** Resolves when the socket is open. */
  opened: Promise<void>;
  send(message: unknown): void;
  /** The next message satisfying `predicate` (parsed JSON); rejects if the socket closes first. */
  next(predicate?: (m: any) => boolean): Promise<any>;
}

export function rawSocket(url: string, options: { origin?: string; headers?: Record<string, string> } = {}): RawSocket {
  const ws = new WebSocket(url, 'graphql-transport-ws', { ...(options.origin ? { origin: options.origin } : {}), headers: options.headers ?? {} });
  const seen: any[] = [];
  const waiters = new Set<() => void>();
  let closedWith: { code: number; reason: string } | undefined;
  let refusedResolve!: (status: number) => void;
  const refused = new Promise<number>((resolve) => (refusedResolve = resolve));
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.on('close', (code, reason) => {
      closedWith = { code, reason: reason.toString() };
      resolve(closedWith);
      waiters.forEach((w) => w());
    });
    ws.on('unexpected-response', (_req, res) => {
      refusedResolve(res.statusCode ?? 0);
      res.resume();
      closedWith = { code: -1, reason: `HTTP ${res.statusCode}` };
      resolve(closedWith);
      ws.terminate();
    });
    ws.on('error', () => undefined);
  });
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    closed.then((c) => reject(new Error(`closed before open: ${c.code} ${c.reason}`)));
  });
  opened.catch(() => undefined);
  ws.on('message', (data) => {
    seen.push(JSON.parse(String(data)));
    waiters.forEach((w) => w());
  });
  return {
    ws,
    closed,
    refused,
    opened,
    send: (message) => ws.send(typeof message === 'string' ? message : JSON.stringify(message)),
    next(predicate = () => true) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const index = seen.findIndex(predicate);
          if (index >= 0) {
            waiters.delete(check);
            resolve(seen.splice(index, 1)[0]);
          } else if (closedWith) {
            waiters.delete(check);
            reject(new Error(`socket closed (${closedWith.code} ${closedWith.reason}) before the expected message; seen ${JSON.stringify(seen)}`));
          }
        };
        waiters.add(check);
        check();
      });
    },
  };
}

/** Opens a socket and completes connection_init → connection_ack. */
export async function ackedSocket(url: string, authorization?: string, options: { origin?: string } = {}): Promise<RawSocket> {
  const socket = rawSocket(url, options);
  await socket.opened;
  socket.send({ type: 'connection_init', payload: authorization ? { authorization } : {} });
  await socket.next((m) => m.type === 'connection_ack');
  return socket;
}
