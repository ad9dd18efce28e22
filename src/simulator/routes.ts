/**
 * The simulated Exotel endpoints: validation as Exotel does it (400 RestException with a clear
 * message), then the answer in Exotel's JSON. Transport (auth, budget, faults) lives in server.ts.
 */
import { SID_PATTERN, type WireBulkSmsItem, type WireCallListResponse, type WireCallStatus, type WireDirection, type WireExoPhoneListResponse, type WireNumberResponse, type WireV1ExoPhoneListResponse } from '../exotel/types.js';
import type { CallbackContentType } from './callbacks.js';
import { TERMINAL_WIRE_STATUSES, toWireCall, type CallRecord } from './calls.js';
import type { SimEndpoint } from './faults.js';
import { enumParam, intParam, isHttpUrl, listParam, param, SimError, type Params } from './http-kit.js';
import { parseIst } from './ist.js';
import { randomSid } from './prng.js';
import { echoNumber, numberMetadata, parseNumber, smsUnits, SMS_PROGRESS } from './rules.js';
import type { SmsRecord } from './sms.js';
import { toWireSms } from './sms.js';
import type { SimState } from './state.js';

/** Exotel limits the simulator enforces, with where they come from. */
export const EXOTEL_LIMITS = Object.freeze({
  /** Calls/connect TimeLimit: at most 4 h. */
  maxTimeLimitSeconds: 14_400,
  /** Calls/connect TimeOut: ring at most 60 s (TRAI). */
  maxTimeOutSeconds: 60,
  /** Bulk call details: at most 100 Sids. */
  maxBulkSids: 100,
  /** Bulk call details: To/From at most 5 numbers each. */
  maxBulkNumbers: 5,
  /** Bulk call details PageSize: default 50, max 100. */
  defaultPageSize: 50,
  maxPageSize: 100,
  /** Bulk call details: without DateCreated the last 31 days; a range spans ≤ 1 month (31 days), ≤ 6 months back. */
  defaultWindowDays: 31,
  maxRangeDays: 31,
  maxHistoryDays: 183,
  /** Bulk SMS: at most 100 messages per request. */
  maxBulkSms: 100,
  /** SMS Body: at most 2000 characters. */
  maxSmsBodyChars: 2000,
});

const DAY_MS = 24 * 3600 * 1000;
const ALL_CALL_STATUSES: readonly WireCallStatus[] = ['queued', 'ringing', 'in-progress', 'completed', 'failed', 'busy', 'no-answer', 'canceled'];
const DIRECTIONS: readonly WireDirection[] = ['inbound', 'outbound-api', 'outbound-dial'];

export interface RouteDeps {
  state: SimState;
  /** Stores a new call and starts its lifecycle. */
  startCall(call: CallRecord): void;
  /** Stores a new SMS and starts its lifecycle. */
  startSms(sms: SmsRecord): void;
}

export interface RouteRequest {
  /** Form body for POST, query string for GET. */
  params: Params;
  query: Params;
  /** Captured path segments (CallSid, SmsSid, number). */
  segment: string;
}

export interface RouteAnswer {
  status: number;
  body: unknown;
}

type Handler = (req: RouteRequest, deps: RouteDeps) => RouteAnswer;

/** Route table: endpoint name, method, and the path pattern after `/v1/Accounts/{sid}/` (or v2_beta). */
export interface Route {
  endpoint: SimEndpoint;
  method: 'GET' | 'POST';
  version: 'v1' | 'v2_beta';
  /** Matches the rest of the path; group 1 is the captured segment, if any. `.json` is required on v1. */
  pattern: RegExp;
  handle: Handler;
}

// ───────────────────────────── numbers ─────────────────────────────

function requireNumber(params: Params, name: string, prefix: string): string {
  const raw = param(params, name);
  if (raw === null) throw new SimError(400, `${prefix}: No '${name}' specified`);
  const parsed = parseNumber(raw);
  if (!parsed) throw new SimError(400, `${prefix}: '${name}' is not a valid phone number: ${JSON.stringify(raw.slice(0, 40))}`);
  return echoNumber(parsed);
}

