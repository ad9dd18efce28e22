/** SMS: send, bulk send with per-message bodies, details (exotel-api.md "SMS"). */
import { badInput, ErrorCode, exotelMessage, GatewayError } from '../errors.js';
import type { ExotelHttp } from './http.js';
import { int, parseSms, text } from './parse.js';
import type { BulkSmsResult, ExotelApi, RequestOptions, SendBulkSmsParams, SendSmsParams, WireSms, WireSmsResponse } from './types.js';

/** Exotel: Body ≤ 2000 characters; bulksend ≤ 100 messages per request. */
export const SMS_LIMITS = { maxBodyLength: 2_000, maxBulkMessages: 100 } as const;

type SmsApi = Pick<ExotelApi, 'sendSms' | 'sendBulkSms' | 'getSms'>;

/** The SMS methods of ExotelApi. */
export function createSmsApi(http: ExotelHttp): SmsApi {
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
      return parseSms(smsOf(json));
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
      return bulkResults(json, messages.map((m) => m.to.trim()));
    },

    async getSms(sid, options) {
      const json = (await http.request(
        { endpoint: 'sms.get', method: 'GET', path: path(`SMS/Messages/${encodeURIComponent(required(sid, 'sid'))}.json`), notFoundAsNull: true },
        options,
      )) as WireSmsResponse | null;
      // Exotel may answer an unknown Sid with 200 "No matching results" and no SMSMessage (exotel-api.md §10).
      if (json === null || typeof json !== 'object' || !json.SMSMessage) return null;
      return parseSms(json.SMSMessage);
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

/**
 * Exotel's bulksend answer (an array of `{SMSMessage}` or `{RestException}`, exotel-api.md §9) → one result
 * per input message, in input order. Items are matched by position when the array lines up with the input,
 * otherwise by recipient. A message with no item of its own gets status 0 and a message saying its fate is
 * unknown — it may have been sent, so it must not be resent blindly.
 */
export function bulkResults(json: unknown, recipients: string[]): BulkSmsResult[] {
  const items: unknown[] = Array.isArray(json)
    ? json
    : json && typeof json === 'object' && Array.isArray((json as Record<string, unknown>).SMSMessages)
      ? ((json as Record<string, unknown>).SMSMessages as unknown[])
      : [];
  const parsed = items.map(parseBulkItem);
  const byPosition = parsed.length === recipients.length;
  const used = new Set<number>();
  return recipients.map((to, i) => {
    let index = byPosition ? i : parsed.findIndex((p, j) => !used.has(j) && p.to !== null && sameNumber(p.to, to));
    if (index < 0) {
      return { ok: false, to, status: 0, message: 'Exotel did not report on this message; it may or may not have been sent' };
    }
    used.add(index);
    const item = parsed[index]!;
    if (item.kind === 'sms') return { ok: true, to, sms: item.sms };
    return { ok: false, to, status: item.status, message: item.message };
  });
}

type BulkItem =
  | { kind: 'sms'; to: string | null; sms: ReturnType<typeof parseSms> }
  | { kind: 'error'; to: string | null; status: number; message: string };

function parseBulkItem(item: unknown): BulkItem {
  const o = (item && typeof item === 'object' ? item : {}) as Record<string, unknown>;
  const wire = (o.SMSMessage ?? (o.Sid ? o : undefined)) as WireSms | undefined;
  if (wire && typeof wire === 'object') {
    try {
      return { kind: 'sms', to: text(wire.To), sms: parseSms(wire) };
    } catch (error) {
      return { kind: 'error', to: text(wire.To), status: 0, message: error instanceof Error ? error.message : 'unreadable message' };
    }
  }
  const ex = (o.RestException ?? {}) as Record<string, unknown>;
  return {
    kind: 'error',
    to: text(ex.To ?? o.To),
    status: int(ex.Status) ?? 0,
    message: text(ex.Message) ?? exotelMessage(JSON.stringify(o)) ?? 'Exotel rejected this message',
  };
}
