/**
 * Incoming calls: Exotel's Passthru and Connect-applet requests (docs/live-status.md,
 * "Incoming calls") → one Call per CallSid, kept current by every request of its flow.
 *
 * A flow sends several requests for one call — at its start, after a Connect applet, at its end — as a
 * GET query string by default (POST possible). Each of them:
 * - is merged into the call: a known value is never erased by a later request that lacks it (e.g.
 *   `DialWhomNumber`, usually absent at the end), and the flow's own parameters land in `Call.flow`
 *   (its `Legs` too, as `Call.flow.legs`: `Call.legs` stays what call details say, leg 1 the caller);
 * - becomes a call event: while the caller is in the flow the call is IN_PROGRESS (Exotel has picked up
 *   and the flow is playing); `DialCallStatus` with `CallType` gives the outcome. Ingest keeps it
 *   forward-only and publishes each status once, so the outcome is published once however often it comes;
 * - announces the call on `incomingCalls` the first time, in the same atomic step as its call event
 *   (deduplicated there too); a request that names no direction announces it in that step too, unless
 *   something stored of the call said it is outgoing (see ingestIncomingCall).
 *
 * `Status` in these requests is the agent's state (`busy`/`free`), never the call's: it goes to
 * `Call.flow.agentStatus`. Dates carry no zone and are IST whatever the server's TZ.
 */
import { exotelToEpochMs, exotelToIso, epochMsToIso, isExotelEpochZero, isoToEpochMs, IST_OFFSET_MINUTES } from '../exotel/dates.js';
import { int, legItems, MAX_LEGS, toCallDirection, toCallStatus } from '../exotel/parse.js';
import type { Call, CallFlow, CallLeg, CallStatus, IsoDateTime } from '../exotel/types.js';
import { SID_PATTERN, UNSET_CALL_FIELDS, callStatusRank } from '../exotel/types.js';
import type { CallEventRecord } from '../storage/types.js';
import { ingestStep, type IngestDeps, type IngestResult } from './ingest.js';
import { isTerminalCall, type LiveUpdate } from './updates.js';

/** One Passthru / Connect-applet request, understood. */
export interface IncomingCallRequest {
  kind: 'incoming-request';
  callSid: string;
  /** The call's status as this request shows it: live while in the flow, else the outcome. */
  status: CallStatus;
  /** When that status held: the call's start for a live status, the request's time for an outcome. */
  at: IsoDateTime;
  /**
   * What this request says about the call: only known values (nothing here erases anything). A missing
   * `Direction` leaves `direction` out: unknown, not incoming.
   */
  fields: Partial<Call>;
  /** Parameters that were present but could not be read (made null; logged at debug). */
  unreadable: string[];
}

export type IncomingParseResult = { ok: true; update: IncomingCallRequest } | { ok: false; reason: string };

/** Every CallFlow field unset. */
export const EMPTY_FLOW: CallFlow = Object.freeze({
  flowId: null,
  tenantId: null,
  dialWhomNumber: null,
  agentEmail: null,
  agentStatus: null,
  digits: null,
  callType: null,
  dialCallStatus: null,
  dialCallDurationSeconds: null,
  eventType: null,
  outgoingPhoneNumber: null,
  forwardedFrom: null,
  recordingAvailableBy: null,
  lastRequestAt: null,
  legs: null,
}) as CallFlow;

/** Longest value kept of a free-text flow parameter; Exotel's are short, anything longer is not theirs. */
const MAX_VALUE_CHARS = 256;

/**
 * A parameter as text: absent, "", whitespace and the string "null" (Exotel's legacy empty value) are
 * all "not given".
 */
function value(fields: Record<string, unknown>, name: string): string | null {
  const raw = fields[name];
  const s = typeof raw === 'string' ? raw.trim() : typeof raw === 'number' && Number.isFinite(raw) ? String(raw) : '';
  if (s === '' || s.toLowerCase() === 'null') return null;
  return s.slice(0, MAX_VALUE_CHARS);
}

