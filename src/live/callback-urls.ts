/**
 * Callback URLs the gateway hands to Exotel, and the check that a request really came to one of them.
 *
 * Exotel signs nothing (Exotel's callback docs: no signature or auth is sent), so the only proof a callback is
 * ours is an unguessable path segment. Each kind of callback gets its own token, derived from
 * WEBHOOK_SECRET with HMAC, so the URLs survive restarts and no secret ever travels in a URL.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { scrub } from '../scrub.js';

/** The kinds of callback the gateway accepts; also the last path segment of each URL. */
export const CALLBACK_KINDS = ['call-status', 'sms-status', 'incoming-call'] as const;
export type CallbackKind = (typeof CALLBACK_KINDS)[number];

/** Where every webhook route lives, below PUBLIC_URL. */
export const WEBHOOK_BASE_PATH = '/webhooks/exotel';

export interface CallbackUrlOptions {
  /** Base URL Exotel can reach (PUBLIC_URL), without a trailing slash. */
  publicUrl: string;
  webhookSecret: string;
  accountSid: string;
}

export interface CallbackUrls {
  /** StatusCallback of connectCall / connectCallToFlow. */
  callStatus: string;
  /** StatusCallback of sendSms / sendBulkSms. */
  smsStatus: string;
  /** URL for a Passthru applet in an incoming-call flow. */
  incomingCall: string;
}

/** The token of one kind: base64url(HMAC-SHA256(secret, accountSid + kind)). */
export function callbackToken(webhookSecret: string, accountSid: string, kind: CallbackKind): string {
  return createHmac('sha256', webhookSecret).update(`${accountSid}${kind}`).digest('base64url');
}

/**
 * A request's own reference (a connect or a single SMS), carried in the query of its StatusCallback URL:
 * when the callback of what it created arrives, the gateway learns which call or SMS the request made,
 * even if the request's answer was lost (an unknown outcome, resolved later). Random, so it names nothing
 * and proves nothing.
 */
export const REQUEST_REF_PARAM = 'ref';
export const REQUEST_REF = /^[A-Za-z0-9_-]{16,64}$/;

/**
 * A connect placed with a reference and no CustomField of the client's carries the reference in its
 * CustomField too: Exotel keeps it with the call, so the reconciler can find the call in Exotel's call
 * records when none of its callbacks ever arrives. It shows as the call's `customField` (a random value
 * that names nothing); a plain property, so warm answers still cover the field.
 */
const REF_CUSTOM_FIELD_PREFIX = 'gateway-ref:';

/** True for a CustomField in the gateway's own reference form, which client input may not use: the reconciler
 * would take a call carrying one for the request it names. */
export function isRefCustomField(value: string): boolean {
  return value.startsWith(REF_CUSTOM_FIELD_PREFIX);
}

export function refCustomField(ref: string): string {
  return `${REF_CUSTOM_FIELD_PREFIX}${ref}`;
}

/** The reference a CustomField carries, or undefined when it is the client's own value. */
export function refOfCustomField(value: string | null | undefined): string | undefined {
  if (!value?.startsWith(REF_CUSTOM_FIELD_PREFIX)) return undefined;
  const ref = value.slice(REF_CUSTOM_FIELD_PREFIX.length);
  return REQUEST_REF.test(ref) ? ref : undefined;
}

/** `url` with the reference of one request. */
export function withRequestRef(url: string, ref: string): string {
  return `${url}${url.includes('?') ? '&' : '?'}${REQUEST_REF_PARAM}=${encodeURIComponent(ref)}`;
}

/** The three callback URLs of an account. */
export function createCallbackUrls(options: CallbackUrlOptions): CallbackUrls {
  const base = `${options.publicUrl.replace(/\/+$/, '')}${WEBHOOK_BASE_PATH}`;
  const url = (kind: CallbackKind) => `${base}/${callbackToken(options.webhookSecret, options.accountSid, kind)}/${kind}`;
  return { callStatus: url('call-status'), smsStatus: url('sms-status'), incomingCall: url('incoming-call') };
}

/** The path segment after WEBHOOK_BASE_PATH (the token), its slashes plain, JSON-escaped or URL-encoded. */
const SLASH = String.raw`(?:\\?/|%2F)`;
const WEBHOOK_TOKEN_SEGMENT = new RegExp(`(${WEBHOOK_BASE_PATH.split('/').join(SLASH)}${SLASH})[^/\\\\%?#&\\s"'<>]+`, 'gi');

/**
 * Scrubs from text that came back from Exotel (an error that echoes a StatusCallback URL) what would let
 * anyone post to the webhook routes: any token segment of a webhook path, the account's tokens wherever
 * they stand, and WEBHOOK_SECRET itself, plain or URL-encoded.
 */
export function createWebhookScrub(webhookSecret: string, accountSid: string): (text: string) => string {
  const values = [webhookSecret, ...CALLBACK_KINDS.map((kind) => callbackToken(webhookSecret, accountSid, kind))];
  return (text) => scrub(text.replace(WEBHOOK_TOKEN_SEGMENT, '$1[redacted]'), values);
}

/**
 * A constant-time check of presented tokens. Both sides are hashed first so the comparison always runs
 * over 32 bytes, whatever length an attacker sends.
 */
export function createTokenCheck(webhookSecret: string, accountSid: string): (kind: CallbackKind, presented: string) => boolean {
  const digest = (value: string) => createHash('sha256').update(value).digest();
  const expected = new Map(CALLBACK_KINDS.map((kind) => [kind, digest(callbackToken(webhookSecret, accountSid, kind))]));
  return (kind, presented) => {
    const want = expected.get(kind);
    return want !== undefined && timingSafeEqual(want, digest(presented));
  };
}
