/**
 * Many WebSocket subscribers in the bench process, for fan-out and memory figures.
 *
 * Both sides of a comparison use the same thin client: `ws` sockets that, against the gateway, speak the
 * graphql-transport-ws protocol by hand (connection_init → connection_ack → one subscribe, id "1") and,
 * against the raw baseline, just connect. So the client costs the same per frame on both sides and the
 * difference is the server's. (graphql-ws's own createClient would add the same per-frame parse on both
 * sides too, but ~3× the client CPU, which would cap what 10,000 sockets can measure.)
 */
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';

export interface FleetOptions {
  /** Subscribers are spread round-robin over these URLs (replicas). */
  urls: string[];
  size: number;
  /** 'graphql-ws': handshake + subscribe `query`; 'raw': connect only. */
  protocol: 'graphql-ws' | 'raw';
  query?: string;
  /** Sockets opening at once. */
  openConcurrency?: number;
}

/** Called with each frame's text, the receiving socket's index and the receive time (performance.now()). */
export type FrameHandler = (text: string, socketIndex: number, at: number) => void;

export interface Fleet {
  size: number;
  /** Index of the URL each socket went to. */
  urlIndex: Int32Array;
  /** Replaces the frame handler (undefined: frames are dropped unread). */
  onFrame(handler: FrameHandler | undefined): void;
  close(): Promise<void>;
}

/** Opens the fleet; resolves once every socket is open (and, for graphql-ws, acknowledged and subscribed). */
export async function openFleet(options: FleetOptions): Promise<Fleet> {
  const sockets: WebSocket[] = new Array(options.size);
  const urlIndex = new Int32Array(options.size);
  let handler: FrameHandler | undefined;
  const concurrency = options.openConcurrency ?? 200;

  const openOne = (i: number) =>
    new Promise<void>((resolve, reject) => {
      const u = i % options.urls.length;
      urlIndex[i] = u;
      const socket = new WebSocket(options.urls[u]!, options.protocol === 'graphql-ws' ? 'graphql-transport-ws' : undefined, { perMessageDeflate: false });
      sockets[i] = socket;
      const fail = (err: unknown) => reject(err instanceof Error ? err : new Error(String(err)));
      socket.once('error', fail);
      socket.once('close', (code) => fail(new Error(`socket ${i} closed during setup (${code})`)));
      socket.once('open', () => {
        if (options.protocol === 'raw') return ready();
        socket.send(JSON.stringify({ type: 'connection_init', payload: {} }));
        socket.once('message', (data) => {
          const msg = JSON.parse(String(data)) as { type: string };
          if (msg.type !== 'connection_ack') return fail(new Error(`socket ${i}: expected connection_ack, got ${msg.type}`));
          socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: options.query } }));
          ready();
        });
      });
      function ready() {
        socket.removeAllListeners('error');
        socket.removeAllListeners('close');
        socket.on('error', () => {});
        socket.on('message', (data) => {
          const h = handler;
          if (h) h(String(data), i, performance.now());
        });
        resolve();
      }
    });

  let next = 0;
  const worker = async () => {
    while (next < options.size) await openOne(next++);
  };
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, options.size) }, worker));
  } catch (err) {
    for (const s of sockets) s?.terminate();
    throw err;
  }

  return {
    size: options.size,
    urlIndex,
    onFrame(h) {
      handler = h;
    },
    async close() {
      handler = undefined;
      // A clean close lets the server end each subscription the way a leaving client does.
      await Promise.all(
        sockets.map(
          (s) =>
            new Promise<void>((resolve) => {
              if (s.readyState === WebSocket.CLOSED) return resolve();
              const timer = setTimeout(() => (s.terminate(), resolve()), 5000);
              s.once('close', () => (clearTimeout(timer), resolve()));
              s.close(1000);
            }),
        ),
      );
    },
  };
}

/** Result of one delivery: latency of each frame carrying `marker`, ms from `startedAt`. */
export interface Delivery {
  latenciesMs: Float64Array;
  /** Subscribers that did not get it before the timeout. */
  missing: number;
  /** Receive time of the last frame (performance.now()). */
  lastAt: number;
}

/**
 * Waits until `expected` frames containing any of `markers` arrived (or `timeoutMs` passed), recording
 * each one's latency from `startedAt`. Install before triggering, so no frame is missed.
 */
export function awaitFrames(fleet: Fleet, markers: string[], expected: number, startedAt: () => number, timeoutMs: number): Promise<Delivery> {
  return new Promise((resolve) => {
    const latencies = new Float64Array(expected);
    let count = 0;
    let lastAt = 0;
    const finish = () => {
      clearTimeout(timer);
      fleet.onFrame(undefined);
      resolve({ latenciesMs: latencies.subarray(0, count), missing: expected - count, lastAt });
    };
    const timer = setTimeout(finish, timeoutMs);
    fleet.onFrame((text, _i, at) => {
      let hit = false;
      for (const m of markers) if (text.includes(m)) hit = true;
      if (!hit || count >= expected) return;
      latencies[count++] = at - startedAt();
      lastAt = at;
      if (count === expected) finish();
    });
  });
}
