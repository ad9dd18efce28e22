/**
 * Incoming calls played through a flow, the way Exotel runs one (docs/live-status.md,
 * "Incoming calls"): a caller dials an ExoPhone, Exotel picks up into the flow and sends a Passthru request at its
 * start, a Connect applet dials the agent (and sends its own request), then the Passthru after the
 * Connect applet reports the outcome in `DialCallStatus`/`CallType`. Requests are GET with a query string
 * by default (POST form on request), one after the other, each waiting for the previous answer, with the
 * real parameter set: zone-less IST dates, the epoch-zero placeholder, the string "null" for empty
 * values, a `+` left unencoded in numbers, the agent's state in `Status`, and no `DialWhomNumber` in the
 * end request. The call exists in call details throughout, so a gateway can finish it from there when
 * the end request never comes.
 */
import type { WireCallStatus, WireExoPhone } from '../exotel/types.js';
import type { CallRecord } from './calls.js';
import { EPOCH_ZERO_IST, formatIst } from './ist.js';
import { randomSid } from './prng.js';
import { callPrice, CALL_TIMELINE_SECONDS as T } from './rules.js';
import type { Scheduler } from './scheduler.js';

/** How the simulated incoming call ends. */
export const INCOMING_OUTCOMES = ['answered', 'caller-hung-up', 'unanswered', 'busy', 'failed'] as const;
export type IncomingOutcome = (typeof INCOMING_OUTCOMES)[number];

/** Simulated seconds of an incoming call's flow. */
export const INCOMING_FLOW_SECONDS = Object.freeze({
  /** From the call arriving to the Passthru at the start of the flow (greeting played). */
  start: 1,
  /** From there to the Connect applet dialling the agent. */
  connect: 1,
  /** The agent's phone rings this long before answering. */
  agentRing: 2,
  /** Talk time of an answered call. */
  talk: T.talk,
  /** The caller hangs up this long into the ringing. */
  callerPatience: 3,
  /** An unanswered dial gives up after this. */
  noAnswerRing: T.maxNoAnswerRing,
  /** A busy or failed dial ends this fast. */
  quickEnd: 1,
});

/** `POST /__sim/incoming-calls` body. */
export interface IncomingCallInput {
  /** Default 'answered'. */
  outcome?: IncomingOutcome;
  /** The caller's number; default a fixed test mobile. */
  from?: string;
  /** The ExoPhone dialled; default the first voice ExoPhone. */
  to?: string;
  /** The agent the Connect applet dials (`DialWhomNumber`). */
  agent?: string;
  agentEmail?: string;
  flowId?: string;
  /** Keys pressed in the flow's Gather applet (`digits`). */
  digits?: string;
  customField?: string;
  /** Where the flow's requests go; default the URL the simulator was given (the gateway's in simulator mode). */
  url?: string;
  /** Default GET (Exotel's default for Passthru). */
  method?: 'GET' | 'POST';
  /** false: the end request is never sent (as when Exotel's request is lost); the call still ends. */
  endRequest?: boolean;
}

/** One flow request as sent, and what came back. */
export interface IncomingRequestRecord {
  step: 'start' | 'connect' | 'end';
  method: 'GET' | 'POST';
  /** HTTP status, or what went wrong. */
  outcome: number | 'timeout' | 'network-error' | 'skipped';
  at: number;
}

/** A played (or playing) incoming call, as `GET /__sim/incoming-calls` shows it. */
export interface IncomingFlowRecord {
  sid: string;
  outcome: IncomingOutcome;
  url: string;
  requests: IncomingRequestRecord[];
  /** True once the flow has run to its end (every request sent or skipped). */
  done: boolean;
}

/** How long a flow request waits for its answer, seconds (Exotel gives up on a Passthru after a few seconds). */
export const PASSTHRU_TIMEOUT_SECONDS = 5;
/** Played flows kept for the admin listing. */
const MAX_FLOWS = 1_000;

const DEFAULT_CALLER = '09876543210';
const DEFAULT_AGENT = '+919800000011';

