/**
 * Posts status callbacks the way Exotel does: POST, form-urlencoded by default (multipart or JSON on
 * request), answer 2xx within 15 s or it is retried at most twice. Callback faults (drop, duplicate,
 * reorder, delay) are applied here, once per logical callback.
 */
import type { ActiveFault, FaultEngine } from './faults.js';
import type { Scheduler } from './scheduler.js';

/** Exotel: the receiver must answer within 15 s; at most 2 retries. */
export const CALLBACK_TIMEOUT_SECONDS = 15;
export const CALLBACK_MAX_RETRIES = 2;
/** Pause between attempts (simulated seconds); Exotel does not document one. */
export const CALLBACK_RETRY_PAUSE_SECONDS = 1;

/** Recorded callback attempts kept (oldest dropped first). */
export const MAX_RECORDED_CALLBACKS = 10_000;

export type CallbackContentType = 'application/x-www-form-urlencoded' | 'multipart/form-data' | 'application/json';

/** One callback to deliver. Values are sent as given; in form encodings arrays of objects become a[i][k]. */
export interface OutgoingCallback {
  kind: 'call' | 'sms';
  sid: string;
  eventType?: 'answered' | 'terminal';
  url: string;
  contentType: CallbackContentType;
  fields: Record<string, unknown>;
}

/** One delivery attempt, or a dropped callback, as `sim.callbacks` records it. */
export interface RecordedCallback {
  kind: 'call' | 'sms';
  sid: string;
  eventType: 'answered' | 'terminal' | null;
  url: string;
  contentType: CallbackContentType;
  /** 1 for the first attempt, 2–3 for retries; 0 for a dropped callback. */
  attempt: number;
  /** HTTP status the receiver answered, or what went wrong. */
  outcome: number | 'timeout' | 'network-error' | 'dropped';
  at: number;
}

/** Flattens fields for form encodings: `Legs: [{Status: 'x'}]` → `Legs[0][Status]=x`; null → "". */
export function flattenFields(fields: Record<string, unknown>): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const walk = (key: string, value: unknown): void => {
    if (value === null || value === undefined) out.push([key, '']);
    else if (Array.isArray(value)) value.forEach((item, i) => walk(`${key}[${i}]`, item));
    else if (typeof value === 'object') for (const [k, v] of Object.entries(value)) walk(`${key}[${k}]`, v);
    else out.push([key, String(value)]);
  };
  for (const [key, value] of Object.entries(fields)) walk(key, value);
  return out;
}

function encode(callback: OutgoingCallback): { body: string | FormData; headers: Record<string, string> } {
  switch (callback.contentType) {
    case 'application/json':
      return { body: JSON.stringify(callback.fields), headers: { 'content-type': 'application/json' } };
    case 'multipart/form-data': {
      const form = new FormData();
      for (const [k, v] of flattenFields(callback.fields)) form.append(k, v);
      // fetch sets the multipart boundary itself.
      return { body: form, headers: {} };
    }
    case 'application/x-www-form-urlencoded':
      return { body: new URLSearchParams(flattenFields(callback.fields)).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } };
  }
}

export interface CallbackSender {
  /** Sends (or, per faults, drops/duplicates/holds/delays) one callback. Never throws. */
  send(callback: OutgoingCallback): void;
  readonly records: RecordedCallback[];
}

export function createCallbackSender(scheduler: Scheduler, faults: FaultEngine, log: (line: string) => void): CallbackSender {
  const records: RecordedCallback[] = [];
  const held = new Map<ActiveFault, OutgoingCallback[]>();

  const record = (cb: OutgoingCallback, attempt: number, outcome: RecordedCallback['outcome']): void => {
    records.push({ kind: cb.kind, sid: cb.sid, eventType: cb.eventType ?? null, url: cb.url, contentType: cb.contentType, attempt, outcome, at: Date.now() });
    if (records.length > MAX_RECORDED_CALLBACKS) records.splice(0, records.length - MAX_RECORDED_CALLBACKS);
  };

  const deliver = async (cb: OutgoingCallback): Promise<void> => {
    for (let attempt = 1; attempt <= 1 + CALLBACK_MAX_RETRIES && !scheduler.stopped; attempt++) {
      let outcome: RecordedCallback['outcome'];
      try {
        const { body, headers } = encode(cb);
        const timeout = AbortSignal.timeout(Math.max(50, scheduler.scaledMs(CALLBACK_TIMEOUT_SECONDS)));
        const res = await fetch(cb.url, { method: 'POST', body, headers: { ...headers, 'user-agent': 'Exotel-Simulator' }, signal: AbortSignal.any([timeout, scheduler.signal]) });
        outcome = res.status;
        await res.arrayBuffer().catch(() => undefined);
      } catch (err) {
        outcome = (err as Error).name === 'TimeoutError' ? 'timeout' : 'network-error';
      }
      if (scheduler.stopped) return;
      record(cb, attempt, outcome);
      if (typeof outcome === 'number' && outcome >= 200 && outcome < 300) return;
      log(`callback ${cb.kind}/${cb.eventType ?? 'sms'} for ${cb.sid} attempt ${attempt}: ${outcome}`);
      if (attempt <= CALLBACK_MAX_RETRIES) await scheduler.sleep(scheduler.scaledMs(CALLBACK_RETRY_PAUSE_SECONDS));
    }
  };

  const sendNow = (cb: OutgoingCallback, copies: number, delayMs: number): void => {
    const go = (): void => {
      for (let i = 0; i < copies; i++) void deliver(cb);
    };
    if (delayMs > 0) scheduler.afterReal(delayMs, go);
    else go();
  };

  faults.onRelease((fault) => {
    const list = held.get(fault) ?? [];
    held.delete(fault);
    // Sequentially in reverse, so the receiver really sees them out of order.
    void (async () => {
      for (const cb of list.reverse()) await deliver(cb);
    })();
  });

  return {
    records,
    send(cb) {
      if (scheduler.stopped) return;
      const plan = faults.planCallback({ kind: cb.kind, sid: cb.sid, ...(cb.eventType ? { eventType: cb.eventType } : {}) });
      switch (plan.action) {
        case 'drop':
          record(cb, 0, 'dropped');
          return;
        case 'hold': {
          const list = held.get(plan.fault) ?? [];
          list.push(cb);
          held.set(plan.fault, list);
          return;
        }
        case 'send':
          sendNow(cb, plan.copies, plan.delayMs);
          return;
      }
    },
  };
}
