/**
 * The built-in Exotel simulator: a second implementation of Exotel over HTTP, speaking the wire
 * format of Exotel's API (developer.exotel.com; paths, Basic auth, JSON, RestException errors, 429s, call
 * and SMS lifecycles, status callbacks) so the gateway runs end to end with no Exotel account.
 *
 * Documented rules (outcomes by last digit, number metadata, timelines) live in rules.ts; faults in
 * faults.ts. Imports nothing from the gateway except the wire types.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { WireCall, WireDirection, WireExoPhone, WireSms } from '../exotel/types.js';
import { createCallbackSender, type RecordedCallback } from './callbacks.js';
import { runCallLifecycle, toWireCall, type CallRecord } from './calls.js';
import { createFaultEngine, type FaultControls } from './faults.js';
import { createIncomingFlows, type IncomingCallInput, type IncomingFlowRecord } from './incoming.js';
import { parseNumber, echoNumber, type CallOutcome } from './rules.js';
import { createRateBudget } from './rate-budget.js';
import { randomSid } from './prng.js';
import { createScheduler } from './scheduler.js';
import { createRequestHandler, type RecordedRequest } from './server.js';
import { runSmsLifecycle, toWireSms, type SmsRecord } from './sms.js';
import { finishedCall, seedState, SEEDED_EXOPHONES, type SimState } from './state.js';

export type { RecordedRequest } from './server.js';
export type { RecordedCallback } from './callbacks.js';
export type {
  Fault,
  RequestFault,
  CallbackFault,
  CallFault,
  CallbackMatch,
  CallHoldMatch,
  CallHoldFilter,
  HoldPhase,
  FaultControls,
  FaultCount,
  SimEndpoint,
} from './faults.js';
export {
  CALL_OUTCOME_BY_LAST_DIGIT,
  SMS_OUTCOME_BY_LAST_DIGIT,
  CALL_TIMELINE_SECONDS,
  SMS_TIMELINE_SECONDS,
  LANDLINE_STD_CODES,
  MOBILE_OPERATORS,
  CIRCLES,
  callOutcomeFor,
  smsOutcomeFor,
  numberMetadata,
  parseNumber,
} from './rules.js';
export { SEEDED_EXOPHONES, HISTORY_SEED } from './state.js';
export { EXOTEL_LIMITS } from './routes.js';
export { CALLBACK_TIMEOUT_SECONDS, CALLBACK_MAX_RETRIES } from './callbacks.js';
export { INCOMING_OUTCOMES, INCOMING_FLOW_SECONDS, formatCreated } from './incoming.js';
export type { IncomingCallInput, IncomingFlowRecord, IncomingOutcome, IncomingRequestRecord } from './incoming.js';

/** Defaults of SimulatorOptions, declared once. */
export const SIMULATOR_DEFAULTS = Object.freeze({
  port: 4010,
  host: '127.0.0.1',
  accountSid: 'sim-account',
  apiKey: 'sim-key',
  apiToken: 'sim-token',
  /** Exotel: about 200 requests/min per account. */
  ratePerMinute: 200,
  rateWindowMs: 60_000,
  timeScale: 1,
  seed: true,
  seedCalls: 300,
  smsDndStatus: 'failed-dnd' as 'failed-dnd' | 'failed_dnd',
});

export interface SimulatorOptions {
  /** Listen port; 0 picks a free one (tests). Default 4010. */
  port?: number;
  host?: string;
  accountSid?: string;
  apiKey?: string;
  apiToken?: string;
  /** Requests allowed per rolling window (default 200) before 429 + Retry-After. */
  ratePerMinute?: number;
  /** Length of that window in ms (default 60 000; shorten in tests). */
  rateWindowMs?: number;
  /** Multiplier on every simulated duration: 1 = real time, 0.01 = 100× faster. */
  timeScale?: number;
  /** Seed a deterministic history (calls, SMS); default true. ExoPhones are always there. */
  seed?: boolean;
  /** How many finished calls to seed (default 300). */
  seedCalls?: number;
  /** Spelling of the DND failure status (Exotel's docs show both); default 'failed-dnd'. */
  smsDndStatus?: 'failed-dnd' | 'failed_dnd';
  /** Log sink; default console.log. Never receives credentials from requests. */
  log?: (line: string) => void;
  /**
   * Where incoming calls' flows send their Passthru requests when a start request names no `url`; read
   * when a call starts (the gateway in simulator mode knows its own URL only once it listens).
   */
  incomingCallUrl?: string | (() => string | undefined);
}