/** The dial's ending in Exotel's words: call status, DialCallStatus, CallType, the agent leg's cause. */
const ENDINGS: Record<IncomingOutcome, { status: Exclude<WireCallStatus, 'queued' | 'ringing' | 'in-progress'>; dial: string; callType: string; causeCode: string; cause: string }> = {
  answered: { status: 'completed', dial: 'completed', callType: 'completed', causeCode: 'NORMAL_CLEARING', cause: '16' },
  'caller-hung-up': { status: 'canceled', dial: 'canceled', callType: 'client-hangup', causeCode: 'ORIGINATOR_CANCEL', cause: '487' },
  unanswered: { status: 'no-answer', dial: 'no-answer', callType: 'incomplete', causeCode: 'NO_ANSWER', cause: '19' },
  busy: { status: 'busy', dial: 'busy', callType: 'incomplete', causeCode: 'USER_BUSY', cause: '17' },
  failed: { status: 'failed', dial: 'failed', callType: 'incomplete', causeCode: 'CALL_REJECTED', cause: '21' },
};

/** Why a body is not an IncomingCallInput, or null when it is one. */
export function checkIncomingInput(body: unknown): string | null {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'send a JSON object, e.g. {"outcome": "answered"}';
  const b = body as Record<string, unknown>;
  const known = ['outcome', 'from', 'to', 'agent', 'agentEmail', 'flowId', 'digits', 'customField', 'url', 'method', 'endRequest'];
  const extra = Object.keys(b).filter((k) => !known.includes(k));
  if (extra.length > 0) return `unknown field(s) ${extra.slice(0, 5).join(', ')}; known: ${known.join(', ')}`;
  if (b.outcome !== undefined && !(INCOMING_OUTCOMES as readonly unknown[]).includes(b.outcome)) return `outcome must be one of ${INCOMING_OUTCOMES.join(', ')}`;
  if (b.method !== undefined && b.method !== 'GET' && b.method !== 'POST') return 'method must be GET or POST';
  if (b.endRequest !== undefined && typeof b.endRequest !== 'boolean') return 'endRequest must be true or false';
  for (const k of ['from', 'to', 'agent', 'agentEmail', 'flowId', 'digits', 'customField', 'url'] as const) {
    if (b[k] !== undefined && (typeof b[k] !== 'string' || (b[k] as string).length > 500)) return `${k} must be a string`;
  }
  if (typeof b.url === 'string' && !/^https?:\/\//.test(b.url)) return 'url must be an http(s) URL';
  return null;
}

/** A flow date in Exotel's `Created` form: "Wed, 23 Feb 2022 12:31:59" (IST, no zone). */
export function formatCreated(epochMs: number): string {
  const d = new Date(epochMs + 330 * 60_000);
  const day = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'][d.getUTCDay()];
  const month = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][d.getUTCMonth()];
  return `${day}, ${String(d.getUTCDate()).padStart(2, '0')} ${month} ${d.getUTCFullYear()} ${formatIst(epochMs).slice(11)}`;
}

/**
 * A query string with Exotel's quirk: a `+` in a phone number is sent as it is, so a receiver decoding
 * the query reads a space.
 */
function queryString(params: Array<[string, string]>, numbers: ReadonlySet<string>): string {
  return params
    .map(([k, v]) => {
      const encoded = encodeURIComponent(v);
      return `${encodeURIComponent(k)}=${numbers.has(k) || /^Legs\[\d+\]\[(?:Number|CallerId)\]$/.test(k) ? encoded.replace(/%2B/g, '+') : encoded}`;
    })
    .join('&');
}

const NUMBER_PARAMS: ReadonlySet<string> = new Set(['CallFrom', 'CallTo', 'From', 'To', 'DialWhomNumber', 'OutgoingPhoneNumber']);

export interface IncomingFlowDeps {
  scheduler: Scheduler;
  accountSid: string;
  exoPhones: readonly WireExoPhone[];
  /** Stores the call (it shows in call details from now on). */
  addCall(call: CallRecord): void;
  /** Tells listeners the call changed. */
  changed(call: CallRecord): void;
  /** The Passthru URL when the input names none. */
  defaultUrl(): string | undefined;
  log(line: string): void;
}

