/**
 * The other forms Exotel really answers in (docs/exotel-fidelity.md), applied on demand by
 * the `answer-form` fault, and Exotel's error bodies with a numeric Code, as JSON or XML (`exotel-error`).
 * The default answers stay the documented ones; these exist so the gateway is tested against both.
 */
import type { ServerResponse } from 'node:http';
import type { AnswerForm, SimEndpoint } from './faults.js';

/** Exotel's words for the codes the simulator knows (the `exotel-error` fault's default message). */
const CODE_MESSAGES: Readonly<Record<number, string>> = {
  35008: 'Service Unavailable; ',
  340030: 'Your account is not yet KYC compliant',
  40001: 'Insufficient balance to send the SMS',
  40002: 'The account is not active',
  40210: "Invalid Parameters: No 'From' specified",
};

const STATUS_MESSAGES: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Authentication is required to view this page.',
  402: 'Payment Required',
  403: 'Forbidden',
  404: 'Not Found',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

const xmlEscape = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');

/** Answers `status` with a RestException carrying `code`, as JSON or as Exotel's XML. */
export function sendExotelError(res: ServerResponse, fault: { status: number; code?: number; message?: string; format?: 'json' | 'xml' }): void {
  if (res.headersSent || res.destroyed) return;
  const message = fault.message ?? (fault.code !== undefined ? CODE_MESSAGES[fault.code] : undefined) ?? STATUS_MESSAGES[fault.status] ?? `HTTP ${fault.status}`;
  let text: string;
  let type: string;
  if (fault.format === 'xml') {
    const code = fault.code !== undefined ? `\n    <Code>${fault.code}</Code>` : '';
    text = `<?xml version="1.0" encoding="UTF-8"?>\n<TwilioResponse>\n  <RestException>\n    <Status>${fault.status}</Status>\n    <Message>${xmlEscape(message)}</Message>${code}\n  </RestException>\n</TwilioResponse>\n`;
    type = 'application/xml; charset=utf-8';
  } else {
    text = JSON.stringify({ RestException: { Status: fault.status, Message: message, ...(fault.code !== undefined ? { Code: fault.code } : {}) } });
    type = 'application/json; charset=utf-8';
  }
  res.writeHead(fault.status, { 'content-type': type, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Which endpoints' answers each form concerns. */
const FORM_ENDPOINTS: Readonly<Record<AnswerForm, ReadonlySet<SimEndpoint>>> = {
  'legacy-sms': new Set<SimEndpoint>(['sms.send', 'sms.get', 'sms.bulksend']),
  'bulk-sms-short': new Set<SimEndpoint>(['sms.bulksend']),
  'call-strings': new Set<SimEndpoint>(['calls.get', 'calls.list', 'calls.connect']),
};

/** True when `form` changes answers of `endpoint`. */
export function formApplies(form: AnswerForm, endpoint: SimEndpoint): boolean {
  return FORM_ENDPOINTS[form].has(endpoint);
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Legacy SMS: every empty value the string "null", DetailedStatusCode a string. */
function legacySms(sms: Json): Json {
  const out: Json = {};
  for (const [key, value] of Object.entries(sms)) out[key] = value === null ? 'null' : key === 'DetailedStatusCode' && typeof value === 'number' ? String(value) : value;
  return out;
}

/** Older call answers: Duration and Price as strings ("47", "1.500"). */
function stringCall(call: Json): Json {
  const out = { ...call };
  if (typeof out.Duration === 'number') out.Duration = String(out.Duration);
  if (typeof out.Price === 'number') out.Price = out.Price.toFixed(3);
  return out;
}

/** The answer `body` of `endpoint` in `form`; bodies the form does not concern come back unchanged. */
export function reshape(form: AnswerForm, endpoint: SimEndpoint, body: unknown): unknown {
  if (!formApplies(form, endpoint)) return body;
  switch (form) {
    case 'legacy-sms':
      if (Array.isArray(body)) return body.map((item) => (isObject(item) && isObject(item.SMSMessage) ? { SMSMessage: legacySms(item.SMSMessage) } : item));
      return isObject(body) && isObject(body.SMSMessage) ? { SMSMessage: legacySms(body.SMSMessage) } : body;
    case 'bulk-sms-short': {
      if (!Array.isArray(body)) return body;
      // Only accepted messages are listed in this form; a rejected one is simply not mentioned.
      const accepted = body.filter((item): item is { SMSMessage: Json } => isObject(item) && isObject(item.SMSMessage));
      return { SMSMessages: accepted.map(({ SMSMessage: m }) => ({ Sid: m.Sid, Status: m.Status, To: m.To })) };
    }
    case 'call-strings':
      if (isObject(body) && isObject(body.Call)) return { Call: stringCall(body.Call) };
      if (isObject(body) && Array.isArray(body.Calls)) return { ...body, Calls: body.Calls.map((c) => (isObject(c) ? stringCall(c) : c)) };
      return body;
  }
}
