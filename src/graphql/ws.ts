/**
 * GraphQL over WebSocket on the same http.Server and path as HTTP (/graphql), protocol
 * `graphql-transport-ws` only (graphql-ws). Clients authenticate in `connection_init`
 * (`connectionParams.authorization: "Bearer <key>"`); a missing or wrong key closes the socket with
 * 4403 Forbidden before any operation runs. Each operation gets a fresh context from the same factory
 * as HTTP, so loaders are per operation and resolvers cannot tell the transports apart.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { getOperationAST, GraphQLError, Kind, OperationTypeNode, parse, specifiedRules, validate, type DocumentNode, type ExecutionArgs, type ExecutionResult, type GraphQLSchema, type ValidationRule } from 'graphql';
import { CloseCode } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocket, WebSocketServer } from 'ws';
import type { Principal } from '../auth.js';
import type { Limits } from '../config.js';
import { clientErrorKind, ErrorCode, formatError, isGatewayError, type GatewayError } from '../errors.js';
import { requestIdFrom } from '../http/request-id.js';
import type { Logger } from '../logger.js';
import type { Subscriber } from '../live/topics.js';
import type { ContextFactory } from './context.js';
import type { IntrospectionPolicy } from './introspection.js';
import { createSharedSubscriptions, type SharedExecutionStats } from './shared-execution.js';
import { LRUCache } from 'lru-cache';
import { traceWsOperations } from '../tracing/graphql.js';
import { assertNever } from '../assert-never.js';
import { CLOSE_SUBSCRIBER_EXISTS, OperationIds } from './ws-operation-ids.js';

/**
 * Bounds of the checked-document cache. Documents come from clients, and a parsed document can take over a
 * hundred bytes of heap per character of text, so the cache is capped by the total characters kept (~12 MB
 * of heap at worst), not only by count. A text over a tenth of the total is never kept (it still runs).
 */
const DOCUMENT_CACHE = Object.freeze({ maxEntries: 1_000, maxTotalSize: 100_000 });
import { coerceVariables, exceedsBytes, isMutation, responseTooLargeError, type CostCheck } from './cost.js';

/**
 * The only subprotocol spoken. A client asking only for another (the legacy `graphql-ws` of
 * subscriptions-transport-ws, still the default of some tools) completes the handshake with what it asked
 * for and is closed at once with 4406 and a reason naming this one: refused in the handshake, as graphql-ws's
 * own handleProtocols would, a Node client sees only "Server sent no subprotocol" (1006).
 */
export const WS_PROTOCOL = 'graphql-transport-ws';
/** The 4406 reason for a client that speaks another subprotocol (at most 123 bytes). */
const OTHER_PROTOCOL = `Subprotocol not acceptable: this server speaks ${WS_PROTOCOL} (graphql-ws), not subscriptions-transport-ws`;

/** ws's handleProtocols: ours when offered, else the client's first choice, so it can be told why it is closed. */
const chooseProtocol = (protocols: Set<string>): string | false => (protocols.has(WS_PROTOCOL) ? WS_PROTOCOL : (protocols.values().next().value ?? false));

export interface GraphqlWsOptions {
  httpServer: Server;
  /** Same path as GraphQL over HTTP. */
  path: string;
  schema: GraphQLSchema;
  contextFactory: ContextFactory;
  /** The caller behind an Authorization value; throws UNAUTHENTICATED. Absent → no client auth. */
  authenticate?: (authorization: string | undefined) => Principal;
  limits: Pick<Limits, 'wsMaxPayloadBytes' | 'wsConnectionInitTimeoutMs' | 'wsMaxSubscriptionsPerSocket' | 'wsMaxSocketsPerKey' | 'wsAllowedOrigins'> &
    Partial<Pick<Limits, 'wsMaxSubscriptionsPerKey' | 'maxResponseBytes'>>;
  production: boolean;
  logger: Logger;
  /** Extra validation rules (depth, cost…), the same ones HTTP runs. */
  validationRules?: readonly ValidationRule[];
  /** Who may introspect (INTROSPECTION); checked per caller after validation. Absent → everyone. */
  introspection?: IntrospectionPolicy;
  /** Keep-alive ping interval, ms (graphql-ws default 12 s). */
  keepAliveMs?: number;
  /** Token limit, checked before parsing (src/graphql/armor.ts). */
  checkTokens?: (source: string) => GatewayError | undefined;
  /** MAX_COST and list caps with the operation's coerced variables, defaults applied (src/graphql/cost.ts), checked after validation. */
  cost?: CostCheck;
  /** Rewrites client-facing messages (production strips field suggestions). */
  maskMessage?: (message: string) => string;
  /** Observes each operation as it starts or is refused (metrics). */
  onOperation?: (operation: { name: string | null | undefined; type: string; outcome: string; durationSeconds: number }) => void;
  /** Told of each query or mutation answer withheld for MAX_RESPONSE_BYTES (`limits.maxResponseBytes`). */
  onResponseWithheld?: (bytes: number) => void;
  /** Counts each client mistake by kind (errors.ts clientErrorKind): refused operations and failed auth. */
  onClientError?: (kind: string) => void;
  /** On close(), how long sockets get to answer the 1001 close before they are cut, ms. */
  closeGraceMs?: number;
}

