/**
 * A TCP proxy in front of Redis that stalls a connection at an exact point: once bytes matching the armed
 * trigger have passed to Redis on a connection, nothing more the client sends on it reaches Redis, as with
 * a Redis that stops answering right after that command. The point is chosen by what the client sends,
 * which no signal sent to redis-server from outside can hit between two commands sent back to back; and a
 * stopped redis-server resumed later would still run the commands waiting in its socket, which a dead one
 * never does. stallBefore() holds back the matching bytes themselves, as with a connection lost just before
 * that command reached Redis. release() drops the stalled connections (the client reconnects); other
 * connections pass.
 */
import { createServer, Socket, type AddressInfo } from 'node:net';

export interface StallProxy {
  /** redis://127.0.0.1:<proxy port> */
  url: string;
  /** Stalls the first connection whose bytes, since arming, satisfy `trigger`, right after those bytes. */
  stallAfter(trigger: (sent: string) => boolean): void;
  /** Stalls the first connection whose bytes, since arming, satisfy `trigger`, right before those bytes: they never reach Redis. */
  stallBefore(trigger: (sent: string) => boolean): void;
  /** True once a connection has stalled. */
  stalled(): boolean;
  /** Drops the stalled connections: what they held never reaches Redis. */
  release(): void;
  close(): Promise<void>;
}

export async function startStallProxy(targetUrl: string): Promise<StallProxy> {
  const target = new URL(targetUrl);
  const sockets = new Set<Socket>();
  const stalledPairs: Array<[Socket, Socket]> = [];
  let trigger: ((sent: string) => boolean) | undefined;
  let holdTrigger = false;
  let everStalled = false;
  const sentSinceArmed = new Map<Socket, string>();

  const server = createServer((client) => {
    const upstream = new Socket();
    sockets.add(client).add(upstream);
    let stalled = false;
    upstream.connect(Number(target.port || 6379), target.hostname);
    upstream.on('data', (chunk) => client.write(chunk));
    client.on('data', (chunk) => {
      if (stalled) return;
      if (!trigger) {
        upstream.write(chunk);
        return;
      }
      // Kept per connection, so a command split over two reads still matches.
      const sent = (sentSinceArmed.get(client) ?? '') + chunk.toString('latin1');
      sentSinceArmed.set(client, sent);
      const matched = trigger(sent);
      if (!(matched && holdTrigger)) upstream.write(chunk);
      if (matched) {
        trigger = undefined;
        sentSinceArmed.clear();
        stalled = true;
        everStalled = true;
        stalledPairs.push([client, upstream]);
      }
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
      sentSinceArmed.delete(client);
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `redis://127.0.0.1:${port}`,
    stallAfter(next) {
      sentSinceArmed.clear();
      trigger = next;
      holdTrigger = false;
    },
    stallBefore(next) {
      sentSinceArmed.clear();
      trigger = next;
      holdTrigger = true;
    },
    stalled: () => everStalled,
    release() {
      for (const [client, upstream] of stalledPairs.splice(0)) {
        client.destroy();
        upstream.destroy();
      }
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