const getNumber: Handler = ({ segment }) => {
  const parsed = parseNumber(segment);
  if (!parsed) throw new SimError(400, `Invalid phone number ${JSON.stringify(segment.slice(0, 40))}`);
  if (parsed.kind !== 'indian') throw new SimError(400, `Number metadata is available for Indian numbers only, got ${parsed.e164}`);
  const body: WireNumberResponse = { Numbers: numberMetadata(parsed.nsn) };
  return { status: 200, body };
};

// ───────────────────────────── calls ─────────────────────────────

const FLOW_URL = /^https?:\/\/my\.exotel\.com\/([^/]+)\/exoml\/start_voice\/(\d+)\/?$/;
const CALL_PREFIX = 'Invalid Call Parameters';

const connectCall: Handler = ({ params }, deps) => {
  const from = requireNumber(params, 'From', CALL_PREFIX);
  const rawTo = param(params, 'To');
  const url = param(params, 'Url');
  if (rawTo === null && url === null) throw new SimError(400, `${CALL_PREFIX}: No 'To' specified (or 'Url' to connect to a flow)`);
  if (rawTo !== null && url !== null) throw new SimError(400, `${CALL_PREFIX}: specify either 'To' or 'Url', not both`);
  const to = rawTo !== null ? requireNumber(params, 'To', CALL_PREFIX) : '';
  let flowId: string | null = null;
  if (url !== null) {
    const m = FLOW_URL.exec(url);
    if (!m) throw new SimError(400, `${CALL_PREFIX}: 'Url' must be http://my.exotel.com/{AccountSid}/exoml/start_voice/{FlowId}`);
    if (m[1] !== deps.state.accountSid) throw new SimError(400, `${CALL_PREFIX}: 'Url' names account ${JSON.stringify(m[1])}, not ${deps.state.accountSid}`);
    flowId = m[2] ?? null;
  }
  const callerId = requireNumber(params, 'CallerId', CALL_PREFIX);
  const callType = enumParam(params, 'CallType', ['trans'] as const, CALL_PREFIX) ?? 'trans';
  const timeLimit = intParam(params, 'TimeLimit', 1, EXOTEL_LIMITS.maxTimeLimitSeconds, CALL_PREFIX);
  const timeOut = intParam(params, 'TimeOut', 1, EXOTEL_LIMITS.maxTimeOutSeconds, CALL_PREFIX);
  const waitUrl = param(params, 'WaitUrl');
  if (waitUrl !== null && !isHttpUrl(waitUrl)) throw new SimError(400, `${CALL_PREFIX}: 'WaitUrl' must be an http(s) URL`);
  const record = enumParam(params, 'Record', ['true', 'false'] as const, CALL_PREFIX) === 'true';
  enumParam(params, 'RecordingChannels', ['single', 'dual'] as const, CALL_PREFIX);
  enumParam(params, 'RecordingFormat', ['mp3', 'mp3-hq'] as const, CALL_PREFIX);
  const statusCallbackUrl = param(params, 'StatusCallback');
  if (statusCallbackUrl !== null && !isHttpUrl(statusCallbackUrl)) throw new SimError(400, `${CALL_PREFIX}: 'StatusCallback' must be an http(s) URL`);
  const events = listParam(params, 'StatusCallbackEvents');
  for (const event of events) {
    if (event !== 'terminal' && event !== 'answered') throw new SimError(400, `${CALL_PREFIX}: 'StatusCallbackEvents' values must be terminal or answered, got ${JSON.stringify(event.slice(0, 40))}`);
  }
  const contentType: CallbackContentType =
    enumParam(params, 'StatusCallbackContentType', ['application/json', 'multipart/form-data', 'application/x-www-form-urlencoded'] as const, CALL_PREFIX) ??
    'application/x-www-form-urlencoded';
  const now = Date.now();
  const call: CallRecord = {
    sid: randomSid(),
    accountSid: deps.state.accountSid,
    from,
    to,
    callerId,
    flowId,
    direction: 'outbound-api',
    status: 'queued',
    createdAtMs: now,
    updatedAtMs: now,
    startedAtMs: now,
    endedAtMs: null,
    finalized: false,
    durationSeconds: null,
    conversationSeconds: null,
    price: null,
    answeredBy: null,
    record,
    recordingUrl: null,
    customField: params.get('CustomField'),
    callType,
    timeLimitSeconds: timeLimit,
    timeOutSeconds: timeOut,
    legs: to !== '' ? [{ status: null, onCallSeconds: null }, { status: null, onCallSeconds: null }] : [{ status: null, onCallSeconds: null }],
    statusCallback: statusCallbackUrl !== null ? { url: statusCallbackUrl, events: [...new Set(events)] as Array<'terminal' | 'answered'>, contentType } : null,
  };
  deps.startCall(call);
  // Exotel answers connect with the call already "in-progress" (docs/exotel-fidelity.md),
  // whatever phase its details show next; the lifecycle below still goes queued → ringing → ….
  return { status: 200, body: { Call: { ...toWireCall(call), Status: 'in-progress' } } };
};

