/**
 * createLive(): the live pipeline of one gateway — webhook routes, ingest, the in-process fan-out, the
 * subscription feeds, the live poller and the reconciler — built from storage and the Exotel client.
 * server.ts hands the webhook requests to `webhookRoute`, hands `hooks` and `callbackUrls` to the GraphQL context and `feed` to the
 * Subscription resolvers, and calls stop() on shutdown.
 */
import { createEntityCache, type EntityCache } from '../cache/entities.js';
import type { Config } from '../config.js';
import { epochMsToIso } from '../exotel/dates.js';
import type { Call, ExotelApi, SmsMessage } from '../exotel/types.js';
import type { Logger } from '../logger.js';
import type { Storage } from '../storage/types.js';
import { createCallbackUrls, createTokenCheck, type CallbackUrls } from './callback-urls.js';
import { createFeed, type LiveFeed } from './feed.js';
import { ingest, type IngestDeps } from './ingest.js';
import { ingestIncomingCall } from './incoming.js';
import { createIncomingRetries, type IncomingRetries, type IncomingRetryObserver } from './incoming-retries.js';
import type { Loop } from './loop.js';
import { createPoller, type Poller } from './poller.js';
import { createReconciler, unknownCallItem, type GiveUpReason, type OpenItemKind } from './reconciler.js';
import { createTopics, type Topics } from './topics.js';
import { isTerminalCall, openSets } from './updates.js';
import { createWebhookRoute, type WebhookObserver, type WebhookRoute } from './webhooks.js';
import { WEBHOOK_BASE_PATH } from './callback-urls.js';

export type { CallbackUrls } from './callback-urls.js';
export type { LiveFeed } from './feed.js';

/** Internal timings and sizes of the live pipeline, declared once. The public knobs are in Config. */
export const LIVE_DEFAULTS = Object.freeze({
  /** Largest webhook body; Exotel's callbacks are well under 4 KiB. */
  webhookMaxBodyBytes: 64 * 1024,
  /**
   * How long a call's forward-only state and the statuses stored for it are remembered (dedup). Exotel
   * retries a callback at most twice within minutes; two days covers any late repeat.
   */
  stateTtlMs: 48 * 60 * 60_000,
  /** How long the Sid a request created is kept by its reference: as long as an idempotency key (24 h). */
  requestRefTtlMs: 24 * 60 * 60_000,
  /** A call with no TimeLimit is expected to have ended within this, seconds. */
  defaultMaxCallSeconds: 60 * 60,
  /** Exotel Calls/connect: TimeOut ≤ 60 s per leg; used when the connect gave none. */
  maxRingSeconds: 60,
  /** An SMS is expected to be final (or `sent`) within this, seconds. */
  smsFinalSeconds: 15 * 60,
  /**
   * A call or SMS Exotel still reports unfinished this long after it was created is no longer reconciled: a
   * call lasts at most 2 × 60 s of ringing and a 4 h TimeLimit (Exotel Calls/connect), an SMS far less. An
   * open item whose look keeps failing is let go this long after it entered the open list, and a watched
   * call is no longer polled this long after its DateCreated (or after it was first watched).
   * Not scaled in simulator mode: it is about Exotel's objects that never end, not their timeline.
   */
  reconcileGiveUpMs: 24 * 60 * 60_000,
  /** The reconciler looks at least this often, however long the grace. */
  maxReconcileIntervalMs: 30_000,
  /** Events a subscriber may have waiting before it is cut off as too slow. */
  subscriberQueueLimit: 10_000,
  /** Events per page when callEvents(after:) replays the log. */
  replayPageSize: 500,
  maxPollsPerTick: 100,
  maxReconcilesPerTick: 100,
  /**
   * A Passthru answered 200 but not stored (incoming-retries.ts) is retried after this, then after twice as
   * long each time, ms: with the cap and count below, over about a minute (1+2+4+8+16+30 s) after its 200.
   */
  incomingRetryBaseMs: 1_000,
  /** Longest wait between two of those retries, ms. */
  incomingRetryMaxDelayMs: 30_000,
  /** Retries of one such request before it is dropped. */
  incomingRetryAttempts: 6,
  /**
   * Such requests waiting at most; over it the oldest is dropped. A parsed request is a few KB (at most
   * MAX_LEGS legs), so a long outage holds a few MB at most.
   */
  incomingRetryMaxPending: 1_000,
  /**
   * How much longer than one attempt's own storage timeouts shutdown waits for their last attempt, ms
   * (incomingRetryStopMs): the round trips and the step's own work.
   */
  incomingRetryStopMarginMs: 500,
});

export type LiveTimings = { -readonly [K in keyof typeof LIVE_DEFAULTS]: number };

/** The storage timeouts one attempt to store a Passthru is bounded by. */
export type IncomingStoreTimeouts = Pick<Config, 'redisCommandTimeoutMs' | 'redisCacheTimeoutMs'>;