/** Input of `calls.create`: with `status`, a finished call for history; without, a live call. */
export interface CreateCallInput {
  from: string;
  /** Omit for a call connected to a flow. */
  to?: string;
  callerId?: string;
  /** A terminal status makes a finished, finalized call; omitted → a live call running the lifecycle. */
  status?: CallOutcome;
  direction?: WireDirection;
  /** When it was created (epoch ms or Date); default now. */
  createdAt?: number | Date;
  /** Talk time of a completed finished call (default 30). */
  talkSeconds?: number;
  customField?: string;
}

/** Read access to the simulated calls (tests), and a way to add some. */
export interface SimulatorCalls {
  /** The call as Exotel's JSON would show it (with Details), or undefined. */
  get(sid: string): WireCall | undefined;
  /** Every call, newest first. */
  list(): WireCall[];
  /** Adds a call (see CreateCallInput); returns it. */
  create(input: CreateCallInput): WireCall;
  /** Calls `listener` on every change of any call; returns an unsubscribe function. */
  onChange(listener: (call: WireCall) => void): () => void;
  /** Resolves with the call once `predicate` holds (checked now and on every change). */
  waitFor(sid: string, predicate: (call: WireCall) => boolean, timeoutMs?: number): Promise<WireCall>;
}

export interface SimulatorSms {
  get(sid: string): WireSms | undefined;
  list(): WireSms[];
  onChange(listener: (sms: WireSms) => void): () => void;
  waitFor(sid: string, predicate: (sms: WireSms) => boolean, timeoutMs?: number): Promise<WireSms>;
}

export interface Simulator {
  /** Base URL, e.g. http://127.0.0.1:4010 (clients append /v1/Accounts/…). */
  url: string;
  accountSid: string;
  apiKey: string;
  apiToken: string;
  /** Every request received (not the /__sim/ admin routes); the last 10 000 are kept. */
  requests: RecordedRequest[];
  /** How many recorded requests match (endpoint like 'calls.get', method like 'GET'). */
  countRequests(filter?: { endpoint?: string; method?: string }): number;
  resetRequests(): void;
  /** Every callback attempt (and dropped callback). */
  callbacks: RecordedCallback[];
  faults: FaultControls;
  calls: SimulatorCalls;
  sms: SimulatorSms;
  /** Incoming calls played through a flow (also `POST /__sim/incoming-calls`). */
  incoming: {
    /** Starts one; the call exists at once, its flow's requests follow. Throws on a missing URL. */
    start(input?: IncomingCallInput): IncomingFlowRecord;
    get(sid: string): IncomingFlowRecord | undefined;
    list(): IncomingFlowRecord[];
  };
  exoPhones: readonly WireExoPhone[];
  /** Stops listening, cancels lifecycles and in-flight callbacks. Idempotent. */
  stop(): Promise<void>;
}

function waiter<T>(
  get: () => T | undefined,
  subscribe: (listener: (value: T) => void) => () => void,
  predicate: (value: T) => boolean,
  timeoutMs: number,
  what: string,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const now = get();
    if (now !== undefined && predicate(now)) return resolve(now);
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    const unsubscribe = subscribe((value) => {
      if (predicate(value)) {
        clearTimeout(timer);
        unsubscribe();
        resolve(value);
      }
    });
  });
}