/** A phone number: a `+` sent unencoded in a query string arrives as a space and is put back. */
function phone(fields: Record<string, unknown>, name: string): string | null {
  const raw = fields[name];
  const s = value(fields, name);
  return s !== null && typeof raw === 'string' && /^ +\d/.test(raw) ? `+${s}` : s;
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
// `Created`: "Wed, 23 Feb 2022 12:31:59" (IST, no zone); an explicit zone, when one is sent, is honoured.
const HTTP_STYLE = /^(?:[a-z]{3},?\s+)?(\d{1,2})\s+([a-z]{3})[a-z]*\s+(\d{4})\s+(\d{2}):(\d{2})(?::(\d{2}))?(?:\s*(gmt|utc|z|[+-]\d{2}:?\d{2}))?$/i;

/** Minutes east of UTC of "GMT", "+0530", "-05:00". */
function zoneMinutes(zone: string): number {
  if (/^(gmt|utc|z)$/i.test(zone)) return 0;
  const m = /^([+-])(\d{2}):?(\d{2})$/.exec(zone)!;
  return (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3]));
}

/**
 * A flow date → ISO. Exotel's "YYYY-MM-DD HH:mm:ss" and its "Wed, 23 Feb 2022 12:31:59" are Indian
 * wall-clock time (never the server's zone); ISO with an offset is taken as it is. "", "null" and the
 * epoch-zero placeholder `1970-01-01 05:30:00` are "not set" (null); anything else is unreadable.
 */
export function flowDateToIso(raw: string | null): IsoDateTime | null | 'unreadable' {
  if (raw === null || isExotelEpochZero(raw)) return null;
  try {
    return exotelToIso(raw);
  } catch {
    // not Exotel's usual form
  }
  const m = HTTP_STYLE.exec(raw);
  if (m) {
    const month = MONTHS.indexOf(m[2]!.toLowerCase()) + 1;
    const wall = `${m[3]}-${String(month).padStart(2, '0')}-${m[1]!.padStart(2, '0')} ${m[4]}:${m[5]}:${m[6] ?? '00'}`;
    try {
      if (m[7] === undefined) return exotelToIso(wall);
      // The wall-clock time read as IST, moved to the zone it was really in.
      const ms = exotelToEpochMs(wall) + (IST_OFFSET_MINUTES - zoneMinutes(m[7])) * 60_000;
      return ms === 0 ? null : epochMsToIso(ms);
    } catch {
      return 'unreadable';
    }
  }
  try {
    return epochMsToIso(isoToEpochMs(raw));
  } catch {
    return 'unreadable';
  }
}

/**
 * The outcome of an incoming call from its flow's `DialCallStatus` and `CallType` (docs/live-status.md):
 * completed → COMPLETED; canceled (caller hung up, `client-hangup`) → CANCELED; no-answer (`incomplete`)
 * → NO_ANSWER; busy → BUSY; failed → FAILED. Undefined while the flow is still running: no dial outcome
 * yet, or `CallType=call-attempt` (a Connect applet that did not reach anyone, after which the flow goes on).
 */
export function incomingOutcome(dialCallStatus: string | null, callType: string | null): CallStatus | undefined {
  const type = callType?.toLowerCase().replace(/_/g, '-') ?? null;
  if (type === 'call-attempt') return undefined;
  const dial = toCallStatus(dialCallStatus);
  if (dial && isTerminalCall(dial)) return dial;
  switch (type) {
    case 'completed':
      return 'COMPLETED';
    case 'client-hangup':
      return 'CANCELED';
    case 'incomplete':
      return 'NO_ANSWER';
    default:
      return undefined;
  }
}

/** `Legs[i][Number|Type|OnCallDuration|CallerId|CauseCode|Cause]` (or a JSON array of the same); at most MAX_LEGS. */
function parseFlowLegs(fields: Record<string, unknown>): CallLeg[] | null {
  const legs = legItems(fields).map(([index, leg]): CallLeg => ({
    id: int(leg.Id) ?? index + 1,
    status: toCallStatus(leg.Status) ?? null,
    onCallDurationSeconds: int(leg.OnCallDuration),
    number: phone(leg, 'Number'),
    type: value(leg, 'Type'),
    callerId: phone(leg, 'CallerId'),
    causeCode: value(leg, 'CauseCode'),
    cause: value(leg, 'Cause'),
  }));
  return legs.length > 0 ? legs : null;
}

