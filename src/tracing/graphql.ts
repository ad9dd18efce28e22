/**
 * One span per GraphQL operation, on both transports, continuing the client's W3C trace context:
 *
 * - HTTP: `httpOperationSpan` (called by the GraphQL route in front of Apollo, after the body is read)
 *   starts the request's span from the `traceparent` header and makes it active, so everything Apollo and
 *   the resolvers do — Exotel requests included — is its child; `operationSpansPlugin` (an Apollo plugin)
 *   names it after the operation (`query OneCall`) and records its type and outcome. A batched request keeps one
 *   `POST /graphql` span with a child span per operation.
 * - graphql-ws: `traceWsOperations` wraps graphql-ws's server options. Each operation's span starts at
 *   subscribe and ends when the operation completes (for a subscription: when it ends); its parent is the
 *   `traceparent` of the operation's `extensions`, else of `connectionParams`, else of the upgrade request.
 *
 * Recorded: operation name and type, outcome (a contract code), HTTP method, route and status, request id
 * and the API key's name. Never the document, variables, headers or the key itself.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApolloServerPlugin } from '@apollo/server';
import { context, createContextKey, ROOT_CONTEXT, SpanKind, trace, type Context, type Span } from '@opentelemetry/api';
// execute/subscribe: graphql-js's own, as graphql-ws calls them when its options name none.
import { execute as defaultExecute, getOperationAST, subscribe as defaultSubscribe, type DocumentNode, type ExecutionArgs, type GraphQLError } from 'graphql';
import type { ServerOptions } from 'graphql-ws';
import { outcomeOf } from '../http/graphql-metrics.js';
import { extractTraceContext, failSpan, tracer, tracingEnabled } from './spans.js';

/** Set on the context of a batched HTTP request: the plugin then makes a child span per operation. */
const BATCH = createContextKey('exotel-graphql-gateway batch');

/** `query OneCall`, or just the type for an anonymous operation (the OpenTelemetry GraphQL convention). */
function spanName(type: string | undefined, name: string | null | undefined): string {
  if (!type) return 'GraphQL operation';
  return name ? `${type} ${name}` : type;
}

/** The outcome attribute and, when it is a failure, the span's error status. */
function recordOutcome(span: Span, errors: ReadonlyArray<{ extensions?: Record<string, unknown> | undefined }> | undefined): void {
  const outcome = outcomeOf(errors);
  span.setAttribute('gateway.outcome', outcome);
  if (outcome !== 'ok') failSpan(span, outcome);
}

// ─────────────────────────────── HTTP ───────────────────────────────

/** What the GraphQL route knows of a request when its span starts (after the body is read). */
export interface HttpOperationRequest {
  method: string;
  /** W3C trace context: `traceparent` and `tracestate`. */
  traceHeaders: Record<string, unknown>;
  /** The parsed body: an array for a batch. */
  body: unknown;
  requestId: string;
}

/**
 * Starts the request's span as a child of the client's `traceparent` and ends it when the response is
 * finished; answers a runner that runs the rest of the request with the span active, so Apollo, the
 * resolvers and Exotel requests are its children. Started after the body is read: a parser's stream
 * events would lose the active context.
 */
export function httpOperationSpan(request: HttpOperationRequest, res: ServerResponse): <T>(run: () => T) => T {
  const batch = Array.isArray(request.body);
  const span = tracer().startSpan(
    `${request.method} /graphql`,
    {
      kind: SpanKind.SERVER,
      attributes: {
        'http.request.method': request.method,
        'http.route': '/graphql',
        'gateway.request_id': request.requestId,
        ...(batch ? { 'graphql.batch.size': (request.body as unknown[]).length } : {}),
      },
    },
    extractTraceContext(request.traceHeaders),
  );
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    span.setAttribute('http.response.status_code', res.statusCode);
    if (res.statusCode >= 500) failSpan(span, String(res.statusCode));
    span.end();
  };
  res.once('finish', end);
  res.once('close', end);
  let active: Context = trace.setSpan(context.active(), span);
  if (batch) active = active.setValue(BATCH, true);
  return (run) => context.with(active, run);
}

