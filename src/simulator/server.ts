/**
 * The simulator's HTTP edge: routing, Basic auth, account check, faults, rate budget, body parsing,
 * and the admin routes under /__sim/ (faults and recorded requests for a simulator in another process).
 * Every request is answered with an Exotel-shaped body; nothing a client sends can crash it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { reshape, sendExotelError } from './answer-forms.js';
import type { FaultEngine, RequestFault, SimEndpoint } from './faults.js';
import { checkIncomingInput, type IncomingCallInput, type IncomingFlows } from './incoming.js';
import { checkFault, checkHoldFilter, type CallHoldFilter, type Fault } from './faults.js';
import { parseForm, readBody, restException, sendJson, SimError } from './http-kit.js';
import { SID_PATTERN } from '../exotel/types.js';
import type { RateBudget } from './rate-budget.js';
import { isXmlVariant, ROUTES, type RouteDeps } from './routes.js';

/** One request the simulator received (admin routes excluded). */
export interface RecordedRequest {
  method: string;
  /** Path without the query string, as sent (not percent-decoded). */
  path: string;
  query: Record<string, string>;
  /** The simulated endpoint, or 'unknown' for paths that match none. */
  endpoint: SimEndpoint | 'unknown';
  /** HTTP status answered; 0 while pending or when the connection was dropped. */
  status: number;
  /** Epoch milliseconds when it arrived. */
  at: number;
}

export interface ServerContext extends RouteDeps {
  apiKey: string;
  apiToken: string;
  budget: RateBudget;
  faults: FaultEngine;
  requests: RecordedRequest[];
  sleep(ms: number): Promise<void>;
  log(line: string): void;
  /** Admin: recorded callbacks, for GET /__sim/callbacks. */
  callbackRecords(): unknown[];
  /** Admin: incoming calls played through a flow (/__sim/incoming-calls). */
  incoming: IncomingFlows;
}

/** Recorded requests kept (oldest dropped first). */
export const MAX_RECORDED = 10_000;

const ACCOUNT_PATH = /^\/(v1|v2_beta)\/Accounts\/([^/]+)\/(.+)$/;
const SUPPORTED_METHODS = new Set(['GET', 'POST']);

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** True when the Authorization header carries the simulator's key:token (never logged). */
function authorized(req: IncomingMessage, key: string, token: string): boolean {
  const header = req.headers.authorization;
  if (typeof header !== 'string' || !/^Basic /i.test(header)) return false;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return false;
  return safeEqual(decoded.slice(0, colon), key) && safeEqual(decoded.slice(colon + 1), token);
}

/** Answers a request fault; returns true when the request is finished (or dropped). */
async function applyFault(fault: RequestFault, res: ServerResponse, ctx: ServerContext): Promise<boolean> {
  switch (fault.kind) {
    case 'error': {
      const status = fault.status ?? 500;
      const message = status === 500 ? 'Internal Server Error' : status === 502 ? 'Bad Gateway' : 'Service Unavailable';
      sendJson(res, status, restException(status, message));
      return true;
    }
    case 'slow':
      await ctx.sleep(fault.delayMs);
      return false;
    case 'rate-limit': {
      const retryAfter = fault.retryAfterSeconds === undefined ? 1 : fault.retryAfterSeconds;
      sendJson(res, 429, restException(429, 'Too Many Requests'), retryAfter === null ? {} : { 'retry-after': String(retryAfter) });
      return true;
    }
    case 'insufficient-balance': {
      const status = fault.status ?? 403;
      sendJson(res, status, restException(status, status === 403 ? 'Insufficient balance' : 'Payment Required: plan usage limit reached'));
      return true;
    }
    case 'drop-connection':
      res.socket?.destroy();
      return true;
    case 'exotel-error':
      sendExotelError(res, fault);
      return true;
    case 'truncate-bulk':
    case 'answer-form':
    case 'slow-answer':
      // Applied to the answer (below).
      return false;
  }
}

/** A bulk SMS answer without its last `drop` messages (the truncate-bulk fault). */
function truncated(body: unknown, drop: number): unknown {
  // Exotel answers bulk sends with a bare JSON array (one item per message).
  return Array.isArray(body) ? body.slice(0, Math.max(0, body.length - drop)) : body;
}

