/**
 * What every resolver receives as its third argument, and the one factory that builds it for HTTP
 * requests and graphql-ws operations alike. Resolvers never see `req`/`res`: the transport edge reads
 * what it needs (request id, Authorization) and hands it over here.
 */
import { randomUUID } from 'node:crypto';
import type { NearEntityCache, ReadsSlot } from '../cache/near.js';
import { ANONYMOUS } from '../auth.js';
import type { Config, Scope } from '../config.js';
import type { Call, ExotelApi, SmsMessage } from '../exotel/types.js';
import type { Logger } from '../logger.js';
import type { Subscriber } from '../live/topics.js';
import type { Storage } from '../storage/types.js';
import type { Idempotency } from './idempotency.js';
import { createLoaders, type Loaders } from './loaders.js';
import { createLookups } from './lookups.js';

/** The authenticated client, or null when the gateway runs without client keys. */
export interface AuthInfo {
  /** The key's name from GATEWAY_API_KEYS (never its secret). */
  name: string;
  scopes: Scope;
}

/** Where Exotel should post status callbacks for objects created by this request. */
export interface CallbackUrls {
  callStatus: string;
  smsStatus: string;
}

/** Hooks of the live pipeline, told about calls and SMS the gateway just created. */
export interface LiveHooks {
  /** A call was created; `expect` says when it should end at the latest (for the reconciler). */
  onCallCreated(call: Call, expect: { timeLimitSeconds?: number; timeOutSeconds?: number }): Promise<void>;
  /** An SMS was accepted by Exotel. */
  onSmsCreated(sms: SmsMessage): Promise<void>;
  /** A connect with request reference `ref` got no answer: its call is looked for later (the reconciler). */
  onCallOutcomeUnknown(ref: string, expect: { timeLimitSeconds?: number; timeOutSeconds?: number }): Promise<void>;
}

export type GatewayMode = 'SIMULATOR' | 'LIVE';

export interface GraphQLContext {
  config: Config;
  /** Child logger carrying the request id. */
  logger: Logger;
  exotel: ExotelApi;
  storage: Storage;
  /** Cache policy for Exotel objects of this account (held near, in front of the shared cache). */
  cache: NearEntityCache;
  /**
   * What the loaders read, by version (the warm-answer plugin sets `current` before execution). Apollo
   * copies the context per operation; the copies share this slot and the loaders.
   */
  reads: ReadsSlot;
  /** Fresh per request / ws operation. */
  loaders: Loaders;
  idempotency: Idempotency;
  mode: GatewayMode;
  /** The gateway's version (package.json). */
  version: string;
  requestId: string;
  auth: AuthInfo | null;
  /** The client key the request spends the Exotel budget of: the key's name, or `anonymous` without keys. */
  client: string;
  callbackUrls?: CallbackUrls;
  live?: LiveHooks;
  /** graphql-ws operations: their socket, told when a subscription falls past its event queue's limit. */
  subscriber?: Subscriber;
}

/** Everything shared by every context; built once in server.ts. */
export interface ContextDeps {
  config: Config;
  logger: Logger;
  exotel: ExotelApi;
  storage: Storage;
  cache: NearEntityCache;
  idempotency: Idempotency;
  mode: GatewayMode;
  version: string;
  /** Minted once by the live pipeline; absent → mutations send no StatusCallback. */
  callbackUrls?: CallbackUrls;
  live?: LiveHooks;
}

/** Per-request facts the transport edge knows. */
export interface ContextInput {
  /** The client's X-Request-Id when it sent a sane one; otherwise one is generated. */
  requestId?: string;
  auth?: AuthInfo | null;
  /** The client end of a subscription (graphql-ws: its socket); see GraphQLContext.subscriber. */
  subscriber?: Subscriber;
}

export type ContextFactory = (input?: ContextInput) => GraphQLContext;

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The parts of a context made on first use; Apollo's per-operation copies of a context share them. */
interface LazyParts {
  logger?: Logger;
  loaders?: Loaders;
}
const LAZY = Symbol('lazy context parts');
/** How a factory's contexts make their lazy parts; one per factory, on the contexts' prototype. */
const MAKE = Symbol('context part makers');
interface Makers {
  logger(context: GraphQLContext): Logger;
  loaders(context: GraphQLContext, lazy: LazyParts): Loaders;
}
type WithLazy = GraphQLContext & { [LAZY]: LazyParts; [MAKE]: Makers };

/**
 * The prototype of every context: `logger` and `loaders` are made on first use. They are getters here and
 * not on the context itself because Apollo copies the context for each operation with Object.assign, which
 * calls own getters: every request, warm answers included, would make both.
 */
const LAZY_CONTEXT: object = Object.defineProperties(
  {},
  {
    logger: {
      get(this: WithLazy) {
        const parts = this[LAZY];
        return (parts.logger ??= this[MAKE].logger(this));
      },
    },
    loaders: {
      get(this: WithLazy) {
        const parts = this[LAZY];
        return (parts.loaders ??= this[MAKE].loaders(this, parts));
      },
    },
  },
);

/**
 * Builds contexts: shared deps plus fresh loaders and a request-scoped logger each time. What every context
 * of the factory shares sits on one prototype (Apollo's copies keep it): a context holds only what is its
 * own, since thousands of idle subscriptions each hold one.
 */
export function createContextFactory(deps: ContextDeps): ContextFactory {
  // One per factory, so one per process and account: cold lookups of a key's concurrent requests share upstream requests.
  const lookups = createLookups({
    exotel: deps.exotel,
    cache: deps.cache,
    logger: deps.logger,
    bulkBatchSize: deps.config.bulkBatchSize,
    windowMs: deps.config.coalesceWindowMs,
    maxWaitMs: deps.config.coalesceMaxWaitMs,
    holdOpenMs: deps.config.batchHoldMs,
    queueDeadlineMs: deps.config.rateQueueDeadlineMs,
  });
  const makers: Makers = {
    // Most requests log nothing themselves, and a child logger costs a redaction pass.
    logger: (context) => deps.logger.child({ requestId: context.requestId }),
    // A subscription that never loads anything (most) and a warm answer keep no loaders.
    loaders: (context, lazy) =>
      createLoaders({
        cache: deps.cache.recording(context.reads),
        get logger() {
          return (lazy.logger ??= makers.logger(context));
        },
        lookups: lookups.forClient(context.client),
        events: deps.storage.events,
      }),
  };
  const shared = Object.assign(Object.create(LAZY_CONTEXT) as object, {
    config: deps.config,
    exotel: deps.exotel,
    storage: deps.storage,
    cache: deps.cache,
    idempotency: deps.idempotency,
    mode: deps.mode,
    version: deps.version,
    ...(deps.callbackUrls ? { callbackUrls: deps.callbackUrls } : {}),
    ...(deps.live ? { live: deps.live } : {}),
    [MAKE]: makers,
  });
  return (input = {}) => {
    const requestId = input.requestId && REQUEST_ID.test(input.requestId) ? input.requestId : randomUUID();
    return Object.assign(Object.create(shared) as GraphQLContext, {
      requestId,
      auth: input.auth ?? null,
      reads: { current: undefined, used: false } satisfies ReadsSlot,
      client: input.auth?.name ?? ANONYMOUS.name,
      ...(input.subscriber ? { subscriber: input.subscriber } : {}),
      [LAZY]: {},
    });
  };
}