/** Starts a simulator and resolves once it listens. */
export async function createSimulator(options: SimulatorOptions = {}): Promise<Simulator> {
  const o = { ...SIMULATOR_DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) } as typeof SIMULATOR_DEFAULTS &
    Pick<SimulatorOptions, 'log' | 'incomingCallUrl'>;
  if (!(o.timeScale > 0)) throw new RangeError(`timeScale must be > 0, got ${o.timeScale}`);
  if (!(Number.isInteger(o.ratePerMinute) && o.ratePerMinute > 0)) throw new RangeError(`ratePerMinute must be a positive integer, got ${o.ratePerMinute}`);
  if (!(o.rateWindowMs > 0)) throw new RangeError(`rateWindowMs must be > 0, got ${o.rateWindowMs}`);
  const log = o.log ?? ((line: string) => console.log(line));

  const scheduler = createScheduler(o.timeScale, (err) => log(`Exotel SIMULATOR internal error: ${(err as Error)?.stack ?? String(err)}`));
  const faults = createFaultEngine();
  const callbacks = createCallbackSender(scheduler, faults, (line) => log(`Exotel SIMULATOR ${line}`));
  const state: SimState = { accountSid: o.accountSid, calls: new Map(), sms: new Map(), exoPhones: SEEDED_EXOPHONES.map((p) => ({ ...p })) };
  const callListeners = new Set<(call: WireCall) => void>();
  const smsListeners = new Set<(sms: WireSms) => void>();
  const requests: RecordedRequest[] = [];
  let baseUrl = '';
  const recordingUrl = (sid: string): string => `${baseUrl}/__sim/recordings/${sid}.mp3`;
  const wireCall = (call: CallRecord): WireCall => toWireCall(call, { details: true });
  const emitCall = (call: CallRecord): void => {
    const wire = wireCall(call);
    for (const listener of [...callListeners]) listener(wire);
  };
  const emitSms = (sms: SmsRecord): void => {
    const wire = toWireSms(sms);
    for (const listener of [...smsListeners]) listener(wire);
  };
  // Lifecycle steps of held calls, waiting for a release (hold-calls faults).
  const parked = new Set<() => void>();
  faults.onCallsReleased(() => {
    const resumes = [...parked];
    parked.clear();
    // On the scheduler, so a release never runs lifecycle steps inside the caller, nor after stop().
    for (const resume of resumes) scheduler.afterReal(0, resume);
  });
  const startCall = (call: CallRecord): void => {
    state.calls.set(call.sid, call);
    runCallLifecycle(call, {
      scheduler,
      callbacks,
      onChange: emitCall,
      recordingUrl: (c) => recordingUrl(c.sid),
      isHeld: (c) => faults.holdsCall(c),
      park: (resume) => parked.add(resume),
    });
  };
  const startSms = (sms: SmsRecord): void => {
    state.sms.set(sms.sid, sms);
    runSmsLifecycle(sms, { scheduler, callbacks, onChange: emitSms, dndSpelling: o.smsDndStatus });
  };

  const incomingUrl = o.incomingCallUrl;
  const incoming = createIncomingFlows({
    scheduler,
    accountSid: o.accountSid,
    exoPhones: state.exoPhones,
    addCall: (call) => {
      state.calls.set(call.sid, call);
      emitCall(call);
    },
    changed: emitCall,
    defaultUrl: () => (typeof incomingUrl === 'function' ? incomingUrl() : incomingUrl),
    log: (line) => log(`Exotel SIMULATOR ${line}`),
  });

  const server: Server = createServer(
    createRequestHandler({
      state,
      startCall,
      startSms,
      apiKey: o.apiKey,
      apiToken: o.apiToken,
      budget: createRateBudget(o.ratePerMinute, o.rateWindowMs),
      faults,
      requests,
      sleep: (ms) => scheduler.sleep(ms),
      log,
      callbackRecords: () => callbacks.records,
      incoming,
    }),
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  baseUrl = `http://${host === '0.0.0.0' ? '127.0.0.1' : host === '[::]' ? '[::1]' : host}:${address.port}`;
  if (o.seed) seedState(state, { callCount: o.seedCalls, nowMs: Math.floor(Date.now() / 1000) * 1000, recordingBase: `${baseUrl}/__sim/recordings` });
  log(`Exotel SIMULATOR (not real Exotel) listening on ${baseUrl} — account ${o.accountSid}, timeScale ${o.timeScale}, budget ${o.ratePerMinute}/${o.rateWindowMs} ms`);

  const normalise = (raw: string, name: string): string => {
    const parsed = parseNumber(raw);
    if (!parsed) throw new TypeError(`${name} is not a valid phone number: ${JSON.stringify(raw)}`);
    return echoNumber(parsed);
  };

  let stopping: Promise<void> | null = null;
  return {
    url: baseUrl,
    accountSid: o.accountSid,
    apiKey: o.apiKey,
    apiToken: o.apiToken,
    requests,
    countRequests: (filter = {}) =>
      requests.filter((r) => (filter.endpoint === undefined || r.endpoint === filter.endpoint) && (filter.method === undefined || r.method === filter.method)).length,
    resetRequests: () => {
      requests.length = 0;
    },
    callbacks: callbacks.records,
    faults: faults.controls,
    calls: {
      get: (sid) => {
        const call = state.calls.get(sid);
        return call ? wireCall(call) : undefined;
      },
      list: () => [...state.calls.values()].sort((a, b) => b.createdAtMs - a.createdAtMs).map(wireCall),
      create: (input) => {
        const createdAtMs = input.createdAt === undefined ? Date.now() : Number(input.createdAt);
        const from = normalise(input.from, 'from');
        const to = input.to !== undefined ? normalise(input.to, 'to') : '';
        const callerId = normalise(input.callerId ?? SEEDED_EXOPHONES[0]!.sid, 'callerId');
        const direction = input.direction ?? 'outbound-api';
        const sid = randomSid();
        if (input.status !== undefined) {
          const call = finishedCall({
            sid, accountSid: o.accountSid, from, to, callerId, direction, createdAtMs, outcome: input.status,
            ...(input.talkSeconds !== undefined ? { talkSeconds: input.talkSeconds } : {}),
            customField: input.customField ?? null,
          });
          state.calls.set(sid, call);
          return wireCall(call);
        }
        const call: CallRecord = {
          sid, accountSid: o.accountSid, from, to, callerId, flowId: null, direction, status: 'queued',
          createdAtMs, updatedAtMs: createdAtMs, startedAtMs: createdAtMs, endedAtMs: null, finalized: false,
          durationSeconds: null, conversationSeconds: null, price: null, answeredBy: null, record: false, recordingUrl: null,
          customField: input.customField ?? null, callType: 'trans', timeLimitSeconds: null, timeOutSeconds: null,
          legs: to !== '' ? [{ status: null, onCallSeconds: null }, { status: null, onCallSeconds: null }] : [{ status: null, onCallSeconds: null }],
          statusCallback: null,
        };
        startCall(call);
        return wireCall(call);
      },
      onChange: (listener) => {
        callListeners.add(listener);
        return () => callListeners.delete(listener);
      },
      waitFor: (sid, predicate, timeoutMs = 10_000) =>
        waiter(
          () => {
            const call = state.calls.get(sid);
            return call ? wireCall(call) : undefined;
          },
          (listener) => {
            const filtered = (call: WireCall): void => {
              if (call.Sid === sid) listener(call);
            };
            callListeners.add(filtered);
            return () => callListeners.delete(filtered);
          },
          predicate,
          timeoutMs,
          `call ${sid}`,
        ),
    },
    sms: {
      get: (sid) => {
        const sms = state.sms.get(sid);
        return sms ? toWireSms(sms) : undefined;
      },
      list: () => [...state.sms.values()].sort((a, b) => b.createdAtMs - a.createdAtMs).map(toWireSms),
      onChange: (listener) => {
        smsListeners.add(listener);
        return () => smsListeners.delete(listener);
      },
      waitFor: (sid, predicate, timeoutMs = 10_000) =>
        waiter<WireSms>(
          () => {
            const sms = state.sms.get(sid);
            return sms ? toWireSms(sms) : undefined;
          },
          (listener) => {
            const filtered = (sms: WireSms): void => {
              if (sms.Sid === sid) listener(sms);
            };
            smsListeners.add(filtered);
            return () => smsListeners.delete(filtered);
          },
          predicate,
          timeoutMs,
          `SMS ${sid}`,
        ),
    },
    exoPhones: state.exoPhones,
    incoming: {
      start: (input = {}) => incoming.start(input),
      get: (sid) => incoming.get(sid),
      list: () => incoming.list(),
    },
    stop: () => {
      stopping ??= new Promise<void>((resolve) => {
        scheduler.stop();
        server.close(() => resolve());
        server.closeAllConnections();
        log('Exotel SIMULATOR stopped');
      });
      return stopping;
    },
  };
}
