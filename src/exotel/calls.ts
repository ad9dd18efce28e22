/** Voice v1: connect calls, call details, bulk call details (Exotel's call API docs). */
import { badInput, ErrorCode, GatewayError, isGatewayError } from '../errors.js';
import { InvalidDateTimeError, isoToExotel } from './dates.js';
import { readAcceptedAnswer, type ExotelHttp } from './http.js';
import { callDirectionToWire, callStatusToWire, int, parseCall, text, type ParseOptions } from './parse.js';
import { SID_PATTERN } from './sid.js';
import type {
  Call,
  CallListQuery,
  CallPage,
  ConnectCallParams,
  ConnectFlowParams,
  ExotelApi,
  RequestOptions,
  StatusCallbackOptions,
  WireCall,
  WireCallListResponse,
  WireCallResponse,
} from './types.js';

/** Exotel's documented limits for calls. */
export const CALL_LIMITS = {
  /** TimeLimit ≤ 4 h. */
  maxTimeLimitSeconds: 14_400,
  /** TimeOut (ring time per leg) ≤ 60 s (TRAI). */
  maxTimeOutSeconds: 60,
  /** Bulk call details: Sid ≤ 100. */
  maxSids: 100,
  /** Bulk call details: To / From ≤ 5 numbers each. */
  maxNumbersPerFilter: 5,
  /** Bulk call details: PageSize ≤ 100. */
  maxPageSize: 100,
} as const;

type CallsApi = Pick<ExotelApi, 'connectCall' | 'connectCallToFlow' | 'getCall' | 'listCalls'>;

/** The call methods of ExotelApi. */
export function createCallsApi(http: ExotelHttp, accountSid: string, parse: ParseOptions = {}): CallsApi {
  const path = (rest: string) => `${http.v1}/${rest}`;

  async function connect(form: URLSearchParams, options?: RequestOptions): Promise<Call> {
    const json = (await http.request({ endpoint: 'calls.connect', method: 'POST', path: path('Calls/connect.json'), form }, options)) as WireCallResponse;
    const call = readAcceptedAnswer('calls.connect', () => parseCall(callOf(json), parse));
    // Exotel answers connect with the new call already "in-progress" (docs/exotel-fidelity.md,
    // "Connect answers in-progress"), before anyone picked up. Taken literally, every call would look answered the moment it was
    // placed and the `answered` callback would say nothing new; it is placed, not answered: QUEUED, and
    // ringing (from polling) and in-progress (from the answered callback) move it on, forward only.
    return call.status === 'IN_PROGRESS' ? { ...call, status: 'QUEUED' as const } : call;
  }

  return {
    async connectCall(params: ConnectCallParams, options?: RequestOptions) {
      const form = new URLSearchParams();
      form.set('From', required(params.from, 'from'));
      form.set('To', required(params.to, 'to'));
      form.set('CallerId', required(params.callerId, 'callerId'));
      addCommon(form, params);
      if (params.waitUrl !== undefined) form.set('WaitUrl', required(params.waitUrl, 'waitUrl'));
      if (params.record !== undefined) form.set('Record', params.record ? 'true' : 'false');
      if (params.recordingChannels !== undefined) form.set('RecordingChannels', params.recordingChannels);
      if (params.recordingFormat !== undefined) form.set('RecordingFormat', params.recordingFormat);
      return connect(form, options);
    },

    async connectCallToFlow(params: ConnectFlowParams, options?: RequestOptions) {
      const flowId = required(params.flowId, 'flowId');
      // Exotel's flow (app) ids are numeric, and the id becomes a URL path segment: digits only, so it
      // cannot point elsewhere (the GraphQL validation and the simulator hold to the same rule).
      if (!/^[0-9]{1,20}$/.test(flowId)) throw badInput('flowId', 'must be the numeric id of an Exotel flow');
      const form = new URLSearchParams();
      form.set('From', required(params.from, 'from'));
      form.set('CallerId', required(params.callerId, 'callerId'));
      form.set('Url', `http://my.exotel.com/${encodeURIComponent(accountSid)}/exoml/start_voice/${flowId}`);
      addCommon(form, params);
      return connect(form, options);
    },

    async getCall(sid, options = {}) {
      const query = new URLSearchParams();
      if (options.details) query.set('details', 'true');
      const json = (await http.request(
        { endpoint: 'calls.get', method: 'GET', path: path(`Calls/${encodeURIComponent(required(sid, 'sid'))}.json`), query, notFoundAsNull: true },
        options,
      )) as WireCallResponse | null;
      return json === null ? null : parseCall(callOf(json), parse);
    },

    async listCalls(query: CallListQuery, options?: RequestOptions): Promise<CallPage> {
      const params = listParams(query);
      if (query.sids !== undefined && query.sids.length === 0) {
        // Nothing asked for: answer without spending budget.
        return { calls: [], total: 0, pageSize: query.pageSize ?? 0, nextAfter: null, prevBefore: null };
      }
      const json = (await http.request({ endpoint: 'calls.list', method: 'GET', path: path('Calls.json'), query: params }, options)) as WireCallListResponse;
      if (!json || typeof json !== 'object' || !Array.isArray(json.Calls)) {
        throw new GatewayError(ErrorCode.UPSTREAM_ERROR, 'Exotel sent an unexpected answer: bulk call details without a Calls list');
      }
      const meta = (json.Metadata ?? {}) as Partial<WireCallListResponse['Metadata']>;
      return {
        // One call whose Sid or status cannot be read is left out (and logged), not the whole page: a lookup
        // by Sid then finds it missing and asks for it alone, where the error is that Sid's own.
        calls: json.Calls.flatMap((c: WireCall) => {
          try {
            return [parseCall(c, parse)];
          } catch (err) {
            if (!isGatewayError(err)) throw err;
            parse.unreadableItem?.('Call', err);
            return [];
          }
        }),
        total: int(meta.Total),
        pageSize: int(meta.PageSize) ?? json.Calls.length,
        nextAfter: cursorFrom(meta.NextPageUri, 'After'),
        prevBefore: cursorFrom(meta.PrevPageUri, 'Before'),
      };
    },
  };
}

