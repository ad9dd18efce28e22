/**
 * The physical baselines, one per process, chosen by argv[2]:
 * - `http-json`: bare node:http answering every request with the gateway's own warm response bytes;
 * - `express-200`: a bare express app whose one route only answers 200 "OK" (as the webhook route does);
 * - `express-redis`: the same route, but it reads the form body and answers 200 only once one EVALSHA has
 *   appended it to a stream on Redis (BENCH_REDIS_URL): the floor of a webhook that stores before it
 *   answers, with one round trip and nothing else;
 * - `ws-broadcast`: raw `ws` on /graphql; POST /broadcast?callSid=… builds the frame a graphql-ws
 *   subscriber of callEvents receives, serialises it once and sends it to every socket;
 * - `graphql-ws-floor`: graphql-ws's own server (useServer on `ws`) on /graphql, a subscription whose
 *   stream is a bare iterator; POST /broadcast?callSid=… builds the callEvents result once and hands that
 *   one object to every subscriber's iterator, so graphql-ws writes each `next` frame with no execution,
 *   topic or feed in front of it: the least a server that lets graphql-ws send its frames can do;
 * - `apollo-dataloader`: what a team writes in a day — plain Apollo Server 5 on express 5, a DataLoader per
 *   request, keyv (its in-memory store) as the cache, and Exotel's call details fetched over HTTP from the
 *   simulator (BENCH_EXOTEL_BASE_URL, BENCH_EXOTEL_ACCOUNT_SID, BENCH_EXOTEL_AUTH) on a miss.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApolloServer } from '@apollo/server';
import { expressMiddleware } from '@as-integrations/express5';
import DataLoader from 'dataloader';
import express from 'express';
import { Redis } from 'ioredis';
import { Keyv } from 'keyv';
import { buildSchema, parse, type DocumentNode, type ExecutionResult } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
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

/**
 * POST /broadcast?callSid=…: answers 200, then hands the callEvents event a webhook would publish to
 * `send`; any other path is a 404.
 */
function broadcastRoute(send: (event: Record<string, string>) => void): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== '/broadcast') {
      res.writeHead(404).end();
      return;
    }
    void readBody(req).then(() => {
      served++;
      const event = { id: `${Date.now()}-${served}`, callSid: url.searchParams.get('callSid') ?? '', status: 'COMPLETED', at: new Date().toISOString(), source: 'WEBHOOK' };
      res.writeHead(200, { 'content-type': 'text/plain' }).end('OK');
      send(event);
    });
  };
}

let handler: (req: IncomingMessage, res: ServerResponse) => void;
let wss: WebSocketServer | undefined;
let graphqlWs: { schema: ReturnType<typeof buildSchema>; subscribers: Set<FloorStream> } | undefined;

/** Subscribers handed an event per turn of the event loop (the gateway's DELIVERY_SLICE). */
const FLOOR_SLICE = 500;

/** A subscription's stream on the graphql-ws floor: next() waits for the next pushed result. */
class FloorStream implements AsyncIterableIterator<ExecutionResult> {
  private waiting: ((step: IteratorResult<ExecutionResult>) => void) | undefined;
  constructor(private readonly all: Set<FloorStream>) {
    all.add(this);
  }
  push(value: ExecutionResult): void {
    const resolve = this.waiting;
    this.waiting = undefined;
    resolve?.({ value, done: false });
  }
  next(): Promise<IteratorResult<ExecutionResult>> {
    return new Promise((resolve) => (this.waiting = resolve));
  }
  return(): Promise<IteratorResult<ExecutionResult>> {
    this.all.delete(this);
    const resolve = this.waiting;
    this.waiting = undefined;
    resolve?.({ value: undefined, done: true });
    return Promise.resolve({ value: undefined, done: true });
  }
  [Symbol.asyncIterator](): this {
    return this;
  }
}
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
  case 'express-redis': {
    const redis = new Redis(process.env.BENCH_REDIS_URL ?? '', { maxRetriesPerRequest: 0 });
    // One script, one round trip: the event is stored when the reply comes.
    redis.defineCommand('floorAppend', { numberOfKeys: 1, lua: `return redis.call('XADD', KEYS[1], 'MAXLEN', '~', 100000, '*', 'e', ARGV[1])` });
    const append = (body: string) => (redis as Redis & { floorAppend(key: string, json: string): Promise<string> }).floorAppend('egg-bench-floor:events', body);
    const app = express();
    app.disable('x-powered-by');
    app.use(express.urlencoded({ extended: false }), (req, res) => {
      append(JSON.stringify(req.body)).then(
        () => res.status(200).type('text/plain').send('OK'),
        () => res.status(503).type('text/plain').send('Service Unavailable'),
      );
    });
    handler = app;
    break;
  }
  case 'ws-broadcast': {
    handler = broadcastRoute((event) => {
      // Serialised once, sent to every socket: the physical floor of a broadcast.
      const frame = JSON.stringify({ id: '1', type: 'next', payload: { data: { callEvents: event } } });
      for (const socket of wss!.clients) socket.send(frame);
    });
    break;
  }
  case 'graphql-ws-floor': {
    const subscribers = new Set<FloorStream>();
    graphqlWs = { schema: buildSchema('type Query { ok: Boolean } type CallEvent { id: ID callSid: ID status: String at: String source: String } type Subscription { callEvents: CallEvent }'), subscribers };
    handler = broadcastRoute((event) => {
      const result = { data: { callEvents: event } };
      // In slices with a turn of the event loop between them, as the gateway's topics deliver (src/live/topics.ts).
      const all = [...subscribers];
      let done = 0;
      const slice = () => {
        for (const end = Math.min(all.length, done + FLOOR_SLICE); done < end; done++) all[done]!.push(result);
        if (done < all.length) setImmediate(slice);
      };
      slice();
    });
    break;
  }
  case 'apollo-dataloader': {
    handler = await apolloDataLoader();
    break;
  }
  default:
    throw new Error(`unknown baseline role ${String(role)}`);
}