function recordingValidity(query: Params): number | null {
  return intParam(query, 'RecordingUrlValidity', 5, 60);
}

const getCall: Handler = ({ segment, query }, deps) => {
  const validity = recordingValidity(query);
  const call = deps.state.calls.get(segment);
  if (!call) throw new SimError(404, `Call ${JSON.stringify(segment.slice(0, 64))} not found`);
  return { status: 200, body: { Call: toWireCall(call, { details: query.get('details') === 'true', recordingUrlValidityMinutes: validity }) } };
};

/** `gte:…;lte:…` (or one of them); values parsed by `parse`. */
function parseRange(raw: string, name: string, parse: (v: string) => number | null): { gte?: number; lte?: number; eq?: number } {
  const out: { gte?: number; lte?: number; eq?: number } = {};
  for (const part of raw.split(';')) {
    const m = /^(gte|lte|eq):(.+)$/.exec(part.trim());
    const value = m ? parse(m[2]!.trim()) : null;
    if (!m || value === null) {
      throw new SimError(400, `Invalid '${name}' filter ${JSON.stringify(raw.slice(0, 80))}: expected e.g. gte:2026-01-01 00:00:00;lte:2026-01-31 23:59:59`);
    }
    out[m[1] as 'gte' | 'lte' | 'eq'] = value;
  }
  return out;
}

/** Cursors are opaque to clients: base64url of "createdAtMs.sid". */
function encodeCursor(call: CallRecord): string {
  return Buffer.from(`${call.createdAtMs}.${call.sid}`).toString('base64url');
}
function decodeCursor(raw: string, name: string): { createdAtMs: number; sid: string } {
  const m = /^(\d+)\.(.+)$/.exec(Buffer.from(raw, 'base64url').toString('utf8'));
  if (!m || !SID_PATTERN.test(m[2]!)) throw new SimError(400, `Invalid '${name}' cursor: take it from NextPageUri/PrevPageUri`);
  return { createdAtMs: Number(m[1]), sid: m[2]! };
}