export interface IncomingFlows {
  /** Starts an incoming call and plays its flow; throws a message for bad input. */
  start(input: IncomingCallInput): IncomingFlowRecord;
  get(sid: string): IncomingFlowRecord | undefined;
  list(): IncomingFlowRecord[];
}

export function createIncomingFlows(deps: IncomingFlowDeps): IncomingFlows {
  const flows = new Map<string, IncomingFlowRecord>();
  const S = INCOMING_FLOW_SECONDS;

  async function send(flow: IncomingFlowRecord, step: IncomingRequestRecord['step'], method: 'GET' | 'POST', params: Array<[string, string]>): Promise<void> {
    const record: IncomingRequestRecord = { step, method, outcome: 'network-error', at: Date.now() };
    flow.requests.push(record);
    try {
      // Real time, not scaled: a receiver on a loaded machine must not miss a step of a sped-up flow.
      const timeout = AbortSignal.timeout(PASSTHRU_TIMEOUT_SECONDS * 1000);
      const signal = AbortSignal.any([timeout, deps.scheduler.signal]);
      const headers = { 'user-agent': 'Exotel-Simulator' };
      const res =
        method === 'GET'
          ? await fetch(`${flow.url}${flow.url.includes('?') ? '&' : '?'}${queryString(params, NUMBER_PARAMS)}`, { headers, signal })
          : await fetch(flow.url, { method: 'POST', body: new URLSearchParams(params).toString(), headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' }, signal });
      record.outcome = res.status;
      await res.arrayBuffer().catch(() => undefined);
    } catch (err) {
      record.outcome = (err as Error).name === 'TimeoutError' ? 'timeout' : 'network-error';
    }
    if (record.outcome !== 200) deps.log(`incoming call ${flow.sid}: ${step} request answered ${record.outcome}`);
  }

  return {
    start(input) {
      const outcome = input.outcome ?? 'answered';
      const url = input.url ?? deps.defaultUrl();
      if (!url) throw new Error('no Passthru URL: give "url", or start the simulator with one (the gateway does in simulator mode)');
      const voice = deps.exoPhones.find((p) => (p.capabilities as Record<string, boolean> | undefined)?.voice !== false) ?? deps.exoPhones[0];
      const exoPhone = input.to ?? voice?.sid ?? '08039591111';
      const caller = input.from ?? DEFAULT_CALLER;
      const agent = input.agent ?? DEFAULT_AGENT;
      const method = input.method ?? 'GET';
      const flowId = input.flowId ?? '228866';
      const ending = ENDINGS[outcome];
      const sid = randomSid();
      const createdAtMs = Date.now();
      const call: CallRecord = {
        sid, accountSid: deps.accountSid, from: caller, to: exoPhone, callerId: exoPhone, flowId, direction: 'inbound',
        // Exotel picks up at once and plays the flow: the call is in progress from the start.
        status: 'in-progress', createdAtMs, updatedAtMs: createdAtMs, startedAtMs: createdAtMs, endedAtMs: null, finalized: false,
        durationSeconds: null, conversationSeconds: null, price: null, answeredBy: null, record: false, recordingUrl: null,
        customField: input.customField ?? null, callType: 'trans', timeLimitSeconds: null, timeOutSeconds: null,
        legs: [{ status: 'in-progress', onCallSeconds: null }], statusCallback: null,
      };
      deps.addCall(call);
      const flow: IncomingFlowRecord = { sid, outcome, url, requests: [], done: false };
      flows.set(sid, flow);
      if (flows.size > MAX_FLOWS) flows.delete(flows.keys().next().value!);

      const talk = outcome === 'answered' ? S.talk : 0;
      const dialSeconds =
        outcome === 'answered' ? S.agentRing + talk : outcome === 'caller-hung-up' ? S.callerPatience : outcome === 'unanswered' ? S.noAnswerRing : S.quickEnd;
      const common = (nowMs: number): Array<[string, string]> => [
        ['CallSid', sid],
        ['CallFrom', caller],
        ['CallTo', exoPhone],
        ['Direction', 'incoming'],
        ['Created', formatCreated(createdAtMs)],
        ['StartTime', formatIst(createdAtMs)],
        ['CurrentTime', formatIst(nowMs)],
        ['EndTime', EPOCH_ZERO_IST],
        ['From', caller],
        ['To', exoPhone],
        ['flow_id', flowId],
        ['tenant_id', '67890'],
        ['ForwardedFrom', 'null'],
        ['ProcessStatus', 'null'],
        ['CustomField', input.customField ?? 'null'],
      ];

      const play = async (): Promise<void> => {
        const sleep = (simSeconds: number) => deps.scheduler.sleep(deps.scheduler.scaledMs(simSeconds));
        await sleep(S.start);
        if (deps.scheduler.stopped) return;
        await send(flow, 'start', method, [...common(Date.now()), ['CallType', 'call-attempt'], ['DialCallDuration', '0'], ['digits', 'null']]);
        await sleep(S.connect);
        if (deps.scheduler.stopped) return;
        call.legs[1] = { status: 'ringing', onCallSeconds: null };
        deps.changed(call);
        await send(flow, 'connect', method, [
          ...common(Date.now()),
          ['CallType', 'call-attempt'],
          ['EventType', 'Dial'],
          ['DialWhomNumber', agent],
          ['AgentEmail', input.agentEmail ?? 'agent@example.com'],
          ['Status', 'free'],
          ['digits', input.digits !== undefined ? `"${input.digits}"` : 'null'],
        ]);
        await sleep(dialSeconds);
        if (deps.scheduler.stopped) return;
        const endMs = Date.now();
        call.legs[0] = { status: 'completed', onCallSeconds: S.start + S.connect + dialSeconds };
        call.legs[1] = { status: outcome === 'answered' ? 'completed' : ending.status, onCallSeconds: talk };
        if (input.endRequest !== false) {
          // DialWhomNumber is left out, as Exotel often does in later requests; Status is the agent's.
          await send(flow, 'end', method, [
            ...common(endMs),
            ['CallType', ending.callType],
            ['DialCallStatus', ending.dial],
            ['DialCallDuration', String(talk)],
            ['EventType', 'Dial'],
            ['AgentEmail', input.agentEmail ?? 'agent@example.com'],
            ['Status', outcome === 'answered' || outcome === 'busy' ? 'busy' : 'free'],
            ['OutgoingPhoneNumber', exoPhone],
            ['RecordingUrl', ''],
            ['RecordingAvailableBy', EPOCH_ZERO_IST],
            ['Legs[0][Number]', agent],
            ['Legs[0][Type]', 'single'],
            ['Legs[0][OnCallDuration]', String(talk)],
            ['Legs[0][CallerId]', exoPhone],
            ['Legs[0][CauseCode]', ending.causeCode],
            ['Legs[0][Cause]', ending.cause],
          ]);
        } else {
          flow.requests.push({ step: 'end', method, outcome: 'skipped', at: Date.now() });
        }
        // Call details show the end only after the end request (Exotel's details lag its flow).
        call.status = ending.status;
        // "human" whatever the outcome, as Exotel's call details say it.
        call.answeredBy = 'human';
        call.endedAtMs = endMs;
        call.updatedAtMs = Date.now();
        call.conversationSeconds = talk;
        call.durationSeconds = S.start + S.connect + dialSeconds;
        call.price = callPrice(outcome === 'answered' ? call.durationSeconds : 0);
        deps.changed(call);
        flow.done = true;
        deps.scheduler.afterSim(T.finalizeDelay, () => {
          call.finalized = true;
          call.updatedAtMs = Date.now();
          deps.changed(call);
        });
      };
      void play().catch((err: unknown) => deps.log(`incoming call ${sid} failed: ${(err as Error)?.stack ?? String(err)}`));
      return flow;
    },
    get: (sid) => flows.get(sid),
    list: () => [...flows.values()],
  };
}
