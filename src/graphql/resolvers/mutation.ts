/**
 * Mutation resolvers. Each one validates its whole input first (no upstream request for bad input),
 * then runs under its idempotency key (src/graphql/idempotency.ts), then tells the cache and the live
 * pipeline about what it created.
 */
import { randomBytes } from 'node:crypto';
import { requireWrite } from '../../auth.js';
import { refCustomField, withRequestRef } from '../../live/callback-urls.js';
import { ErrorCode, GatewayError, fromExotelResponse, isGatewayError } from '../../errors.js';
import type { Call, SendBulkSmsParams, SmsMessage, StatusCallbackOptions } from '../../exotel/types.js';
import type { BulkSmsError, MutationResolvers } from '../../generated/graphql.js';
import type { GraphQLContext } from '../context.js';
import { certainlyNotSent } from '../idempotency.js';
import {
  idempotencyKey,
  validateConnectCall,
  validateConnectCallToFlow,
  validateSendBulkSms,
  validateSendSms,
} from '../validation.js';

/** Exotel Sms/bulksend: at most 100 messages per request. */
export const BULK_SMS_CHUNK = 100;

const CALL_HINT = 'the `calls` list (filter by from/to and dateCreatedFrom)';
const SMS_HINT = 'the recipient or the SMS list in the Exotel dashboard';

/** Mutations need a read+write key; with client auth off (`auth` null) every caller may write. */
function checkWrite(ctx: GraphQLContext): void {
  if (ctx.auth) requireWrite(ctx.auth);
}

/** Idempotency keys are per account and per client, so two clients' keys never collide. */
function scopeOf(ctx: GraphQLContext): string {
  return `${ctx.exotel.accountSid}:${ctx.auth?.name ?? 'anonymous'}`;
}

/** The live pipeline's hooks must never fail a mutation whose call or SMS already exists. */
async function tell(ctx: GraphQLContext, what: string, hook: (() => Promise<void>) | undefined): Promise<void> {
  if (!hook) return;
  try {
    await hook();
  } catch (err) {
    ctx.logger.warn({ err }, `live pipeline could not track the new ${what}`);
  }
}

async function remember(ctx: GraphQLContext, item: { kind: 'call'; call: Call } | { kind: 'sms'; sms: SmsMessage }): Promise<void> {
  try {
    if (item.kind === 'call') {
      ctx.loaders.call.clear(item.call.sid).prime(item.call.sid, item.call);
      await ctx.cache.putCall(item.call);
    } else {
      ctx.loaders.sms.clear(item.sms.sid).prime(item.sms.sid, item.sms);
      await ctx.cache.putSms(item.sms);
    }
  } catch (err) {
    ctx.logger.warn({ err }, 'cache write failed');
  }
}

function toGatewayError(err: unknown): GatewayError {
  if (isGatewayError(err)) return err;
  return new GatewayError(ErrorCode.INTERNAL_SERVER_ERROR, 'internal error', { cause: err });
}

/** Chunk-level failures after which sending the remaining chunks is pointless or unsafe. */
function stopsBulk(code: string): boolean {
  return code !== ErrorCode.BAD_USER_INPUT;
}

interface BulkOutcome {
  messages: Array<SmsMessage | null>;
  errors: BulkSmsError[];
}

/**
 * Sends a validated bulk in requests of ≤ 100 messages, one after another (each spends budget). Per
 * message: the SMS or an error. If no request was answered and none may have reached Exotel, the first
 * error is thrown instead, so the whole mutation fails cleanly and its idempotency key stays usable.
 */