/** Drops unset values (and a new call's empty From/To), so merging never erases what is already known. */
function known<T extends object>(record: T): { [K in keyof T]?: NonNullable<T[K]> } {
  return Object.fromEntries(Object.entries(record).filter(([, v]) => v !== null && v !== undefined && v !== '')) as { [K in keyof T]?: NonNullable<T[K]> };
}

/** The parameters of one Passthru / Connect-applet request (query string and body, already flattened). */
export function parseIncomingCall(fields: Record<string, unknown>, nowIso: IsoDateTime): IncomingParseResult {
  const callSid = value(fields, 'CallSid');
  if (callSid === null) return { ok: false, reason: 'CallSid is missing' };
  // Not echoed: anything odd is not from Exotel and must not reach keys or logs.
  if (!SID_PATTERN.test(callSid) || String(fields.CallSid) !== callSid) return { ok: false, reason: 'CallSid is not a valid Sid' };

  const unreadable: string[] = [];
  const date = (name: string): IsoDateTime | null => {
    const parsed = flowDateToIso(value(fields, name));
    if (parsed !== 'unreadable') return parsed;
    unreadable.push(name);
    return null;
  };
  const created = date('Created');
  const startTime = date('StartTime');
  const currentTime = date('CurrentTime');
  const dialCallStatus = value(fields, 'DialCallStatus');
  const callType = value(fields, 'CallType');
  const outcome = incomingOutcome(dialCallStatus, callType);
  // The flow's own CallStatus may say ringing; a terminal one without a dial outcome is left to call details.
  const reported = toCallStatus(value(fields, 'CallStatus'));
  const status: CallStatus = outcome ?? (reported && !isTerminalCall(reported) ? reported : 'IN_PROGRESS');
  const direction = toCallDirection(value(fields, 'Direction'));
  const dialDuration = value(fields, 'DialCallDuration');
  const dialCallDurationSeconds = int(dialDuration);
  if (dialDuration !== null && dialCallDurationSeconds === null) unreadable.push('DialCallDuration');

  const flow: Partial<CallFlow> = known({
    flowId: value(fields, 'flow_id'),
    tenantId: value(fields, 'tenant_id'),
    dialWhomNumber: phone(fields, 'DialWhomNumber'),
    agentEmail: value(fields, 'AgentEmail'),
    agentStatus: value(fields, 'Status')?.toLowerCase() ?? null,
    digits: value(fields, 'digits')?.replace(/^"|"$/g, '') || null,
    callType,
    dialCallStatus: toCallStatus(dialCallStatus) ?? null,
    dialCallDurationSeconds,
    eventType: value(fields, 'EventType'),
    outgoingPhoneNumber: phone(fields, 'OutgoingPhoneNumber'),
    forwardedFrom: phone(fields, 'ForwardedFrom'),
    recordingAvailableBy: date('RecordingAvailableBy'),
    lastRequestAt: currentTime,
    legs: parseFlowLegs(fields),
  });
  const callTo = phone(fields, 'CallTo') ?? phone(fields, 'To');
  const endTime = date('EndTime') ?? (outcome ? currentTime : null);
  const callFields: Partial<Call> = known({
    sid: callSid,
    from: phone(fields, 'CallFrom') ?? phone(fields, 'From'),
    to: callTo,
    phoneNumberSid: callTo,
    direction,
    startTime: startTime ?? created,
    endTime,
    dateCreated: created ?? startTime,
    dateUpdated: currentTime,
    recordingUrl: value(fields, 'RecordingUrl'),
    customField: value(fields, 'CustomField'),
  });
  callFields.flow = { ...EMPTY_FLOW, ...flow };
  const at = outcome ? (currentTime ?? endTime ?? nowIso) : (startTime ?? created ?? currentTime ?? nowIso);
  return { ok: true, update: { kind: 'incoming-request', callSid, status, at, fields: callFields, unreadable } };
}