const listCalls: Handler = ({ query }, deps) => {
  const now = Date.now();
  const sids = listParam(query, 'Sid');
  if (sids.length > EXOTEL_LIMITS.maxBulkSids) throw new SimError(400, `Too many Sids: ${sids.length} given, at most ${EXOTEL_LIMITS.maxBulkSids}`);
  const numbers = (name: 'To' | 'From'): Set<string> | null => {
    const raw = listParam(query, name);
    if (raw.length === 0) return null;
    if (raw.length > EXOTEL_LIMITS.maxBulkNumbers) throw new SimError(400, `Too many '${name}' numbers: ${raw.length} given, at most ${EXOTEL_LIMITS.maxBulkNumbers}`);
    return new Set(raw.map((n) => {
      const parsed = parseNumber(n);
      if (!parsed) throw new SimError(400, `Invalid '${name}' filter: ${JSON.stringify(n.slice(0, 40))} is not a valid phone number`);
      return echoNumber(parsed);
    }));
  };
  const to = numbers('To');
  const from = numbers('From');
  const statusValues = listParam(query, 'Status');
  for (const s of statusValues) {
    if (!(ALL_CALL_STATUSES as readonly string[]).includes(s)) throw new SimError(400, `Invalid 'Status' filter ${JSON.stringify(s.slice(0, 40))}: expected one of ${ALL_CALL_STATUSES.join(', ')}`);
  }
  const statuses = statusValues.length > 0 ? new Set(statusValues) : null;
  const direction = enumParam(query, 'Direction', DIRECTIONS);
  const sortBy = enumParam(query, 'SortBy', ['DateCreated:asc', 'DateCreated:desc'] as const) ?? 'DateCreated:desc';
  const pageSize = intParam(query, 'PageSize', 1, EXOTEL_LIMITS.maxPageSize) ?? EXOTEL_LIMITS.defaultPageSize;
  recordingValidity(query);

  let lower = now - EXOTEL_LIMITS.defaultWindowDays * DAY_MS;
  let upper = now;
  const dateCreated = param(query, 'DateCreated');
  if (dateCreated !== null) {
    const range = parseRange(dateCreated, 'DateCreated', parseIst);
    if (range.eq !== undefined) throw new SimError(400, `Invalid 'DateCreated' filter: use gte and/or lte`);
    // Timestamps have whole seconds: lte covers its whole second.
    upper = range.lte !== undefined ? range.lte + 999 : Math.min(now, (range.gte ?? now) + EXOTEL_LIMITS.maxRangeDays * DAY_MS);
    lower = range.gte ?? upper - EXOTEL_LIMITS.maxRangeDays * DAY_MS;
    if (lower > upper) throw new SimError(400, `Invalid 'DateCreated' filter: gte is after lte`);
    if (upper - lower > EXOTEL_LIMITS.maxRangeDays * DAY_MS + 999) throw new SimError(400, `Invalid 'DateCreated' filter: the range may span at most one month (${EXOTEL_LIMITS.maxRangeDays} days)`);
    if (lower < now - EXOTEL_LIMITS.maxHistoryDays * DAY_MS) throw new SimError(400, `Invalid 'DateCreated' filter: records are kept for 6 months only`);
  }
  const secondsOrNumber = (v: string): number | null => (/^\d+(\.\d+)?s?$/.test(v) ? Number.parseFloat(v) : null);
  const durationRaw = param(query, 'Duration');
  const duration = durationRaw !== null ? parseRange(durationRaw, 'Duration', secondsOrNumber) : null;
  const priceRaw = param(query, 'Price');
  const price = priceRaw !== null ? parseRange(priceRaw, 'Price', secondsOrNumber) : null;
  const inRange = (value: number | null, r: { gte?: number; lte?: number; eq?: number } | null): boolean =>
    r === null || (value !== null && (r.gte === undefined || value >= r.gte) && (r.lte === undefined || value <= r.lte) && (r.eq === undefined || value === r.eq));

  const after = param(query, 'After');
  const before = param(query, 'Before');
  if (after !== null && before !== null) throw new SimError(400, `Give either 'After' or 'Before', not both`);
  const cursor = after !== null ? decodeCursor(after, 'After') : before !== null ? decodeCursor(before, 'Before') : null;

  const sidSet = sids.length > 0 ? new Set(sids) : null;
  const dir = sortBy === 'DateCreated:asc' ? 1 : -1;
  const compare = (a: { createdAtMs: number; sid: string }, b: { createdAtMs: number; sid: string }): number =>
    dir * (a.createdAtMs - b.createdAtMs || (a.sid < b.sid ? -1 : a.sid > b.sid ? 1 : 0));
  const matching = [...deps.state.calls.values()]
    .filter(
      (c) =>
        // Exotel: "Bulk Call Details will not provide ongoing calls' details".
        TERMINAL_WIRE_STATUSES.has(c.status) &&
        c.createdAtMs >= lower &&
        c.createdAtMs <= upper &&
        (sidSet === null || sidSet.has(c.sid)) &&
        (to === null || to.has(c.to)) &&
        (from === null || from.has(c.from)) &&
        (statuses === null || statuses.has(c.status)) &&
        (direction === null || c.direction === direction) &&
        inRange(c.finalized ? c.durationSeconds : null, duration) &&
        inRange(c.finalized && c.price !== null ? Number(c.price) : null, price),
    )
    .sort(compare);

  let page: CallRecord[];
  if (cursor === null) page = matching.slice(0, pageSize);
  else if (after !== null) page = matching.filter((c) => compare(c, cursor) > 0).slice(0, pageSize);
  else {
    const earlier = matching.filter((c) => compare(c, cursor) < 0);
    page = earlier.slice(Math.max(0, earlier.length - pageSize));
  }
  const first = page[0];
  const last = page[page.length - 1];
  const hasNext = last !== undefined && compare(matching[matching.length - 1]!, last) > 0;
  const hasPrev = first !== undefined && compare(matching[0]!, first) < 0;

  const base = new URLSearchParams();
  for (const [k, v] of query) if (k !== 'After' && k !== 'Before' && k !== 'PageSize') base.append(k, v);
  base.set('PageSize', String(pageSize));
  const uri = (extra?: [string, string]): string => {
    const q = new URLSearchParams(base);
    if (extra) q.set(extra[0], extra[1]);
    return `/v1/Accounts/${deps.state.accountSid}/Calls.json?${q.toString()}`;
  };
  const details = query.get('details') === 'true';
  const body: WireCallListResponse = {
    Metadata: {
      Total: matching.length,
      PageSize: pageSize,
      FirstPageUri: uri(),
      PrevPageUri: hasPrev && first ? uri(['Before', encodeCursor(first)]) : null,
      NextPageUri: hasNext && last ? uri(['After', encodeCursor(last)]) : null,
    },
    Calls: page.map((c) => toWireCall(c, { details })),
  };
  return { status: 200, body };
};