/** The Apollo plugin naming the request span after its operation (or adding one child span per batched operation). */
export function operationSpansPlugin<TContext extends object>(): ApolloServerPlugin<TContext> {
  return {
    async requestDidStart() {
      const requestSpan = trace.getActiveSpan();
      if (!requestSpan) return {};
      const batched = context.active().getValue(BATCH) === true;
      // In a batch each operation gets its own span, a child of the request's; else the request's span is the operation's.
      const span = batched ? tracer().startSpan('GraphQL operation', { kind: SpanKind.INTERNAL }) : requestSpan;
      return {
        async didResolveOperation({ operation, operationName }) {
          if (!operation) return;
          span.updateName(spanName(operation.operation, operationName ?? operation.name?.value));
          span.setAttribute('graphql.operation.type', operation.operation);
          const name = operationName ?? operation.name?.value;
          if (name) span.setAttribute('graphql.operation.name', name);
        },
        async willSendResponse({ response, contextValue }) {
          const body = response.body;
          recordOutcome(span, body.kind === 'single' ? body.singleResult.errors : body.initialResult.errors);
          const auth = (contextValue as { auth?: { name?: unknown } | null }).auth;
          if (auth && typeof auth.name === 'string') span.setAttribute('gateway.api_key.name', auth.name);
          if (batched) span.end();
        },
      };
    },
  };
}

// ─────────────────────────────── graphql-ws ───────────────────────────────

type AnyServerOptions = ServerOptions<any, any>;
type WsContext = Parameters<NonNullable<AnyServerOptions['onSubscribe']>>[0];

/** The operation's type and name, from its document. */
function operationOf(document: DocumentNode, operationName: string | null | undefined): { type: string | undefined; name: string | undefined } {
  const operation = getOperationAST(document, operationName);
  return { type: operation?.operation, name: operationName ?? operation?.name?.value ?? undefined };
}

/**
 * Wraps graphql-ws server options so every operation has a span (see the top of the file). Returns the
 * options untouched while tracing is off.
 */