export interface GraphqlWs {
  wss: WebSocketServer;
  /** Open sockets right now (metrics: gateway_ws_sockets). */
  socketCount(): number;
  /** Operations running right now on every socket (metrics: gateway_ws_subscriptions). */
  operationCount(): number;
  /** Work done for subscription events (executions, shared across subscribers). */
  sharedStats(): SharedExecutionStats;
  /** Closes every socket (1001 Going Away) and the server. */
  close(): Promise<void>;
}

type Extra = {
  principal?: Principal | null;
  /** Request id of the socket (a sane X-Request-Id of the upgrade, or new); operations get `<id>:<n>`. */
  socketId?: string;
  operationCount?: number;
  /**
   * Ids of this socket's operations counted against its key (WS_MAX_SUBSCRIPTIONS_PER_KEY) and not yet
   * ended, once per count: a client may reuse an id before the previous operation's end has been seen. An
   * array: a socket has few operations, and a Map is many times the size of an array of one id.
   */
  keyOperations?: string[];
};

/** Lets the upgrade request of an open socket go: graphql-ws keeps it in `extra` for the socket's life. */
function releaseRequest(extra: { request?: IncomingMessage }): void {
  // Not `delete`: that would turn `extra` into a slower, larger dictionary-mode object.
  extra.request = undefined;
}

type SendCallback = (err?: Error) => void;
type SendOptions = Exclude<Parameters<WebSocket['send']>[1], SendCallback | undefined>;

/** A frame the client got wrong (too long, bad UTF-8, unmasked…): ws names these errors `WS_ERR_…`. */
const isClientFrameError = (err: unknown): err is Error & { code: string } => {
  const code: unknown = err instanceof Error ? (err as Error & { code?: unknown }).code : undefined;
  return typeof code === 'string' && code.startsWith('WS_ERR_');
};

/** Write errors that mean the client's connection is gone, whatever ws's state says yet. */
const CONNECTION_GONE = new Set(['EPIPE', 'ECONNRESET', 'ERR_STREAM_DESTROYED']);

/**
 * ws's socket with the client's own doings kept from reading as faults of the gateway:
 * - a send that fails because the socket has been cut meanwhile (the keep-alive or the backlog guard
 *   terminated it, or the client went away) counts as done, as graphql-ws already counts a send made after
 *   the close; otherwise every answer still on its way when a client is cut surfaces from graphql-ws as
 *   "Internal error occurred during message handling" with a stack trace on stderr. Any other failed send
 *   is still an error.
 * - a frame the client got wrong goes to `onClientFrameError` instead of the socket's `error` listeners:
 *   graphql-ws's listener prints it as "Internal error emitted on a WebSocket socket". ws closes the socket
 *   itself (1009 for a frame over the limit, 1002 or 1007 for a broken one) either way.
 * - after each send, `checkBacklog` may cut a client that lets what waits for it grow past its bound.
 * - it is the `subscriber` of its operations' event streams (src/live/topics.ts): `fellBehind` may cut a
 *   client whose subscription fell past its event queue's limit because it stopped reading.
 * - a subscribe whose id still runs on the server (the client completed it a moment ago) waits until that
 *   operation has ended before graphql-ws sees it, and one repeating a running id closes the socket with
 *   4409 (src/graphql/ws-operation-ids.ts): `onDuplicateOperation` is told; `refuseHeld` answers a
 *   subscribe over `maxHeld` such waiting ones.
 * The hooks are set once per server, on a subclass (createGraphqlWs): no closure per socket.
 */