async function sendBulk(ctx: GraphQLContext, params: SendBulkSmsParams, originalTo: readonly string[]): Promise<BulkOutcome> {
  const messages: Array<SmsMessage | null> = new Array(params.messages.length).fill(null);
  const errors: BulkSmsError[] = [];
  let answered = 0;
  let maybeSent = false;
  let firstError: GatewayError | undefined;
  let stop: GatewayError | undefined;
  for (let base = 0; base < params.messages.length; base += BULK_SMS_CHUNK) {
    const chunk = params.messages.slice(base, base + BULK_SMS_CHUNK);
    const fail = (i: number, code: string, message: string, exotelCode?: number) =>
      errors.push({ index: base + i, to: originalTo[base + i] ?? chunk[i]!.to, code, message, ...(exotelCode !== undefined ? { exotelCode } : {}) });
    if (stop) {
      // These certainly were not sent, so never OUTCOME_UNKNOWN: the client may send them again.
      const code = stop.code === ErrorCode.OUTCOME_UNKNOWN ? ErrorCode.UPSTREAM_UNAVAILABLE : stop.code;
      chunk.forEach((_, i) => fail(i, code, `Not sent: an earlier batch of this bulk failed (${stop!.message})`));
      continue;
    }
    try {
      const results = await ctx.exotel.sendBulkSms({
        ...params,
        messages: chunk,
        ...(ctx.callbackUrls ? { statusCallback: ctx.callbackUrls.smsStatus } : {}),
      }, { client: ctx.client });
      answered += 1;
      results.forEach((r, i) => {
        if (r.ok) messages[base + i] = r.sms;
        // Status 0: Exotel's answer did not report on this message, so it may have gone out (never resend blindly).
        // Otherwise Exotel's status, words and code decide the contract code, as for a whole request.
        else if (r.status === 0) fail(i, ErrorCode.OUTCOME_UNKNOWN, r.message);
        else fail(i, fromExotelResponse(r.status, JSON.stringify({ RestException: { Message: r.message, Code: r.exotelCode } })).code, r.message, r.exotelCode);
      });
    } catch (err) {
      const e = toGatewayError(err);
      if (!certainlyNotSent(err)) maybeSent = true;
      firstError ??= e;
      chunk.forEach((_, i) => fail(i, e.code, e.message));
      if (stopsBulk(e.code)) stop = e;
    }
  }
  if (answered === 0 && !maybeSent && firstError) throw firstError;
  errors.sort((a, b) => a.index - b.index);
  return { messages, errors };
}

/**
 * The shared path of both connect mutations: write scope, idempotency, the gateway's callback URL
 * (answered + terminal events), then the new call goes to the cache and the live pipeline.
 */
async function placeCall<P extends { timeLimitSeconds?: number; timeOutSeconds?: number; customField?: string }>(
  ctx: GraphQLContext,
  operation: 'connectCall' | 'connectCallToFlow',
  params: P,
  rawKey: string | null | undefined,
  send: (params: P & { statusCallback?: StatusCallbackOptions }) => Promise<Call>,
) {
  checkWrite(ctx);
  const key = idempotencyKey(rawKey);
  const ref = requestRef(ctx, key);
  const callbackUrl = ctx.callbackUrls && (ref ? withRequestRef(ctx.callbackUrls.callStatus, ref) : ctx.callbackUrls.callStatus);
  const expect = { timeLimitSeconds: params.timeLimitSeconds, timeOutSeconds: params.timeOutSeconds };
  // The reference also rides in CustomField when the client set none, so that the reconciler can find the
  // call in Exotel's call records if its callbacks never arrive (callback-urls.ts).
  const refField = ref && params.customField === undefined ? { customField: refCustomField(ref) } : {};
  const refSpec = ref && {
    value: ref,
    resolve: (r: string) => created(ctx, r, ctx.loaders.call),
    ...(ctx.live && refField.customField ? { onUnknown: (r: string) => ctx.live!.onCallOutcomeUnknown(r, expect) } : {}),
  };
  const { result, replayed } = await ctx.idempotency.run(
    { operation, key, scope: scopeOf(ctx), input: params, checkHint: CALL_HINT, logger: ctx.logger, ...(refSpec ? { ref: refSpec } : {}) },
    () => send({ ...params, ...refField, ...(callbackUrl ? { statusCallback: { url: callbackUrl, events: ['terminal', 'answered'] } } : {}) }),
  );
  if (!replayed) {
    await remember(ctx, { kind: 'call', call: result });
    await tell(ctx, 'call', ctx.live && (() => ctx.live!.onCallCreated(result, expect)));
  }
  return { call: result, idempotencyKey: key ?? null, replayed };
}