/**
 * How long shutdown waits for the last attempt of each Passthru still waiting for storage, ms. One attempt
 * (ingestIncomingCall) is a cache read, the atomic step and a cache write, each given up after its own
 * timeout, so the wait is their sum plus a margin: whatever the timeouts are set to, a Redis that answers
 * within them stores every request, and the wait never ends an attempt storage was still allowed to finish.
 */
export function incomingRetryStopMs(timeouts: IncomingStoreTimeouts, marginMs: number = LIVE_DEFAULTS.incomingRetryStopMarginMs): number {
  return timeouts.redisCacheTimeoutMs + timeouts.redisCommandTimeoutMs + timeouts.redisCacheTimeoutMs + marginMs;
}

/** What the GraphQL mutations tell the live pipeline (GraphQLContext.live). */
export interface LiveHooks {
  onCallCreated(call: Call, expect: { timeLimitSeconds?: number; timeOutSeconds?: number }): Promise<void>;
  onSmsCreated(sms: SmsMessage): Promise<void>;
  /**
   * A connect placed with request reference `ref` (in its callback URL and CustomField) got no answer:
   * the reconciler looks for its call in Exotel's call records once it should have ended.
   */
  onCallOutcomeUnknown(ref: string, expect: { timeLimitSeconds?: number; timeOutSeconds?: number }): Promise<void>;
}

export interface LiveOptions {
  /** The storage timeouts bound the shutdown's wait for Passthru requests still waiting for storage (incomingRetryStopMs). */
  config: Pick<Config, 'publicUrl' | 'webhookSecret' | 'livePollIntervalMs' | 'reconcileGraceSeconds'> & IncomingStoreTimeouts;
  storage: Storage;
  exotel: ExotelApi;
  logger: Logger;
  /** Where the webhook routes' access-log lines go; default: `logger`. */
  accessLogger?: Logger;
  /** The entity cache GraphQL reads (so this replica's near-cache sees its own writes at once); default: the shared one. */
  entities?: EntityCache;
  /**
   * Multiplier on expected call/SMS durations: the simulator's time scale in simulator mode (its calls
   * run that much faster), 1 against real Exotel.
   */
  durationScale?: number;
  timings?: Partial<LiveTimings>;
  /** Where callback URLs point, read when a URL is minted (server.ts knows the bound port only later). */
  publicUrl?: () => string;
  now?: () => number;
  /**
   * Metrics hooks: every answered webhook; every final status the reconciler had to fetch; every open item
   * the reconciler let go unfinished; every background retry of a Passthru answered 200 but not stored, and
   * what became of it.
   */
  onWebhook?: WebhookObserver;
  onReconciled?: (kind: 'call' | 'sms') => void;
  onReconcilerGaveUp?: (kind: OpenItemKind, reason: GiveUpReason) => void;
  onIncomingRetry?: IncomingRetryObserver;
}

export interface Live {
  /** Every request under WEBHOOK_BASE_PATH (node:http; see webhooks.ts). */
  webhookRoute: WebhookRoute;
  callbackUrls: CallbackUrls;
  hooks: LiveHooks;
  feed: LiveFeed;
  topics: Topics;
  poller: Poller;
  reconciler: Loop;
  /** Passthru requests answered 200 but not stored, retried in the background. */
  incomingRetries: IncomingRetries;
  /** The ingest dependencies (tests feed updates straight in). */
  ingestDeps: IngestDeps;
  /** Stops the background loops and the incoming-call retries (incomingRetries.stop()) and ends every subscription. */
  stop(): Promise<void>;
}