export function traceWsOperations<T extends AnyServerOptions>(options: T): T {
  if (!tracingEnabled()) return options;
  // Spans of each socket's running operations, by operation id.
  const spans = new WeakMap<WsContext, Map<string, Span>>();
  // The active context each operation's execution runs in, by the ExecutionArgs onSubscribe returned.
  const contexts = new WeakMap<ExecutionArgs, Context>();

  // The trace context of each socket's upgrade request, read when the socket connects: the transport does
  // not keep the request of an open socket.
  const upgrades = new WeakMap<WsContext, Context>();

  const parentOf = (ctx: WsContext, extensions: unknown): Context => {
    const fromUpgrade = upgrades.get(ctx) ?? ROOT_CONTEXT;
    const fromConnection = extractTraceContext(ctx.connectionParams as Record<string, unknown> | undefined, fromUpgrade);
    return extractTraceContext(extensions && typeof extensions === 'object' ? (extensions as Record<string, unknown>) : undefined, fromConnection);
  };
  const end = (ctx: WsContext, id: string) => {
    const span = spans.get(ctx)?.get(id);
    if (!span) return;
    spans.get(ctx)?.delete(id);
    span.end();
  };
  const runIn = (args: ExecutionArgs, run: (args: ExecutionArgs) => unknown): unknown => {
    const active = contexts.get(args);
    return active ? context.with(active, run, undefined, args) : run(args);
  };
  const execute = options.execute;
  const subscribe = options.subscribe;

  return {
    ...options,
    onConnect: (ctx: WsContext) => {
      const request = (ctx.extra as { request?: IncomingMessage } | undefined)?.request;
      const fromUpgrade = extractTraceContext(request?.headers as Record<string, unknown> | undefined, ROOT_CONTEXT);
      if (fromUpgrade !== ROOT_CONTEXT) upgrades.set(ctx, fromUpgrade);
      return options.onConnect?.(ctx);
    },
    onSubscribe: async (ctx: WsContext, id: string, payload: { operationName?: string | null; extensions?: unknown }) => {
      const parent = parentOf(ctx, payload.extensions);
      // Started first, so its duration includes the checks onSubscribe runs (limits, parse, validation).
      const span = tracer().startSpan('GraphQL operation', { kind: SpanKind.SERVER, attributes: { 'graphql.transport': 'graphql-ws', 'gateway.outcome': 'ok' } }, parent);
      let result: Awaited<ReturnType<NonNullable<AnyServerOptions['onSubscribe']>>>;
      try {
        result = await options.onSubscribe?.(ctx, id, payload as never);
      } catch (error) {
        failSpan(span, 'INTERNAL_SERVER_ERROR');
        span.end();
        throw error;
      }
      const principal = (ctx.extra as { principal?: { name?: unknown } | null } | undefined)?.principal;
      if (principal && typeof principal.name === 'string') span.setAttribute('gateway.api_key.name', principal.name);
      if (Array.isArray(result)) {
        // Refused before it ran (limits, parse or validation errors); onError records the code the client gets.
        if (payload.operationName) span.setAttribute('graphql.operation.name', payload.operationName);
      } else if (result) {
        const args = result as ExecutionArgs;
        const { type, name } = operationOf(args.document, args.operationName);
        span.updateName(spanName(type, name));
        if (type) span.setAttribute('graphql.operation.type', type);
        if (name) span.setAttribute('graphql.operation.name', name);
        const requestId = (args.contextValue as { requestId?: unknown } | undefined)?.requestId;
        if (typeof requestId === 'string') span.setAttribute('gateway.request_id', requestId);
        contexts.set(args, trace.setSpan(parent, span));
      }
      let open = spans.get(ctx);
      if (!open) spans.set(ctx, (open = new Map()));
      open.set(id, span);
      return result;
    },
    execute: (args: ExecutionArgs) => runIn(args, (execute ?? defaultExecute) as (args: ExecutionArgs) => unknown),
    subscribe: (args: ExecutionArgs) => runIn(args, (subscribe ?? defaultSubscribe) as (args: ExecutionArgs) => unknown),
    // Outcomes are read from what the client is sent (the wrapped hooks format errors and give them their codes).
    onNext: async (ctx: WsContext, id: string, payload: never, args: ExecutionArgs, result: { errors?: readonly GraphQLError[] }) => {
      const sent = (await options.onNext?.(ctx, id, payload, args, result as never)) as { errors?: ReadonlyArray<{ extensions?: Record<string, unknown> }> } | undefined;
      // Queries and mutations: their one result says how they went.
      const span = spans.get(ctx)?.get(id);
      if (span && result.errors) recordOutcome(span, sent?.errors ?? result.errors);
      return sent as never;
    },
    onError: async (ctx: WsContext, id: string, payload: never, errors: readonly GraphQLError[]) => {
      const sent = (await options.onError?.(ctx, id, payload, errors)) as ReadonlyArray<{ extensions?: Record<string, unknown> }> | undefined;
      const span = spans.get(ctx)?.get(id);
      if (span) {
        recordOutcome(span, sent ?? errors);
        end(ctx, id);
      }
      return sent as never;
    },
    onComplete: (ctx: WsContext, id: string, payload: never) => {
      end(ctx, id);
      return options.onComplete?.(ctx, id, payload);
    },
    onClose: (ctx: WsContext, code: number | undefined, reason: string | undefined) => {
      // Operations cut off with their socket.
      for (const id of [...(spans.get(ctx)?.keys() ?? [])]) end(ctx, id);
      return options.onClose?.(ctx, code, reason);
    },
  } as T;
}
