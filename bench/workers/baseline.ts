/**
 * The physical baselines, one per process, chosen by argv[2]:
 * - `http-json`: bare node:http answering every request with the gateway's own warm response bytes;
 * - `express-200`: a bare express app whose one route only answers 200 "OK" (as the webhook route does);
 * - `ws-broadcast`: raw `ws` on /graphql; POST /broadcast?callSid=… builds the frame a graphql-ws
 *   subscriber of callEvents receives, serialises it once and sends it to every socket.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { WebSocketServer } from 'ws';
import { serveIpc } from './ipc.js';

/** What the bench process learns when a baseline is up. */
export interface BaselineInfo {
  url: string;
  wsUrl: string;
}

const role = process.argv[2];

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

async function listen(server: ReturnType<typeof createServer>): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

let handler: (req: IncomingMessage, res: ServerResponse) => void;
let wss: WebSocketServer | undefined;
let served = 0;

switch (role) {
  case 'http-json': {
    const body = Buffer.from(process.env.BENCH_JSON_BODY ?? '{}');
    handler = (req, res) => {
      // The request body is read, as any real endpoint must, before answering.
      void readBody(req).then(() => {
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': body.length });
        res.end(body);
      });
    };
    break;
  }
  case 'express-200': {
    const app = express();
    app.disable('x-powered-by');
    app.use((_req, res) => {
      res.status(200).type('text/plain').send('OK');
    });
    handler = app;
    break;
  }
  case 'ws-broadcast': {
    handler = (req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname !== '/broadcast') {
        res.writeHead(404).end();
        return;
      }
      void readBody(req).then(() => {
        const callSid = url.searchParams.get('callSid') ?? '';
        served++;
        const event = { id: `${Date.now()}-${served}`, callSid, status: 'COMPLETED', at: new Date().toISOString(), source: 'WEBHOOK' };
        // Serialised once, sent to every socket: the physical floor of a broadcast.
        const frame = JSON.stringify({ id: '1', type: 'next', payload: { data: { callEvents: event } } });
        res.writeHead(200, { 'content-type': 'text/plain' }).end('OK');
        for (const socket of wss!.clients) socket.send(frame);
      });
    };
    break;
  }
  default:
    throw new Error(`unknown baseline role ${String(role)}`);
}

const server = createServer(handler);
if (role === 'ws-broadcast') wss = new WebSocketServer({ server, path: '/graphql' });
const url = await listen(server);
serveIpc({ url, wsUrl: `${url.replace(/^http/, 'ws')}/graphql` } satisfies BaselineInfo, { sockets: () => wss?.clients.size ?? 0 }, async () => {
  for (const socket of wss?.clients ?? []) socket.terminate();
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});