/** The flow of `patch` over `base`: only values `patch` knows replace. */
export function mergeFlow(base: CallFlow | null | undefined, patch: CallFlow | null | undefined): CallFlow | null {
  if (!patch) return base ?? null;
  return { ...EMPTY_FLOW, ...base, ...known(patch), legs: mergeLegs(base?.legs, patch.legs) };
}

/** Legs merged by id: a leg `patch` knows gets its known values, new legs are added (at most MAX_LEGS, the lowest ids). */
function mergeLegs(base: CallLeg[] | null | undefined, patch: CallLeg[] | null | undefined): CallLeg[] | null {
  if (!patch?.length) return base ?? null;
  if (!base?.length) return patch;
  const merged = base.map((leg) => ({ ...leg }));
  for (const leg of patch) {
    const i = merged.findIndex((l) => l.id === leg.id);
    if (i >= 0) merged[i] = { ...merged[i]!, ...known(leg) };
    else merged.push(leg);
  }
  return merged.sort((a, b) => a.id - b.id).slice(0, MAX_LEGS);
}

/** The values of `told` for the fields `call` knows no value of. */
function unknownIn(call: Call, told: Partial<Call>): Partial<Call> {
  const knows = known(call);
  return Object.fromEntries(Object.entries(told).filter(([field]) => !(field in knows))) as Partial<Call>;
}

/**
 * True when `patch` is from a flow request made before the last one `call` has heard of (its CurrentTime is
 * earlier): a request stored late, by the gateway's own retry after a storage outage (incoming-retries.ts).
 */
function isEarlierRequest(call: Call, patch: Partial<Call>): boolean {
  const last = call.flow?.lastRequestAt;
  const made = patch.flow?.lastRequestAt;
  // A time this gateway did not write decides nothing, and the request merges as usual.
  return Boolean(last && made && isBefore(made, last));
}

/** True when ISO time `a` is before `b`; false when either is not a time this gateway wrote. */
function isBefore(a: string, b: string): boolean {
  try {
    return isoToEpochMs(a) < isoToEpochMs(b);
  } catch {
    return false;
  }
}

/**
 * `patch` over `call`: known values replace, unknown ones never erase; the flow (and its legs) is merged
 * field by field; the status only moves forward; the creation time never changes once known, and the start
 * time never moves earlier (a request without StartTime names its Created, which comes before it); a flow's
 * `outbound-dial` never replaces the API's `outbound-api`. A request made before the last one the call
 * has heard of (stored late) only fills in what is not known yet: it never undoes what a later one said.
 */
export function mergeCall(call: Call, patch: Partial<Call>): Call {
  const { flow, status, dateCreated, ...rest } = patch;
  const earlier = isEarlierRequest(call, patch);
  const told = known(rest) as Partial<Call>;
  const next: Call = { ...call, ...(earlier ? unknownIn(call, told) : told) };
  // Passthru names every outgoing call `outbound-dial`; a call the API placed stays the API's.
  if (call.direction === 'OUTBOUND_API' && patch.direction === 'OUTBOUND_DIAL') next.direction = 'OUTBOUND_API';
  const mergedFlow = earlier ? mergeFlow(flow, call.flow) : mergeFlow(call.flow, flow);
  if (mergedFlow) next.flow = mergedFlow;
  if (status && callStatusRank(status) > callStatusRank(call.status)) next.status = status;
  if (!call.dateCreated && dateCreated) next.dateCreated = dateCreated;
  if (call.startTime && next.startTime && isBefore(next.startTime, call.startTime)) next.startTime = call.startTime;
  return next;
}

/**
 * The call as the flow's requests told it: the call of every event that carried one, merged in log order
 * (a known value is never erased by a later one). The log outlives the short cache of live calls, and
 * merging every event (not taking the last) keeps what two requests stored at once both said. When no
 * request said which way the call goes, the last other event that did (the API's answer, a status
 * callback, call details) says it: requests that leave `Direction` out do not make an API call's unknown.
 */
