/** Test helpers for the simulator: start it on port 0, call it with Basic auth, receive callbacks. */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach } from 'vitest';
import { createSimulator, type Simulator, type SimulatorOptions } from '../../src/simulator/index.js';

const running: Array<{ stop(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()));
});

/** A simulator on a free port, 100× faster than real time, quiet, stopped after each test. */
export async function startSim(options: SimulatorOptions = {}): Promise<Simulator> {
  const sim = await createSimulator({ port: 0, timeScale: 0.01, log: () => {}, ...options });
  running.push(sim);
  return sim;
}

export interface SimResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

/** Calls the simulator: `path` relative to /v1/Accounts/{sid}/ unless it starts with '/'. */
export async function api<T = any>(
  sim: Simulator,
  path: string,
  init: { method?: string; form?: Record<string, string> | URLSearchParams | Array<[string, string]>; auth?: string | null; headers?: Record<string, string>; body?: BodyInit } = {},
): Promise<SimResponse<T>> {
  const url = path.startsWith('/') ? `${sim.url}${path}` : `${sim.url}/v1/Accounts/${sim.accountSid}/${path}`;
  const headers: Record<string, string> = { ...init.headers };
  const auth = init.auth === undefined ? `${sim.apiKey}:${sim.apiToken}` : init.auth;
  if (auth !== null) headers.authorization = `Basic ${Buffer.from(auth).toString('base64')}`;
  let body = init.body;
  if (init.form) {
    body = new URLSearchParams(init.form as Record<string, string>).toString();
    headers['content-type'] = 'application/x-www-form-urlencoded';
  }
  const res = await fetch(url, { method: init.method ?? (body !== undefined ? 'POST' : 'GET'), headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, headers: res.headers, body: parsed as T };
}

/** One callback as a receiver got it. */
export interface ReceivedCallback {
  contentType: string;
  /** Form fields (urlencoded or multipart) or the JSON object. */
  fields: Record<string, any>;
  at: number;
}

export interface Receiver {
  url: string;
  received: ReceivedCallback[];
  /** Status to answer with (default 200), or 'hang' to never answer. */
  respond: number | 'hang';
  /** Resolves once `count` callbacks have arrived. */
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedCallback[]>;
  stop(): Promise<void>;
}

async function parseCallback(req: IncomingMessage, raw: Buffer): Promise<ReceivedCallback> {
  const contentType = req.headers['content-type'] ?? '';
  let fields: Record<string, any> = {};
  if (contentType.startsWith('application/json')) fields = JSON.parse(raw.toString('utf8'));
  else if (contentType.startsWith('multipart/form-data')) {
    const form = await new Response(new Uint8Array(raw), { headers: { 'content-type': contentType } }).formData();
    form.forEach((v, k) => {
      fields[k] = String(v);
    });
  } else fields = Object.fromEntries(new URLSearchParams(raw.toString('utf8')));
  return { contentType, fields, at: Date.now() };
}

/** A real HTTP callback receiver on a free port, stopped after each test. */
export async function startReceiver(): Promise<Receiver> {
  const received: ReceivedCallback[] = [];
  const waiters: Array<() => void> = [];
  const hanging = new Set<() => void>();
  const receiver: Receiver = {
    url: '',
    received,
    respond: 200,
    waitFor: (count, timeoutMs = 5000) =>
      new Promise((resolve, reject) => {
        const check = (): boolean => {
          if (received.length >= count) {
            resolve(received.slice());
            return true;
          }
          return false;
        };
        if (check()) return;
        const timer = setTimeout(() => reject(new Error(`only ${received.length} of ${count} callbacks after ${timeoutMs} ms`)), timeoutMs);
        waiters.push(() => {
          if (check()) clearTimeout(timer);
        });
      }),
    stop: () => {
      hanging.forEach((end) => end());
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void parseCallback(req, Buffer.concat(chunks)).then((cb) => {
        received.push(cb);
        waiters.forEach((w) => w());
        if (receiver.respond === 'hang') {
          hanging.add(() => res.destroy());
          return;
        }
        res.writeHead(receiver.respond).end('ok');
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  running.push(receiver);
  return receiver;
}

/** Resolves after `ms` — only for asserting that something did NOT happen within a window. */
export const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