/** The plain Apollo Server 5 + DataLoader + keyv service (see the header). */
async function apolloDataLoader(): Promise<express.Express> {
  const base = process.env.BENCH_EXOTEL_BASE_URL ?? '';
  const account = process.env.BENCH_EXOTEL_ACCOUNT_SID ?? '';
  const authorization = `Basic ${process.env.BENCH_EXOTEL_AUTH ?? ''}`;
  const cache = new Keyv<Record<string, unknown>>();
  const upper = (v: unknown) => (typeof v === 'string' ? v.toUpperCase().replace(/-/g, '_') : null);
  const istToIso = (v: unknown) => (typeof v === 'string' ? `${v.replace(' ', 'T')}+05:30` : null);
  async function fetchCall(sid: string): Promise<Record<string, unknown> | null> {
    const cached = await cache.get(`call:${sid}`);
    if (cached) return cached;
    const res = await fetch(`${base}/v1/Accounts/${account}/Calls/${encodeURIComponent(sid)}.json`, { headers: { authorization } });
    if (res.status === 404) return null;
    if (!res.ok) throw new Error(`Exotel answered ${res.status}`);
    const wire = ((await res.json()) as { Call: Record<string, unknown> }).Call;
    const call = {
      sid: wire.Sid,
      status: upper(wire.Status),
      from: wire.From,
      to: wire.To,
      direction: upper(wire.Direction),
      startTime: istToIso(wire.StartTime),
      endTime: istToIso(wire.EndTime),
      durationSeconds: wire.Duration === null ? null : Number(wire.Duration),
      price: wire.Price === null ? null : Number(wire.Price),
    };
    await cache.set(`call:${sid}`, call, 6 * 60 * 60_000);
    return call;
  }
  const apollo = new ApolloServer<{ calls: DataLoader<string, Record<string, unknown> | null> }>({
    typeDefs: `
      type Call { sid: ID! status: String! from: String! to: String! direction: String startTime: String endTime: String durationSeconds: Int price: Float }
      type Query { call(sid: ID!): Call }
    `,
    resolvers: { Query: { call: (_: unknown, args: { sid: string }, ctx: { calls: DataLoader<string, Record<string, unknown> | null> }) => ctx.calls.load(args.sid) } },
  });
  await apollo.start();
  const app = express();
  app.use(
    '/graphql',
    express.json(),
    expressMiddleware(apollo, { context: async () => ({ calls: new DataLoader<string, Record<string, unknown> | null>((sids) => Promise.all(sids.map(fetchCall))) }) }),
  );
  return app;
}

const server = createServer(handler);
if (role === 'ws-broadcast' || role === 'graphql-ws-floor') wss = new WebSocketServer({ server, path: '/graphql' });
if (graphqlWs && wss) {
  const { schema, subscribers } = graphqlWs;
  // One parsed document per query text, as the gateway keeps (graphql-ws alone parses every subscribe).
  const documents = new Map<string, DocumentNode>();
  useServer(
    {
      schema,
      onSubscribe: (_ctx, _id, payload) => {
        let document = documents.get(payload.query);
        if (!document) documents.set(payload.query, (document = parse(payload.query)));
        return { schema, document, operationName: payload.operationName ?? null, variableValues: payload.variables ?? null };
      },
      subscribe: () => new FloorStream(subscribers),
    },
    wss,
  );
}
const url = await listen(server);
serveIpc({ url, wsUrl: `${url.replace(/^http/, 'ws')}/graphql` } satisfies BaselineInfo, { sockets: () => wss?.clients.size ?? 0 }, async () => {
  for (const socket of wss?.clients ?? []) socket.terminate();
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});
