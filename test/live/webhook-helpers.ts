/** Posting Exotel-shaped callbacks straight at a gateway's webhook URLs, in each of Exotel's encodings. */
import { epochMsToExotel } from '../../src/exotel/dates.js';
import { createCallbackUrls, type CallbackUrls } from '../../src/live/callback-urls.js';
import type { Gateway } from '../../src/server.js';

export function callbackUrlsOf(gw: Gateway): CallbackUrls {
  return createCallbackUrls({ publicUrl: gw.url, webhookSecret: gw.config.webhookSecret, accountSid: gw.exotel.accountSid });
}

export type Encoding = 'form' | 'json' | 'multipart';

/** A rich status callback (StatusCallbackEvents set), as Exotel posts it. */
export function callCallback(callSid: string, status: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const now = epochMsToExotel(Date.now());
  return {
    CallSid: callSid,
    Status: status,
    EventType: status === 'in-progress' ? 'answered' : 'terminal',
    DateCreated: now,
    DateUpdated: now,
    From: '09876543210',
    To: '09812345670',
    Direction: 'outbound-api',
    RecordingUrl: '',
    CustomField: 'test',
    ...extra,
  };
}

/** Form encodings flatten arrays of objects as Exotel does: Legs[0][Status]=… */
function flatten(fields: Record<string, unknown>): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const walk = (key: string, value: unknown): void => {
    if (value === null || value === undefined) out.push([key, '']);
    else if (Array.isArray(value)) value.forEach((v, i) => walk(`${key}[${i}]`, v));
    else if (typeof value === 'object') for (const [k, v] of Object.entries(value)) walk(`${key}[${k}]`, v);
    else out.push([key, String(value)]);
  };
  for (const [k, v] of Object.entries(fields)) walk(k, v);
  return out;
}

/** POSTs `fields` to `url` in `encoding`; returns status and body text (always read). */
export async function post(url: string, fields: Record<string, unknown>, encoding: Encoding = 'form'): Promise<{ status: number; text: string }> {
  let init: RequestInit;
  switch (encoding) {
    case 'json':
      init = { body: JSON.stringify(fields), headers: { 'content-type': 'application/json' } };
      break;
    case 'multipart': {
      const form = new FormData();
      for (const [k, v] of flatten(fields)) form.append(k, v);
      init = { body: form };
      break;
    }
    case 'form':
      init = { body: new URLSearchParams(flatten(fields)).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } };
      break;
  }
  const res = await fetch(url, { method: 'POST', ...init });
  return { status: res.status, text: await res.text() };
}