async function handleAdmin(req: IncomingMessage, res: ServerResponse, path: string, ctx: ServerContext): Promise<void> {
  const method = req.method ?? 'GET';
  if (path === '/__sim/health' && method === 'GET') return sendJson(res, 200, { simulator: 'exotel', accountSid: ctx.state.accountSid });
  if (path === '/__sim/faults') {
    if (method === 'GET') return sendJson(res, 200, { faults: ctx.faults.controls.list() });
    if (method === 'DELETE') {
      ctx.faults.controls.clear();
      return sendJson(res, 200, { faults: [] });
    }
    if (method === 'POST') {
      const { body, tooLarge } = await readBody(req);
      if (tooLarge) throw new SimError(413, 'Request body too large');
      let parsed: unknown;
      try {
        parsed = JSON.parse(body.toString('utf8'));
      } catch {
        throw new SimError(400, 'Send a JSON fault, a list of faults, {"clear": true} or {"releaseCalls": {…}}');
      }
      if (typeof parsed === 'object' && parsed !== null && (parsed as { clear?: unknown }).clear === true) {
        ctx.faults.controls.clear();
        return sendJson(res, 200, { faults: [] });
      }
      if (typeof parsed === 'object' && parsed !== null && 'releaseCalls' in parsed) {
        // {"releaseCalls": {}} releases every hold; {"releaseCalls": {"at": "ringing", "sid": "…"}} only those.
        const filter = (parsed as { releaseCalls: unknown }).releaseCalls;
        const problem = checkHoldFilter(filter);
        if (problem) throw new SimError(400, `Bad release: ${problem}`);
        ctx.faults.controls.releaseCalls(filter as CallHoldFilter);
        return sendJson(res, 200, { faults: ctx.faults.controls.list() });
      }
      const faults = Array.isArray(parsed) ? parsed : [parsed];
      const problems = faults.map(checkFault).filter((p): p is string => p !== null);
      if (problems.length > 0) throw new SimError(400, `Bad fault: ${problems.join('; ')}`);
      for (const fault of faults) ctx.faults.controls.inject(fault as Fault);
      return sendJson(res, 200, { faults: ctx.faults.controls.list() });
    }
  }
  if (path === '/__sim/requests') {
    if (method === 'GET') return sendJson(res, 200, { requests: ctx.requests });
    if (method === 'DELETE') {
      ctx.requests.length = 0;
      return sendJson(res, 200, { requests: [] });
    }
  }
  if (path === '/__sim/callbacks' && method === 'GET') return sendJson(res, 200, { callbacks: ctx.callbackRecords() });
  if (path === '/__sim/incoming-calls') {
    if (method === 'GET') return sendJson(res, 200, { incomingCalls: ctx.incoming.list() });
    if (method === 'POST') {
      const { body, tooLarge } = await readBody(req);
      if (tooLarge) throw new SimError(413, 'Request body too large');
      let input: unknown = {};
      try {
        if (body.length > 0) input = JSON.parse(body.toString('utf8'));
      } catch {
        throw new SimError(400, 'Send a JSON object, e.g. {"outcome": "answered"}');
      }
      const problem = checkIncomingInput(input);
      if (problem) throw new SimError(400, `Bad incoming call: ${problem}`);
      try {
        return sendJson(res, 201, { incomingCall: ctx.incoming.start(input as IncomingCallInput) });
      } catch (err) {
        throw new SimError(409, (err as Error).message);
      }
    }
  }
  const incomingCall = /^\/__sim\/incoming-calls\/([A-Za-z0-9]{1,64})$/.exec(path);
  if (incomingCall && method === 'GET') {
    const flow = ctx.incoming.get(incomingCall[1]!);
    if (!flow) throw new SimError(404, 'No such incoming call');
    return sendJson(res, 200, { incomingCall: flow });
  }
  const recording = /^\/__sim\/recordings\/([^/]+)\.mp3$/.exec(path);
  if (recording && SID_PATTERN.test(recording[1]!) && method === 'GET') {
    // A placeholder "recording": an ID3 header only, enough for a link that resolves.
    const audio = Buffer.from('ID3\x03\x00\x00\x00\x00\x00\x00', 'latin1');
    res.writeHead(200, { 'content-type': 'audio/mpeg', 'content-length': audio.length });
    res.end(audio);
    return;
  }
  throw new SimError(404, `Unknown simulator admin route ${method} ${path.slice(0, 80)}`);
}