// ───────────────────────────── ExoPhones (v2_beta, snake_case) ─────────────────────────────

const listExoPhones: Handler = ({ query }, deps) => {
  // Exotel's samples page with Page/PageSize (0-based); other clients send page/page_size: both are read.
  const pageQuery = new URLSearchParams();
  const pick = (...names: string[]): void => {
    for (const name of names) {
      const v = query.get(name);
      if (v !== null) pageQuery.set(names[0]!, v);
    }
  };
  pick('page', 'Page');
  pick('page_size', 'PageSize');
  const page = intParam(pageQuery, 'page', 0, 1_000_000) ?? 0;
  const pageSize = intParam(pageQuery, 'page_size', 1, 100) ?? 50;
  const all = deps.state.exoPhones;
  const items = all.slice(page * pageSize, (page + 1) * pageSize);
  // As Exotel's sample shows: absolute URIs on another host, and page_size echoed as 50 whatever was
  // asked (docs/exotel-fidelity.md, "ExoPhones") — a client must not page by it.
  const uriFor = (p: number): string => `http://twilix.exotel.com/v2_beta/Accounts/${deps.state.accountSid}/IncomingPhoneNumbers?Page=${p}&PageSize=${pageSize}`;
  const body: WireExoPhoneListResponse = {
    page,
    page_size: EXOTEL_LIMITS.defaultPageSize,
    uri: uriFor(page),
    first_page_uri: uriFor(0),
    previous_page_uri: page > 0 ? uriFor(page - 1) : null,
    next_page_uri: (page + 1) * pageSize < all.length ? uriFor(page + 1) : null,
    total: all.length,
    incoming_phone_numbers: items,
  };
  return { status: 200, body };
};

/**
 * v1 `IncomingPhoneNumbers.json`, the listing production integrations read:
 * `{"IncomingPhoneNumbers": [{"IncomingPhoneNumber": {"Sid", "PhoneNumber", "FriendlyName", "Capabilities"}}]}`.
 * Exotel documents no paging for it; the simulator pages with Page/PageSize (default 50) and adds a
 * NextPageUri only when there is a next page.
 */
const listExoPhonesV1: Handler = ({ query }, deps) => {
  const page = intParam(query, 'Page', 0, 1_000_000) ?? 0;
  const pageSize = intParam(query, 'PageSize', 1, 100) ?? 50;
  const all = deps.state.exoPhones;
  const items = all.slice(page * pageSize, (page + 1) * pageSize);
  const body: WireV1ExoPhoneListResponse = {
    IncomingPhoneNumbers: items.map((p) => ({
      IncomingPhoneNumber: {
        Sid: p.sid,
        PhoneNumber: p.phone_number,
        FriendlyName: p.friendly_name ?? '',
        Capabilities: Object.fromEntries(Object.entries((p.capabilities ?? {}) as Record<string, boolean>).map(([k, v]) => [k[0]!.toUpperCase() + k.slice(1), v])),
      },
    })),
  };
  if ((page + 1) * pageSize < all.length) body.NextPageUri = `/v1/Accounts/${deps.state.accountSid}/IncomingPhoneNumbers.json?Page=${page + 1}&PageSize=${pageSize}`;
  return { status: 200, body };
};