function callOf(json: WireCallResponse | null): WireCall {
  if (!json || typeof json !== 'object' || !json.Call) throw new GatewayError(ErrorCode.UPSTREAM_ERROR, 'Exotel sent an unexpected answer: no Call object');
  return json.Call;
}

function required(value: string | undefined, field: string): string {
  if (typeof value !== 'string' || value.trim() === '') throw badInput(field, 'is required');
  return value.trim();
}

function wholeInRange(value: number, field: string, min: number, max: number): string {
  if (!Number.isInteger(value) || value < min || value > max) throw badInput(field, `must be a whole number from ${min} to ${max}`);
  return String(value);
}

/** Parameters shared by both connect variants. */
function addCommon(form: URLSearchParams, params: ConnectCallParams | ConnectFlowParams): void {
  if (params.callType !== undefined) form.set('CallType', params.callType);
  if (params.timeLimitSeconds !== undefined) form.set('TimeLimit', wholeInRange(params.timeLimitSeconds, 'timeLimit', 1, CALL_LIMITS.maxTimeLimitSeconds));
  if (params.timeOutSeconds !== undefined) form.set('TimeOut', wholeInRange(params.timeOutSeconds, 'timeOut', 1, CALL_LIMITS.maxTimeOutSeconds));
  if (params.customField !== undefined) form.set('CustomField', params.customField);
  if (params.statusCallback) addStatusCallback(form, params.statusCallback);
}

function addStatusCallback(form: URLSearchParams, cb: StatusCallbackOptions): void {
  form.set('StatusCallback', required(cb.url, 'statusCallback.url'));
  // Exotel knows two events; sent as StatusCallbackEvents[0]=terminal, [1]=answered (indices consecutive).
  const events = (['terminal', 'answered'] as const).filter((e) => cb.events?.includes(e));
  events.forEach((event, i) => form.set(`StatusCallbackEvents[${i}]`, event));
  if (cb.contentType !== undefined) form.set('StatusCallbackContentType', cb.contentType);
}

function isoFilter(value: string, field: string): string {
  try {
    return isoToExotel(value);
  } catch (error) {
    if (error instanceof InvalidDateTimeError) throw badInput(field, error.message);
    throw error;
  }
}

/** Validates a CallListQuery (before any request is spent) and turns it into Exotel's query string. */
export function listParams(query: CallListQuery): URLSearchParams {
  const q = new URLSearchParams();
  if (query.sids !== undefined) {
    if (query.sids.length > CALL_LIMITS.maxSids) throw badInput('sids', `at most ${CALL_LIMITS.maxSids} Sids per request, got ${query.sids.length}`);
    query.sids.forEach((sid, i) => {
      if (!SID_PATTERN.test(sid)) throw badInput(`sids[${i}]`, 'is not a call Sid');
    });
    if (query.sids.length > 0) q.set('Sid', query.sids.join(','));
  }
  const range: string[] = [];
  if (query.dateCreatedFrom !== undefined) range.push(`gte:${isoFilter(query.dateCreatedFrom, 'dateCreatedFrom')}`);
  if (query.dateCreatedTo !== undefined) range.push(`lte:${isoFilter(query.dateCreatedTo, 'dateCreatedTo')}`);
  if (range.length > 0) q.set('DateCreated', range.join(';'));
  if (query.status !== undefined && query.status.length > 0) q.set('Status', query.status.map(callStatusToWire).join(','));
  if (query.direction !== undefined) q.set('Direction', callDirectionToWire(query.direction));
  for (const [field, wire] of [['to', 'To'], ['from', 'From']] as const) {
    const numbers = query[field];
    if (numbers === undefined || numbers.length === 0) continue;
    if (numbers.length > CALL_LIMITS.maxNumbersPerFilter) throw badInput(field, `at most ${CALL_LIMITS.maxNumbersPerFilter} numbers, got ${numbers.length}`);
    q.set(wire, numbers.map((n) => required(n, field)).join(','));
  }
  if (query.sort !== undefined) q.set('SortBy', `DateCreated:${query.sort}`);
  if (query.pageSize !== undefined) q.set('PageSize', wholeInRange(query.pageSize, 'pageSize', 1, CALL_LIMITS.maxPageSize));
  if (query.after !== undefined) q.set('After', required(query.after, 'after'));
  if (query.before !== undefined) q.set('Before', required(query.before, 'before'));
  if (query.details) q.set('details', 'true');
  return q;
}

/** The `After`/`Before` cursor inside a NextPageUri/PrevPageUri (relative or absolute); null when absent. */
export function cursorFrom(uri: unknown, name: 'After' | 'Before'): string | null {
  const s = text(uri);
  if (s === null) return null;
  try {
    return text(new URL(s, 'http://exotel.invalid').searchParams.get(name));
  } catch {
    return null;
  }
}