class GatewaySocket extends WebSocket implements Subscriber {
  protected onClientFrameError(_err: Error & { code: string }): void {}
  protected checkBacklog(): void {}
  protected onDuplicateOperation(): void {}
  protected refuseHeld(_id: string): void {}
  protected maxHeld(): number {
    return 0;
  }
  fellBehind(): void {}
  /** This socket's running operation ids, from its first message on. */
  private operationIds: OperationIds | undefined;

  override send(data: Parameters<WebSocket['send']>[0], optionsOrCallback?: SendOptions | SendCallback, callback?: SendCallback): void {
    const options = typeof optionsOrCallback === 'function' ? {} : (optionsOrCallback ?? {});
    const done = typeof optionsOrCallback === 'function' ? optionsOrCallback : callback;
    if (!done) super.send(data, options);
    else super.send(data, options, (err) => done(err && (this.readyState !== WebSocket.OPEN || CONNECTION_GONE.has((err as Error & { code?: string }).code ?? '')) ? undefined : err));
    if (this.readyState === WebSocket.OPEN) this.checkBacklog();
  }

  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'error' && isClientFrameError(args[0])) {
      this.onClientFrameError(args[0]);
      return true;
    }
    if (event === 'message') {
      this.receive(String(args[0]), args);
      return true;
    }
    return super.emit(event, ...args);
  }

  /** A client message (`data` its text, `args` as ws emitted it), routed by its operation id. */
  private receive(data: string, args: unknown[]): void {
    const routing = (this.operationIds ??= new OperationIds(this.maxHeld())).route(data);
    switch (routing.action) {
      case 'pass': {
        // graphql-ws's listener resolves once it has finished with the message: for a subscribe, once the
        // operation has ended and graphql-ws has let go of its id.
        const handled = this.rawListeners('message').map((listener) => (listener as (...a: unknown[]) => unknown).apply(this, args));
        const id = routing.track;
        if (id !== undefined) void Promise.allSettled(handled).then(() => this.operationEnded(id));
        return;
      }
      case 'hold':
      case 'drop':
        return;
      case 'duplicate':
        this.onDuplicateOperation();
        this.close(CLOSE_SUBSCRIBER_EXISTS, routing.reason);
        return;
      case 'refuse':
        this.refuseHeld(routing.id);
        return;
      default:
        assertNever(routing);
    }
  }

  private operationEnded(id: string): void {
    const next = this.operationIds?.ended(id);
    if (next !== undefined && this.readyState === WebSocket.OPEN) this.receive(next, [next, false]);
  }
}

/** Close code for a key that already has its allowed number of sockets (like HTTP 429). */
export const CLOSE_TOO_MANY_SOCKETS = 4429;
/** The 4403 reason when connection_init carried no key at all. */
const FORBIDDEN_NO_KEY = 'Forbidden: send connectionParams { authorization: "Bearer <api key>" } in connection_init';