/**
 * With a key and the gateway's callback URL, a request carries a reference of its own, so that an unknown
 * outcome can be resolved later from the callback of what it created (idempotency.ts).
 */
function requestRef(ctx: GraphQLContext, key: string | undefined): string | undefined {
  return key !== undefined && ctx.callbackUrls ? randomBytes(18).toString('base64url') : undefined;
}

/** The call or SMS a request created, once its callback has told the gateway (undefined until then). */
async function created<T>(ctx: GraphQLContext, ref: string, loader: { load(sid: string): Promise<T | null> }): Promise<T | undefined> {
  // Stored with the first status that named it (a callback, or the reconciler's look at the call).
  const sid = await ctx.storage.events.requestRef(ctx.exotel.accountSid, ref);
  if (!sid) return undefined;
  return (await loader.load(sid)) ?? undefined;
}

export const Mutation: MutationResolvers = {
  connectCall: (_root, { input }, ctx) =>
    placeCall(ctx, 'connectCall', validateConnectCall(input), input.idempotencyKey, (params) => ctx.exotel.connectCall(params, { client: ctx.client })),

  connectCallToFlow: (_root, { input }, ctx) =>
    placeCall(ctx, 'connectCallToFlow', validateConnectCallToFlow(input), input.idempotencyKey, (params) => ctx.exotel.connectCallToFlow(params, { client: ctx.client })),

  async sendSms(_root, { input }, ctx) {
    checkWrite(ctx);
    const params = validateSendSms(input);
    const key = idempotencyKey(input.idempotencyKey);
    const ref = requestRef(ctx, key);
    const callbackUrl = ctx.callbackUrls && (ref ? withRequestRef(ctx.callbackUrls.smsStatus, ref) : ctx.callbackUrls.smsStatus);
    const { result, replayed } = await ctx.idempotency.run(
      { operation: 'sendSms', key, scope: scopeOf(ctx), input: params, checkHint: SMS_HINT, logger: ctx.logger, ...(ref ? { ref: { value: ref, resolve: (r) => created(ctx, r, ctx.loaders.sms) } } : {}) },
      () => ctx.exotel.sendSms({ ...params, ...(callbackUrl ? { statusCallback: callbackUrl } : {}) }, { client: ctx.client }),
    );
    if (!replayed) {
      await remember(ctx, { kind: 'sms', sms: result });
      await tell(ctx, 'SMS', ctx.live && (() => ctx.live!.onSmsCreated(result)));
    }
    return { sms: result, idempotencyKey: key ?? null, replayed };
  },

  async sendBulkSms(_root, { input }, ctx) {
    checkWrite(ctx);
    const params = validateSendBulkSms(input);
    const key = idempotencyKey(input.idempotencyKey);
    const { result, replayed } = await ctx.idempotency.run(
      { operation: 'sendBulkSms', key, scope: scopeOf(ctx), input: params, checkHint: SMS_HINT, logger: ctx.logger },
      () => sendBulk(ctx, params, input.messages.map((m) => m.to)),
    );
    if (!replayed) {
      for (const sms of result.messages) {
        if (!sms) continue;
        await remember(ctx, { kind: 'sms', sms });
        await tell(ctx, 'SMS', ctx.live && (() => ctx.live!.onSmsCreated(sms)));
      }
    }
    return { messages: result.messages, errors: result.errors, idempotencyKey: key ?? null, replayed };
  },
};