// ───────────────────────────── SMS ─────────────────────────────

const SMS_PREFIX = 'Invalid Parameters';

interface SmsCommon {
  encodingType: 'plain' | 'unicode';
  statusCallback: string | null;
  customField: string | null;
  customId: string | null;
}

function smsCommon(params: Params): SmsCommon {
  enumParam(params, 'Priority', ['normal', 'high'] as const, SMS_PREFIX);
  const encodingType = enumParam(params, 'EncodingType', ['plain', 'unicode'] as const, SMS_PREFIX);
  const statusCallback = param(params, 'StatusCallback');
  if (statusCallback !== null && !isHttpUrl(statusCallback)) throw new SimError(400, `${SMS_PREFIX}: 'StatusCallback' must be an http(s) URL`);
  return { encodingType: encodingType ?? 'plain', statusCallback, customField: params.get('CustomField'), customId: params.get('CustomId') };
}

function checkBody(body: string | null, where = "'Body'"): string {
  if (body === null || body.trim() === '') throw new SimError(400, `${SMS_PREFIX}: No ${where} specified`);
  if ([...body].length > EXOTEL_LIMITS.maxSmsBodyChars) throw new SimError(400, `${SMS_PREFIX}: ${where} is longer than ${EXOTEL_LIMITS.maxSmsBodyChars} characters`);
  return body;
}

function checkSender(from: string | null): string {
  if (from === null) throw new SimError(400, `${SMS_PREFIX}: No 'From' specified`);
  // A sender is an ExoPhone number or an alphanumeric sender id (header), e.g. EXOTEL.
  const parsed = parseNumber(from);
  if (parsed) return echoNumber(parsed);
  if (/^[A-Za-z0-9]{3,11}$/.test(from)) return from;
  throw new SimError(400, `${SMS_PREFIX}: 'From' must be an ExoPhone or a sender id (3–11 letters/digits), got ${JSON.stringify(from.slice(0, 40))}`);
}

function newSms(deps: RouteDeps, from: string, to: string, body: string, common: SmsCommon): SmsRecord {
  const now = Date.now();
  const [queued] = SMS_PROGRESS;
  const sms: SmsRecord = {
    sid: randomSid(),
    accountSid: deps.state.accountSid,
    from,
    to,
    body,
    encodingType: common.encodingType,
    units: smsUnits(body, common.encodingType),
    status: queued.status,
    detailedStatusCode: queued.detailedStatusCode,
    detailedStatus: queued.detailedStatus,
    createdAtMs: now,
    updatedAtMs: now,
    sentAtMs: null,
    price: null,
    customId: common.customId,
    customField: common.customField,
    statusCallback: common.statusCallback,
  };
  deps.startSms(sms);
  return sms;
}

const sendSms: Handler = ({ params }, deps) => {
  const from = checkSender(param(params, 'From'));
  const to = requireNumber(params, 'To', SMS_PREFIX);
  const body = checkBody(params.get('Body'));
  const common = smsCommon(params);
  return { status: 200, body: { SMSMessage: toWireSms(newSms(deps, from, to, body, common)) } };
};

/** Messages[i][To], Messages[i][Body], Messages[i][From] in index order. */
function dynamicMessages(params: Params): Array<{ to: string; body: string | null; from: string | null }> {
  const byIndex = new Map<number, { to: string; body: string | null; from: string | null }>();
  for (const [key, value] of params) {
    const m = /^Messages\[(\d+)\]\[(To|Body|From)\]$/.exec(key);
    if (!m) continue;
    const index = Number(m[1]);
    if (index > 100_000) throw new SimError(400, `${SMS_PREFIX}: Messages index ${index} is out of range`);
    const entry = byIndex.get(index) ?? { to: '', body: null, from: null };
    if (m[2] === 'To') entry.to = value;
    else if (m[2] === 'Body') entry.body = value;
    else entry.from = value;
    byIndex.set(index, entry);
  }
  return [...byIndex.entries()].sort((a, b) => a[0] - b[0]).map(([, v]) => v);
}