/** Attaches graphql-ws to `httpServer` at `path`. */
export function createGraphqlWs(options: GraphqlWsOptions): GraphqlWs {
  const { logger, limits } = options;
  const allowedOrigins = new Set(limits.wsAllowedOrigins);
  const socketsPerKey = new Map<string, number>();
  // Operations running per key over all its sockets: memory per subscription is what a key can grow.
  const operationsPerKey = new Map<string, number>();
  const keyOf = (principal: Principal | null | undefined) => principal?.name ?? 'anonymous';
  /** Gives an operation's place back to its key, once (onComplete and a socket's close may both see it). */
  const releaseKeyOperation = (extra: Extra, id: string) => {
    const at = extra.keyOperations?.indexOf(id) ?? -1;
    if (at < 0) return;
    extra.keyOperations!.splice(at, 1);
    const key = keyOf(extra.principal);
    const left = (operationsPerKey.get(key) ?? 1) - 1;
    if (left > 0) operationsPerKey.set(key, left);
    else operationsPerKey.delete(key);
  };
  let operations = 0;

  // What may wait in this process for one socket's client to read it: one largest answer, and a frame per
  // other operation or echoed ping. graphql-ws writes an operation's next frame only once the last one has
  // left, but answers every message the client sends; a client that keeps sending and never reads (a ping
  // loop in a frozen tab), or asks for many answers at once and stops reading, would otherwise have them
  // pile up here without end. The kernel's socket buffers come before this.
  const maxBacklogBytes = (limits.maxResponseBytes ?? 0) + (limits.wsMaxSubscriptionsPerSocket + 1) * limits.wsMaxPayloadBytes;

  // noServer, with the upgrade listener below: attached with `server`, ws would re-emit the HTTP server's
  // own errors (a port in use) as WebSocket server errors, which graphql-ws prints with a stack trace
  // before the real reason reaches main.ts.
  const wss = new WebSocketServer({
    noServer: true,
    WebSocket: class extends GatewaySocket {
      protected override onClientFrameError(err: Error & { code: string }): void {
        logger.info({ code: err.code, reason: err.message }, 'graphql-ws frame refused: the client sent a frame it may not');
        options.onClientError?.(err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 'limit' : 'protocol');
      }

      protected override checkBacklog(): void {
        const waiting = this.bufferedAmount;
        if (waiting <= maxBacklogBytes) return;
        logger.info({ bufferedBytes: waiting, maxBacklogBytes }, 'graphql-ws socket cut off: what waits for its client to read passed its bound');
        options.onClientError?.('limit');
        this.terminate();
      }

      protected override onDuplicateOperation(): void {
        logger.info('graphql-ws socket closed: a subscribe repeated the id of an operation still running (4409)');
        options.onClientError?.('protocol');
      }

      protected override maxHeld(): number {
        return limits.wsMaxSubscriptionsPerSocket;
      }

      // Each waiting subscribe holds its message: they are as many as the socket may run operations at most.
      protected override refuseHeld(id: string): void {
        options.onClientError?.('limit');
        const error = { message: `At most ${limits.wsMaxSubscriptionsPerSocket} operations at once on one socket`, extensions: { code: ErrorCode.RATE_LIMITED, retryAfterSeconds: 1 } };
        this.send(JSON.stringify({ id, type: 'error', payload: [error] }));
      }

      // A subscription's event queue passed its limit (its stream has failed RATE_LIMITED). While a write to
      // this socket waits on its client, graphql-ws cannot send that error, end the operation or give its
      // places back until the client reads again or the keep-alive cuts it; and every operation on the
      // socket is stuck behind the same write. The socket is what stopped, so it is cut now: the client's
      // places come back at once, and a graphql-ws client reconnects and subscribes again (from a snapshot,
      // or callEvents(after:)). A client that is reading gets the RATE_LIMITED error on that operation alone.
      override fellBehind(): void {
        const waiting = this.bufferedAmount;
        if (this.readyState !== WebSocket.OPEN || waiting === 0) return;
        logger.info({ bufferedBytes: waiting }, 'graphql-ws socket cut off: a subscription fell past its event queue limit while its client was not reading');
        options.onClientError?.('limit');
        this.terminate();
      }
    },
    path: options.path,
    maxPayload: limits.wsMaxPayloadBytes,
    // ws's default, stated: frames differ per subscriber (their operation ids), so compression would
    // deflate every frame once per subscriber, and hold a zlib context per socket.
    perMessageDeflate: false,
    // Browsers always send Origin; refusing foreign ones stops other sites riding a user's session.
    verifyClient: ({ origin }, done) => {
      if (allowedOrigins.size === 0 || !origin || allowedOrigins.has(origin)) done(true);
      else {
        // The client's doing (another site's page), as a wrong key is: info and counted, not a warning any
        // page could write at will.
        logger.info({ origin }, 'graphql-ws connection from a disallowed origin refused');
        options.onClientError?.('auth');
        done(false, 403, 'Forbidden');
      }
    },
  });

  /**
   * Closed before graphql-ws sees the socket: its own listener would also print a console warning per such
   * client outside production (a reconnect loop of an old client writing at will), and ping it meanwhile.
   */
  const refuseOtherProtocol = (socket: WebSocket) => {
    logger.info({ protocol: socket.protocol || null }, 'graphql-ws connection refused: the client speaks another subprotocol');
    options.onClientError?.('protocol');
    // Nothing else listens on this socket: a reset while it closes must not become an uncaught 'error'.
    socket.on('error', () => {});
    socket.close(CloseCode.SubprotocolNotAcceptable, OTHER_PROTOCOL);
  };

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    wss.handleUpgrade(req, socket, head, (ws) => (ws.protocol === WS_PROTOCOL ? wss.emit('connection', ws, req) : refuseOtherProtocol(ws)));
  };
  options.httpServer.on('upgrade', onUpgrade);

  const mask = options.maskMessage ?? ((message: string) => message);
  const format = (error: GraphQLError) => {
    const formatted = formatError(error.toJSON(), error, { production: options.production });
    return { ...formatted, message: mask(formatted.message) };
  };
  const firstCode = (errors: readonly GraphQLError[]) => String(format(errors[0] ?? new GraphQLError('')).extensions?.code ?? ErrorCode.INTERNAL_SERVER_ERROR);
  const rules = [...specifiedRules, ...(options.validationRules ?? [])];
  // Documents that passed the token limit, parsing and validation, by text. Thousands of subscribers of the
  // same operation then share one AST (memory per subscription) and skip the checks (CPU per subscribe).
  // The checks depend on the text alone: the same rules run for everyone.
  const documents = new LRUCache<string, DocumentNode>({
    max: DOCUMENT_CACHE.maxEntries,
    maxSize: DOCUMENT_CACHE.maxTotalSize,
    maxEntrySize: Math.floor(DOCUMENT_CACHE.maxTotalSize / 10),
    sizeCalculation: (_document, text) => Math.max(1, text.length),
  });
  /** Formats a result's errors (counting the client's mistakes among them); results without errors pass. */
  const formatResult = (result: ExecutionResult) => {
    if (!result.errors) return result;
    const formatted = { ...result, errors: result.errors.map(format) };
    if (options.onClientError) {
      for (const error of formatted.errors) {
        const kind = clientErrorKind(error);
        if (kind) options.onClientError(kind);
      }
    }
    return formatted;
  };
  // Subscription events are executed and formatted once per distinct operation, not once per subscriber.
  const shared = createSharedSubscriptions({ formatResult });

  const disposable = useServer<Record<string, unknown> | undefined, Extra>(
    // One span per operation while tracing is on (src/tracing/graphql.ts); the options as they are otherwise.
    traceWsOperations({
      schema: options.schema,
      subscribe: shared.subscribe,
      connectionInitWaitTimeout: limits.wsConnectionInitTimeoutMs,
      onConnect: (ctx) => {
        const socketId = requestIdFrom(ctx.extra.request.headers['x-request-id']);
        // Everything this transport reads from the upgrade request is read by now (the request id above; the
        // trace context, src/tracing/graphql.ts, before this hook); its headers and streams need not stay.
        releaseRequest(ctx.extra);
        const log = logger.child({ requestId: socketId });
        let principal: Principal | null = null;
        if (options.authenticate) {
          const raw = ctx.connectionParams?.authorization ?? ctx.connectionParams?.Authorization;
          try {
            principal = options.authenticate(typeof raw === 'string' ? raw : undefined);
          } catch (err) {
            if (!isGatewayError(err)) throw err;
            log.info({ reason: err.message }, 'graphql-ws connection refused: not authenticated');
            options.onClientError?.('auth');
            // graphql-ws's own 4403 says only "Forbidden"; the reason says what to send (a close reason holds
            // at most 123 bytes; these are fixed texts). Its close after this is a no-op.
            ctx.extra.socket.close(CloseCode.Forbidden, typeof raw !== 'string' ? FORBIDDEN_NO_KEY : `Forbidden: ${err.message}`);
            return false;
          }
        }
        const key = principal?.name ?? 'anonymous';
        const open = socketsPerKey.get(key) ?? 0;
        if (open >= limits.wsMaxSocketsPerKey) {
          // The client's doing, like any limit (a reconnect loop would write a warning per attempt).
          log.info({ key }, 'graphql-ws connection refused: too many sockets for this key');
          options.onClientError?.('limit');
          // Not a 4403: the key is good, it is only over its share. graphql-ws's own 4403 after this is a no-op.
          ctx.extra.socket.close(CLOSE_TOO_MANY_SOCKETS, 'Too many sockets for this API key');
          return false;
        }
        socketsPerKey.set(key, open + 1);
        ctx.extra.principal = principal;
        ctx.extra.socketId = socketId;
        ctx.extra.operationCount = 0;
        // One line per socket, like the HTTP access log; its operations log with requestId "<socket id>:<n>".
        log.info({ key }, 'graphql-ws connection acknowledged');
        return true;
      },
      onClose: (ctx) => {
        // Operations that never reached onComplete (their execution threw) give their places back here.
        for (const id of [...(ctx.extra.keyOperations ?? [])]) releaseKeyOperation(ctx.extra, id);
        // Only sockets that were counted (acknowledged) are uncounted.
        if (ctx.extra.principal === undefined) return;
        const key = ctx.extra.principal?.name ?? 'anonymous';
        const left = (socketsPerKey.get(key) ?? 1) - 1;
        if (left > 0) socketsPerKey.set(key, left);
        else socketsPerKey.delete(key);
      },
      onSubscribe: (ctx, id, payload): ExecutionArgs | readonly GraphQLError[] => {
        const started = process.hrtime.bigint();
        const seen = (type: string, outcome: string, name: string | null | undefined = payload.operationName) =>
          options.onOperation?.({ name, type, outcome, durationSeconds: Number(process.hrtime.bigint() - started) / 1e9 });
        const refuse = (errors: readonly GraphQLError[]) => {
          // graphql's own parse and validation errors carry no code; they are the client's fault, as on HTTP.
          const coded = errors.map((e) =>
            e.extensions.code !== undefined || isGatewayError(e.originalError)
              ? e
              : new GraphQLError(e.message, { nodes: e.nodes, source: e.source, positions: e.positions, originalError: e.originalError, extensions: { ...e.extensions, code: 'GRAPHQL_VALIDATION_FAILED' } }),
          );
          seen('unknown', firstCode(coded));
          if (options.onClientError) {
            for (const e of coded) {
              const kind = clientErrorKind(format(e));
              if (kind) options.onClientError(kind);
            }
          }
          return coded;
        };
        // graphql-ws has already registered this operation in ctx.subscriptions.
        if (Object.keys(ctx.subscriptions).length > limits.wsMaxSubscriptionsPerSocket) {
          return refuse([new GraphQLError(`At most ${limits.wsMaxSubscriptionsPerSocket} operations at once on one socket`, { extensions: { code: ErrorCode.RATE_LIMITED, retryAfterSeconds: 1 } })]);
        }
        const key = keyOf(ctx.extra.principal);
        const keyOperations = operationsPerKey.get(key) ?? 0;
        if (limits.wsMaxSubscriptionsPerKey !== undefined && keyOperations >= limits.wsMaxSubscriptionsPerKey) {
          return refuse([
            new GraphQLError(`At most ${limits.wsMaxSubscriptionsPerKey} operations at once for one API key (WS_MAX_SUBSCRIPTIONS_PER_KEY)`, {
              extensions: { code: ErrorCode.RATE_LIMITED, retryAfterSeconds: 1 },
            }),
          ]);
        }
        let document = documents.get(payload.query);
        if (!document) {
          // Before parsing: a huge document must not cost a full parse.
          const tooMany = options.checkTokens?.(payload.query);
          if (tooMany) return refuse([tooMany.toGraphQLError()]);
          try {
            document = parse(payload.query);
          } catch (err) {
            const message = err instanceof GraphQLError ? err.message : 'The query could not be parsed';
            return refuse([new GraphQLError(message, { nodes: err instanceof GraphQLError ? err.nodes : undefined, source: err instanceof GraphQLError ? err.source : undefined, positions: err instanceof GraphQLError ? err.positions : undefined, extensions: { code: 'GRAPHQL_PARSE_FAILED' } })]);
          }
          const errors = validate(options.schema, document, rules);
          if (errors.length > 0) return refuse(errors);
          documents.set(payload.query, document);
        }
        // Per caller, so it stays out of the shared document cache above.
        const refused = options.introspection?.check(document, ctx.extra.principal, payload.query);
        if (refused) return refuse([refused.toGraphQLError()]);
        // Variables are coerced here, not by execute: a wrong variable is the client's mistake and answers
        // BAD_USER_INPUT as on HTTP (execute would report it as a result error without a code).
        const operation = getOperationAST(document, payload.operationName);
        if (!operation) {
          // graphql-ws would answer this itself, as an internal error; it is the client's (as on HTTP).
          const message = payload.operationName ? `Unknown operation named "${payload.operationName}".` : 'Must provide operation name if query contains multiple operations.';
          return refuse([new GraphQLError(message, { extensions: { code: 'OPERATION_RESOLUTION_FAILURE' } })]);
        }
        const variables = coerceVariables(options.schema, operation, payload.variables);
        if (variables.errors) return refuse(variables.errors.map((e) => new GraphQLError(e.message, { nodes: e.nodes, originalError: e.originalError, extensions: { code: 'BAD_USER_INPUT' } })));
        // Weighed as coerced, defaults applied: a list or size written as a default is held to the limits too.
        const tooCostly = options.cost?.check([{ query: document, operationName: payload.operationName, coercedVariables: variables.coerced }]);
        if (tooCostly) return refuse([tooCostly.toGraphQLError()]);
        operations++;
        operationsPerKey.set(key, keyOperations + 1);
        // Sized to its one id (`[]` then push would reserve room for 16).
        if (ctx.extra.keyOperations) ctx.extra.keyOperations.push(id);
        else ctx.extra.keyOperations = [id];
        const operationCount = (ctx.extra.operationCount ?? 0) + 1;
        ctx.extra.operationCount = operationCount;
        const type = document.definitions.find((d) => d.kind === 'OperationDefinition' && (!payload.operationName || d.name?.value === payload.operationName));
        if (type?.kind === Kind.OPERATION_DEFINITION) seen(type.operation, 'ok', payload.operationName ?? type.name?.value);
        else seen('unknown', 'ok');
        const args: ExecutionArgs = {
          schema: options.schema,
          document,
          variableValues: payload.variables ?? null,
          operationName: payload.operationName ?? null,
          contextValue: options.contextFactory({
            auth: ctx.extra.principal ?? null,
            subscriber: ctx.extra.socket as GatewaySocket,
            ...(ctx.extra.socketId ? { requestId: `${ctx.extra.socketId}:${operationCount}` } : {}),
          }),
        };
        if (type?.kind === Kind.OPERATION_DEFINITION && type.operation === OperationTypeNode.SUBSCRIPTION) {
          // Everything an event's result depends on: the operation as sent, and (to be safe) the caller.
          shared.share(args, JSON.stringify([ctx.extra.principal?.name ?? null, payload.operationName ?? null, payload.query, payload.variables ?? null]));
        }
        return args;
      },
      // Runs for every operation that got past onSubscribe, however it ended (graphql-ws guarantees it).
      onComplete: (ctx, id) => {
        operations = Math.max(0, operations - 1);
        releaseKeyOperation(ctx.extra, id);
      },
      onError: (_ctx, _id, _payload, errors) => errors.map(format),
      // Shared subscription results are formatted once, for every subscriber (graphql-ws sends them as they
      // are); results of queries and mutations over the socket are formatted here.
      onNext: (_ctx, _id, _payload, args, result) => {
        // Subscription events come formatted from the shared executor.
        if (shared.isShared(args)) return result;
        const formatted = result.errors ? formatResult(result) : undefined;
        if (limits.maxResponseBytes !== undefined) {
          // Serialised once more than graphql-ws would; only query and mutation answers pass here.
          const json = JSON.stringify(formatted ?? result);
          if (exceedsBytes(json, limits.maxResponseBytes) && !isMutation(args.document, args.operationName)) {
            options.onResponseWithheld?.(Buffer.byteLength(json));
            const error = responseTooLargeError(limits.maxResponseBytes);
            return { errors: [{ message: error.message, extensions: error.extensions }] };
          }
        }
        return formatted;
      },
    }),
    wss,
    options.keepAliveMs,
  );
  // useServer has just set graphql-ws's handleProtocols, which refuses other subprotocols in the handshake.
  wss.options.handleProtocols = chooseProtocol;

  let closing: Promise<void> | undefined;
  return {
    wss,
    socketCount: () => wss.clients.size,
    operationCount: () => operations,
    sharedStats: () => shared.stats(),
    close: () =>
      (closing ??= (async () => {
        const sockets = [...wss.clients];
        const closed = Promise.all(sockets.map((socket) => new Promise<void>((resolve) => (socket.readyState === socket.CLOSED ? resolve() : socket.once('close', () => resolve())))));
        // Sends 1001 Going Away to every socket and stops taking new ones.
        await disposable.dispose();
        // Clients get a moment to complete the close handshake; whoever has not is cut off.
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([closed, new Promise<void>((resolve) => (timer = setTimeout(resolve, options.closeGraceMs ?? 1000)))]);
        clearTimeout(timer);
        for (const socket of wss.clients) socket.terminate();
        for (const socket of sockets) socket.terminate();
        options.httpServer.off('upgrade', onUpgrade);
        await new Promise<void>((resolve) => wss.close(() => resolve()));
      })()),
  };
}