/** The request listener of the simulator's HTTP server. */
export function createRequestHandler(ctx: ServerContext): (req: IncomingMessage, res: ServerResponse) => void {
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const rawPath = q >= 0 ? rawUrl.slice(0, q) : rawUrl;
    const query = new URLSearchParams(q >= 0 ? rawUrl.slice(q + 1) : '');
    const method = req.method ?? 'GET';
    let path: string;
    try {
      path = decodeURIComponent(rawPath);
    } catch {
      path = '';
    }
    if (path.startsWith('/__sim/')) return handleAdmin(req, res, path, ctx);

    const entry: RecordedRequest = { method, path: rawPath, query: Object.fromEntries(query), endpoint: 'unknown', status: 0, at: Date.now() };
    ctx.requests.push(entry);
    // A long-running simulator (gateway in simulator mode) must not grow without bound.
    if (ctx.requests.length > MAX_RECORDED) ctx.requests.splice(0, ctx.requests.length - MAX_RECORDED);
    const done = (): void => {
      entry.status = res.headersSent ? res.statusCode : 0;
    };
    res.on('finish', done);
    res.on('close', done);

    if (path === '') throw new SimError(400, 'Malformed percent-encoding in the path');
    const m = ACCOUNT_PATH.exec(path);
    if (!m) throw new SimError(404, `Unknown path ${path.slice(0, 120)}`);
    const [, version, accountSid, rest] = m as unknown as [string, string, string, string];
    const candidates = ROUTES.filter((r) => r.version === version && r.pattern.test(rest));
    const route = candidates.find((r) => r.method === method);
    if (route) entry.endpoint = route.endpoint;
    if (!SUPPORTED_METHODS.has(method) || (candidates.length > 0 && !route)) {
      const allow = candidates.length > 0 ? [...new Set(candidates.map((r) => r.method))].join(', ') : 'GET, POST';
      throw new SimError(405, `Method ${method.slice(0, 20)} not allowed here (allowed: ${allow})`, { allow });
    }
    if (!route) {
      if (isXmlVariant(version, rest)) throw new SimError(406, 'This simulator answers JSON only: append .json to the path');
      throw new SimError(404, `Unknown path ${path.slice(0, 120)}`);
    }
    if (!authorized(req, ctx.apiKey, ctx.apiToken)) {
      throw new SimError(401, 'Authentication is required: send HTTP Basic credentials (API key : API token)', { 'www-authenticate': 'Basic realm="Exotel"' });
    }
    if (accountSid !== ctx.state.accountSid) throw new SimError(404, `Account ${accountSid.slice(0, 64)} not found`);

    // Faults come before the budget: an injected failure does not spend the account's requests.
    const fault = ctx.faults.takeRequestFault(route.endpoint);
    if (fault && (await applyFault(fault, res, ctx))) return;

    const budget = ctx.budget.take();
    const budgetHeaders = {
      'x-ratelimit-limit': String(budget.limit),
      'x-ratelimit-remaining': String(budget.remaining),
      'x-ratelimit-reset': String(budget.resetEpochSeconds),
    };
    if (!budget.allowed) {
      throw new SimError(429, 'Too Many Requests', { ...budgetHeaders, 'retry-after': String(budget.retryAfterSeconds) });
    }
    let params = query;
    if (method === 'POST') {
      const { body, tooLarge } = await readBody(req);
      if (tooLarge) throw new SimError(413, 'Request body too large (limit 1 MiB)', budgetHeaders);
      params = await parseForm(req, body);
    }
    try {
      const answer = route.handle({ params, query, segment: rest.match(route.pattern)?.[1] ?? '' }, ctx);
      const body =
        fault?.kind === 'truncate-bulk'
          ? truncated(answer.body, fault.drop ?? 1)
          : fault?.kind === 'answer-form'
            ? reshape(fault.form, route.endpoint, answer.body)
            : answer.body;
      if (fault?.kind === 'slow-answer') await ctx.sleep(fault.delayMs);
      sendJson(res, answer.status, body, budgetHeaders);
    } catch (err) {
      if (err instanceof SimError) throw new SimError(err.status, err.message, { ...budgetHeaders, ...err.headers });
      throw err;
    }
  };

  return (req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (err instanceof SimError) {
        sendJson(res, err.status, restException(err.status, err.message), err.headers);
        // An oversized body that was not drained cannot be followed by another request on this socket.
        if (err.status === 413 && !req.complete) res.on('finish', () => req.socket.destroy());
        return;
      }
      ctx.log(`Exotel SIMULATOR internal error on ${req.method} ${(req.url ?? '').split('?')[0]?.slice(0, 120)}: ${(err as Error)?.stack ?? String(err)}`);
      sendJson(res, 500, restException(500, 'Internal Server Error'));
    });
  };
}
