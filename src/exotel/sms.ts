/** SMS: send, bulk send with per-message bodies, details (Exotel's SMS API docs). */
import { badInput, ErrorCode, exotelCode, exotelMessage, GatewayError } from '../errors.js';
import { readAcceptedAnswer, type ExotelHttp } from './http.js';
import { int, parseShortBulkSms, parseSms, text, type ParseOptions } from './parse.js';
import type { BulkSmsResult, ExotelApi, RequestOptions, SendBulkSmsParams, SendSmsParams, WireSms, WireSmsResponse } from './types.js';

/** Exotel: Body ≤ 2000 characters; bulksend ≤ 100 messages per request. */
export const SMS_LIMITS = { maxBodyLength: 2_000, maxBulkMessages: 100 } as const;

type SmsApi = Pick<ExotelApi, 'sendSms' | 'sendBulkSms' | 'getSms'>;

/** The SMS methods of ExotelApi. */
export function createSmsApi(http: ExotelHttp, accountSid = '', parse: ParseOptions = {}): SmsApi {
  const path = (rest: string) => `${http.v1}/${rest}`;
  return {
    async sendSms(params: SendSmsParams, options?: RequestOptions) {
      const form = new URLSearchParams();
      form.set('From', required(params.from, 'from'));
      form.set('To', required(params.to, 'to'));
      form.set('Body', body(params.body, 'body'));
      if (params.encodingType !== undefined) form.set('EncodingType', params.encodingType);
      if (params.priority !== undefined) form.set('Priority', params.priority);
      if (params.dltEntityId !== undefined) form.set('DltEntityId', required(params.dltEntityId, 'dltEntityId'));
      if (params.dltTemplateId !== undefined) form.set('DltTemplateId', required(params.dltTemplateId, 'dltTemplateId'));
      if (params.customId !== undefined) form.set('CustomId', params.customId);
      if (params.statusCallback !== undefined) form.set('StatusCallback', required(params.statusCallback, 'statusCallback'));
      const json = (await http.request({ endpoint: 'sms.send', method: 'POST', path: path('Sms/send.json'), form }, options)) as WireSmsResponse;
      return readAcceptedAnswer('sms.send', () => parseSms(smsOf(json), parse));
    },

    async sendBulkSms(params: SendBulkSmsParams, options?: RequestOptions) {
      const messages = params.messages;
      if (!Array.isArray(messages) || messages.length === 0) throw badInput('messages', 'at least one message is required');
      if (messages.length > SMS_LIMITS.maxBulkMessages) {
        throw badInput('messages', `at most ${SMS_LIMITS.maxBulkMessages} messages per request, got ${messages.length}`);
      }
      const form = new URLSearchParams();
      form.set('From', required(params.from, 'from'));
      messages.forEach((m, i) => {
        form.set(`Messages[${i}][To]`, required(m.to, `messages[${i}].to`));
        form.set(`Messages[${i}][Body]`, body(m.body, `messages[${i}].body`));
      });
      if (params.encodingType !== undefined) form.set('EncodingType', params.encodingType);
      if (params.dltEntityId !== undefined) form.set('DltEntityId', required(params.dltEntityId, 'dltEntityId'));
      if (params.dltTemplateId !== undefined) form.set('DltTemplateId', required(params.dltTemplateId, 'dltTemplateId'));
      if (params.statusCallback !== undefined) form.set('StatusCallback', required(params.statusCallback, 'statusCallback'));
      const json = await http.request({ endpoint: 'sms.bulksend', method: 'POST', path: path('Sms/bulksend.json'), form }, options);
      return bulkResults(json, { accountSid, from: params.from.trim(), messages: messages.map((m) => ({ to: m.to.trim(), body: m.body })) }, parse);
    },

    async getSms(sid, options) {
      const json = (await http.request(
        { endpoint: 'sms.get', method: 'GET', path: path(`SMS/Messages/${encodeURIComponent(required(sid, 'sid'))}.json`), notFoundAsNull: true },
        options,
      )) as WireSmsResponse | null;
      // Exotel may answer an unknown Sid with 200 "No matching results" and no SMSMessage (docs/exotel-fidelity.md).
      if (json === null || typeof json !== 'object' || !json.SMSMessage) return null;
      return parseSms(json.SMSMessage, parse);
    },
  };
}

function required(value: string | undefined, field: string): string {
  if (typeof value !== 'string' || value.trim() === '') throw badInput(field, 'is required');
  return value.trim();
}

function body(value: string | undefined, field: string): string {
  if (typeof value !== 'string' || value.length === 0) throw badInput(field, 'is required');
  if (value.length > SMS_LIMITS.maxBodyLength) throw badInput(field, `at most ${SMS_LIMITS.maxBodyLength} characters, got ${value.length}`);
  return value;
}