export function callFromHistory(history: readonly CallEventRecord[]): Call | undefined {
  let merged: Call | undefined;
  let direction: Call['direction'] = null;
  for (const event of history) {
    const call = event.data?.call as Call | undefined;
    if (!call || typeof call !== 'object') continue;
    if (call.flow) merged = merged ? mergeCall(merged, call) : call;
    else if (call.direction) direction = call.direction;
  }
  return merged && !merged.direction && direction ? { ...merged, direction } : merged;
}

/**
 * A new Call for a request of a call the gateway does not hold. Its direction is what the request says,
 * else unknown (null): a made-up `INBOUND` would be merged over what an earlier request said (an API
 * call placed into a flow, `outbound-api`) once the live call's short cache entry is gone.
 */
function newCall(request: IncomingCallRequest, accountSid: string): Call {
  const at = request.fields.dateCreated ?? request.at;
  return {
    ...UNSET_CALL_FIELDS,
    sid: request.callSid,
    accountSid,
    from: '',
    to: '',
    status: request.status,
    direction: null,
    dateCreated: at,
    dateUpdated: at,
    flow: { ...EMPTY_FLOW },
  };
}

/**
 * Takes in one flow request in three Redis commands: it reads the cached call, then one atomic step records
 * the call event (forward-only, each status published once), announces a new incoming call (once) and
 * answers the call's history, then the merged call is cached. Throws IngestStorageError when the events
 * could not be stored (then nothing of the request was).
 *
 * Only an incoming call is announced: not one the API placed into the flow (`outbound-api`) nor one that
 * went out (`outbound-dial`, what Passthru says of every outgoing call). When neither the request nor the
 * cached call says which way the call goes, the step itself decides: it announces the call unless an
 * earlier update (a flow request, the API's answer, a status callback, call details) said it is outgoing.
 * Decided anywhere later, the announcement would hang on a second command, lost with it when storage
 * fails in between: Exotel never sends a Passthru again, and a one-request flow sends nothing else.
 */
export async function ingestIncomingCall(request: IncomingCallRequest, deps: IngestDeps): Promise<IngestResult> {
  const { callSid } = request;
  if (request.unreadable.length > 0) deps.logger.debug({ callSid, fields: request.unreadable }, 'flow request fields not understood; left empty');
  const cached = await deps.entities.getCalls([callSid]).then(
    ([call]) => call,
    (err: unknown) => {
      deps.logger.warn({ err, callSid }, 'could not read the cached call');
      return undefined;
    },
  );
  const patch: Partial<Call> = { ...request.fields, status: request.status };
  // What this request knows: the cached call (a call fetched from Exotel knows no flow) with the request
  // merged in. What earlier requests said is merged in from the log (callFromHistory), so nothing is lost.
  const told = mergeCall(cached ?? newCall(request, deps.accountSid), patch);
  const eventType = told.flow?.eventType;
  const announcement: LiveUpdate = { kind: 'incoming', callSid, at: request.at, source: 'WEBHOOK', call: told, extra: {} };
  // The call is read and merged here once, so ingest() neither reads nor writes the cache. The
  // announcement rides in the same step, after the call event: whoever hears of the call finds its status
  // in the log; the step answers the history too, so the log costs no read of its own.
  const { result, history = [] } = await ingestStep(
    { kind: 'call', callSid, status: request.status, at: request.at, source: 'WEBHOOK', fields: told, ...(eventType ? { eventType: eventType.slice(0, 32) } : {}) },
    deps,
    {
      updateCache: false,
      withHistory: true,
      ...(told.direction === 'INBOUND' ? { also: announcement } : {}),
      // Which way the call goes is unknown here: announced unless the step finds it said outgoing before.
      ...(told.direction === null ? { also: announcement, alsoUnlessOutgoing: true } : {}),
    },
  );
  // Every request so far, this one included; over the cached call when there is one (it may know more
  // from call details). Written once, after the events are stored, forward or not (a repeat may tell more).
  const logged = callFromHistory(history) ?? told;
  const call = cached ? mergeCall({ ...cached, flow: mergeFlow(logged.flow, cached.flow) }, patch) : logged;
  try {
    await deps.entities.putCall(call);
  } catch (err) {
    deps.logger.warn({ err, callSid }, 'could not cache the incoming call');
  }
  return result;
}