const sendBulkSms: Handler = ({ params }, deps) => {
  const common = smsCommon(params);
  const dynamic = dynamicMessages(params);
  const staticTo = listParam(params, 'To');
  if (dynamic.length > 0 && staticTo.length > 0) throw new SimError(400, `${SMS_PREFIX}: use either To (same Body) or Messages[i][To]/[Body], not both`);
  const defaultFrom = param(params, 'From');
  let messages: Array<{ to: string; body: string; from: string | null }>;
  if (dynamic.length > 0) {
    if (dynamic.length > EXOTEL_LIMITS.maxBulkSms) throw new SimError(400, `${SMS_PREFIX}: at most ${EXOTEL_LIMITS.maxBulkSms} messages per request, got ${dynamic.length}`);
    messages = dynamic.map((m, i) => ({ to: m.to, body: checkBody(m.body, `'Messages[${i}][Body]'`), from: m.from }));
  } else {
    if (staticTo.length === 0) throw new SimError(400, `${SMS_PREFIX}: No 'To' or 'Messages' specified`);
    if (staticTo.length > EXOTEL_LIMITS.maxBulkSms) throw new SimError(400, `${SMS_PREFIX}: at most ${EXOTEL_LIMITS.maxBulkSms} numbers per request, got ${staticTo.length}`);
    const body = checkBody(params.get('Body'));
    messages = staticTo.map((to) => ({ to, body, from: null }));
  }
  const senders = messages.map((m) => checkSender(m.from ?? defaultFrom));
  // Per-message errors (bad numbers) answer in their own slot; the rest are sent.
  const items: WireBulkSmsItem[] = messages.map((m, i) => {
    const parsed = parseNumber(m.to);
    if (!parsed) return { RestException: { Status: 400, Message: `Invalid Recipient [${m.to.slice(0, 40)}]`, To: m.to.slice(0, 40) } };
    return { SMSMessage: toWireSms(newSms(deps, senders[i]!, echoNumber(parsed), m.body, common)) };
  });
  return { status: 200, body: items };
};

const getSms: Handler = ({ segment }, deps) => {
  const sms = deps.state.sms.get(segment);
  if (!sms) throw new SimError(404, `SMS ${JSON.stringify(segment.slice(0, 64))} not found`);
  return { status: 200, body: { SMSMessage: toWireSms(sms) } };
};

/** Every simulated endpoint. `.json` is required on v1 (the gateway always asks for JSON). */
export const ROUTES: readonly Route[] = [
  { endpoint: 'calls.connect', method: 'POST', version: 'v1', pattern: /^Calls\/connect\.json$/, handle: connectCall },
  { endpoint: 'calls.list', method: 'GET', version: 'v1', pattern: /^Calls\.json$/, handle: listCalls },
  { endpoint: 'calls.get', method: 'GET', version: 'v1', pattern: /^Calls\/(?!connect\.json$)([^/]+)\.json$/, handle: getCall },
  { endpoint: 'numbers.get', method: 'GET', version: 'v1', pattern: /^Numbers\/([^/]+)\.json$/, handle: getNumber },
  { endpoint: 'sms.send', method: 'POST', version: 'v1', pattern: /^Sms\/send\.json$/, handle: sendSms },
  { endpoint: 'sms.bulksend', method: 'POST', version: 'v1', pattern: /^Sms\/bulksend\.json$/, handle: sendBulkSms },
  { endpoint: 'sms.get', method: 'GET', version: 'v1', pattern: /^(?:SMS|Sms)\/Messages\/([^/]+)\.json$/, handle: getSms },
  { endpoint: 'exophones.list', method: 'GET', version: 'v1', pattern: /^IncomingPhoneNumbers\.json$/, handle: listExoPhonesV1 },
  { endpoint: 'exophones.list', method: 'GET', version: 'v2_beta', pattern: /^IncomingPhoneNumbers(?:\.json)?$/, handle: listExoPhones },
];

/** Same route without `.json`: Exotel would answer XML, which the simulator does not speak. */
export function isXmlVariant(version: string, rest: string): boolean {
  return version === 'v1' && ROUTES.some((r) => r.version === 'v1' && r.pattern.test(`${rest}.json`));
}