function smsOf(json: WireSmsResponse | null): WireSms {
  if (!json || typeof json !== 'object' || !json.SMSMessage) throw new GatewayError(ErrorCode.UPSTREAM_ERROR, 'Exotel sent an unexpected answer: no SMSMessage');
  return json.SMSMessage;
}

/** Digits only, last 10: "+91 98765 43210", "09876543210" and "9876543210" are one Indian number. */
function sameNumber(a: string, b: string): boolean {
  const tail = (s: string) => s.replace(/\D/g, '').slice(-10);
  return tail(a) !== '' && tail(a) === tail(b);
}

/** What the gateway sent in one bulksend request: the short answer form leaves it to fill in the rest. */
export interface BulkSent {
  accountSid: string;
  from: string;
  messages: Array<{ to: string; body: string }>;
}

/**
 * Exotel's bulksend answer → one result per input message, in input order. Both documented forms are read
 * (docs/exotel-fidelity.md, "Bulk SMS"): an array of `{SMSMessage}` / `{RestException}`, and
 * `{"SMSMessages": [{"Sid", "Status", "To"}]}`, whose entries are accepted messages (their other fields
 * filled from the request or left null), never errors. Items are matched by position when the answer lines
 * up with the input, otherwise by recipient. Only a message the answer does not mention at all (or mentions
 * in a form the gateway cannot read) gets status 0, "fate unknown": it may have been sent, so it must not
 * be resent blindly.
 */
export function bulkResults(json: unknown, sent: BulkSent | string[], parse: ParseOptions = {}): BulkSmsResult[] {
  const request: BulkSent = Array.isArray(sent) ? { accountSid: '', from: '', messages: sent.map((to) => ({ to, body: '' })) } : sent;
  const recipients = request.messages.map((m) => m.to);
  const items = bulkItems(json);
  const byPosition = items.length === recipients.length;
  const parsed = items.map((item, i) => parseBulkItem(item, request, byPosition ? i : undefined, parse));
  const used = new Set<number>();
  return recipients.map((to, i) => {
    const index = byPosition ? i : parsed.findIndex((p, j) => !used.has(j) && p.to !== null && sameNumber(p.to, to));
    if (index < 0) {
      return { ok: false, to, status: 0, message: 'Exotel did not report on this message; it may or may not have been sent' };
    }
    used.add(index);
    const item = parsed[index]!;
    if (item.kind === 'sms') return { ok: true, to, sms: item.sms };
    return { ok: false, to, status: item.status, message: item.message, ...(item.exotelCode !== undefined ? { exotelCode: item.exotelCode } : {}) };
  });
}

/** The per-message items of either answer form (a lone `{SMSMessage}` counts as a one-item answer). */
function bulkItems(json: unknown): unknown[] {
  if (Array.isArray(json)) return json;
  if (!json || typeof json !== 'object') return [];
  const o = json as Record<string, unknown>;
  if (Array.isArray(o.SMSMessages)) return o.SMSMessages;
  if (o.SMSMessages && typeof o.SMSMessages === 'object') return [o.SMSMessages];
  if (o.SMSMessage && typeof o.SMSMessage === 'object') return [o];
  return [];
}

type BulkItem =
  | { kind: 'sms'; to: string | null; sms: ReturnType<typeof parseSms> }
  | { kind: 'error'; to: string | null; status: number; message: string; exotelCode?: number };

function parseBulkItem(item: unknown, request: BulkSent, position: number | undefined, parse: ParseOptions): BulkItem {
  const o = (item && typeof item === 'object' ? item : {}) as Record<string, unknown>;
  const wire = (o.SMSMessage ?? (text(o.Sid) ? o : undefined)) as Record<string, unknown> | undefined;
  if (wire && typeof wire === 'object') {
    const to = text(wire.To);
    // The short form carries Sid, Status and To only; an entry with its own dates is a full message.
    const short = wire.DateCreated === undefined && wire.Body === undefined && wire.From === undefined;
    try {
      if (!short) return { kind: 'sms', to, sms: parseSms(wire as never, parse) };
      const mine = position !== undefined ? request.messages[position] : request.messages.find((m) => to !== null && sameNumber(m.to, to));
      const sms = parseShortBulkSms(wire, { accountSid: request.accountSid, from: request.from, to: mine?.to ?? to ?? '', body: mine?.body ?? '' }, parse);
      return { kind: 'sms', to, sms };
    } catch (error) {
      return { kind: 'error', to, status: 0, message: error instanceof Error ? error.message : 'unreadable message' };
    }
  }
  const ex = (o.RestException ?? {}) as Record<string, unknown>;
  const code = exotelCode(ex.Code);
  return {
    kind: 'error',
    to: text(ex.To ?? o.To),
    // A RestException without a Status still says Exotel refused the message.
    status: int(ex.Status) ?? (o.RestException ? 400 : 0),
    message: text(ex.Message) ?? exotelMessage(JSON.stringify(o)) ?? 'Exotel rejected this message',
    ...(code !== undefined ? { exotelCode: code } : {}),
  };
}