/** Builds the live pipeline and starts its background loops. */
export function createLive(options: LiveOptions): Live {
  const t: LiveTimings = { ...LIVE_DEFAULTS, ...options.timings };
  const now = options.now ?? Date.now;
  const { storage, exotel, config } = options;
  const logger = options.logger.child({ component: 'live' });
  const accountSid = exotel.accountSid;
  const scale = options.durationScale ?? 1;
  const graceMs = config.reconcileGraceSeconds * 1000;
  const sets = openSets(accountSid);

  const { openItems } = storage;
  const entities = options.entities ?? createEntityCache(storage.cache, accountSid);
  const ingestDeps: IngestDeps = {
    accountSid,
    events: storage.events,
    entities,
    logger,
    now,
    stateTtlMs: t.stateTtlMs,
    requestRefTtlMs: t.requestRefTtlMs,
    unknownCallDueMs: Math.round(t.defaultMaxCallSeconds * 1000 * scale) + graceMs,
  };

  const topics = createTopics({ events: storage.events, accountSid, queueLimit: t.subscriberQueueLimit });
  const poller = createPoller({
    accountSid,
    exotel,
    openItems,
    lease: storage.lease,
    topics,
    ingestDeps,
    logger,
    now,
    intervalMs: config.livePollIntervalMs,
    maxCallsPerTick: t.maxPollsPerTick,
    giveUpAfterMs: t.reconcileGiveUpMs,
  });
  const reconcileIntervalMs = Math.min(t.maxReconcileIntervalMs, Math.max(config.livePollIntervalMs, graceMs / 2));
  const reconciler = createReconciler({
    accountSid,
    exotel,
    openItems,
    lease: storage.lease,
    ingestDeps,
    logger,
    now,
    intervalMs: reconcileIntervalMs,
    recheckMs: Math.max(graceMs, reconcileIntervalMs),
    maxItemsPerTick: t.maxReconcilesPerTick,
    giveUpAfterMs: t.reconcileGiveUpMs,
    ...(options.onReconciled ? { onReconciled: options.onReconciled } : {}),
    ...(options.onReconcilerGaveUp ? { onGivenUp: options.onReconcilerGaveUp } : {}),
  });
  const feed = createFeed({
    accountSid,
    events: storage.events,
    topics,
    entities,
    exotel,
    replayPageSize: t.replayPageSize,
    onWatch: (sid) => void poller.watch(sid).catch((err: unknown) => logger.warn({ err, callSid: sid }, 'could not mark a call watched')),
  });

  /** How long after its request a call should have ended, plus the grace: when it is due for the reconciler. */
  const expectedCallMs = (expect: { timeLimitSeconds?: number; timeOutSeconds?: number }) => {
    // Exotel rings each leg for up to TimeOut, then the call may last TimeLimit (docs/exotel-fidelity.md).
    const expectedSeconds = 2 * (expect.timeOutSeconds ?? t.maxRingSeconds) + (expect.timeLimitSeconds ?? t.defaultMaxCallSeconds);
    return Math.round(expectedSeconds * 1000 * scale) + graceMs;
  };
  const hooks: LiveHooks = {
    async onCallCreated(call, expect) {
      await openItems.put(sets.calls, call.sid, now() + expectedCallMs(expect));
      // Exotel answers Calls/connect with "in-progress" before anything rings (docs/exotel-fidelity.md); recording
      // that would make the real ringing and answer look like steps backwards.
      const status = isTerminalCall(call.status) ? call.status : 'QUEUED';
      await ingest({ kind: 'call', callSid: call.sid, status, at: call.dateCreated, source: 'API', fields: { ...call, status } }, ingestDeps);
    },
    async onCallOutcomeUnknown(ref, expect) {
      const at = now();
      await openItems.put(sets.unknownCalls, unknownCallItem(ref, at), at + expectedCallMs(expect));
    },
    async onSmsCreated(sms) {
      await openItems.put(sets.sms, sms.sid, now() + Math.round(t.smsFinalSeconds * 1000 * scale) + graceMs);
      await ingest({ kind: 'sms', smsSid: sms.sid, status: sms.status, at: sms.dateCreated, source: 'API', fields: sms }, ingestDeps);
    },
  };

  const incomingRetries = createIncomingRetries({
    store: (request) => ingestIncomingCall(request, ingestDeps),
    logger,
    baseDelayMs: t.incomingRetryBaseMs,
    maxDelayMs: t.incomingRetryMaxDelayMs,
    attempts: t.incomingRetryAttempts,
    maxPending: t.incomingRetryMaxPending,
    stopTimeoutMs: incomingRetryStopMs(config, t.incomingRetryStopMarginMs),
    ...(options.onIncomingRetry ? { onRetry: options.onIncomingRetry } : {}),
  });

  const webhookRoute = createWebhookRoute({
    basePath: WEBHOOK_BASE_PATH,
    accessLogger: options.accessLogger ?? logger,
    checkToken: createTokenCheck(config.webhookSecret, accountSid),
    accountSid,
    ingestDeps,
    logger,
    maxBodyBytes: t.webhookMaxBodyBytes,
    nowIso: () => epochMsToIso(now()),
    ...(options.onWebhook ? { onWebhook: options.onWebhook } : {}),
    onUnstoredIncoming: (request) => incomingRetries.add(request),
  });

  const publicUrl = options.publicUrl ?? (() => config.publicUrl);
  let minted: { base: string; urls: CallbackUrls } | undefined;
  const urls = (): CallbackUrls => {
    const base = publicUrl();
    if (minted?.base !== base) minted = { base, urls: createCallbackUrls({ publicUrl: base, webhookSecret: config.webhookSecret, accountSid }) };
    return minted.urls;
  };
  const callbackUrls: CallbackUrls = {
    get callStatus() {
      return urls().callStatus;
    },
    get smsStatus() {
      return urls().smsStatus;
    },
    get incomingCall() {
      return urls().incomingCall;
    },
  };

  let stopping: Promise<void> | undefined;
  return {
    webhookRoute,
    callbackUrls,
    hooks,
    feed,
    topics,
    poller,
    reconciler,
    incomingRetries,
    ingestDeps,
    stop: () =>
      (stopping ??= (async () => {
        await Promise.all([poller.stop(), reconciler.stop(), incomingRetries.stop()]);
        topics.close();
      })()),
  };
}
