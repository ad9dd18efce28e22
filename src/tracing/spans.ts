/**
 * The gateway's spans, at the few seams where its work is done: one per Exotel request (with the wait for
 * rate budget as a child span per attempt), one per webhook ingest, one per subscription event fan-out.
 * GraphQL operation spans live in ./graphql.ts. Only @opentelemetry/api is imported here; until
 * ./sdk.ts has started a provider every helper simply runs its function (no span, no context switch).
 *
 * Attributes carry names, kinds, Sids, codes and counts — never a header, a URL with its token, a key,
 * Exotel credentials, or a document's variables (phone numbers, SMS bodies).
 */
import { context, INVALID_SPAN_CONTEXT, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span } from '@opentelemetry/api';

let enabled = false;
/** What helpers hand their function while tracing is off: a span that records nothing. */
const NOT_RECORDING = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/** Set by ./sdk.ts when it has registered a provider (and unset on shutdown). */
export function setTracingEnabled(on: boolean): void {
  enabled = on;
}

/** True when spans are being recorded and exported. */
export function tracingEnabled(): boolean {
  return enabled;
}

/** The tracer every gateway span comes from (instrumentation scope: the package name). */
export const tracer = () => trace.getTracer('exotel-graphql-gateway');

/** The W3C trace context a client sent (`traceparent`, `tracestate`), or `fallback` when it sent none. */
export function extractTraceContext(carrier: Record<string, unknown> | undefined, fallback: Context = ROOT_CONTEXT): Context {
  if (!carrier) return fallback;
  const traceparent = carrier.traceparent;
  if (typeof traceparent !== 'string') return fallback;
  const tracestate = carrier.tracestate;
  const extracted = propagation.extract(fallback, typeof tracestate === 'string' ? { traceparent, tracestate } : { traceparent });
  // A malformed traceparent extracts to nothing: then the fallback's parent (if any) stays.
  return trace.getSpanContext(extracted) ? extracted : fallback;
}

/** Marks a span failed with a contract code (`error.type`), never a message that could echo input. */
export function failSpan(span: Span, code: string): void {
  span.setAttribute('error.type', code);
  span.setStatus({ code: SpanStatusCode.ERROR, message: code });
}

/** The contract code of a thrown error (GatewayError.code), else the error's class name. */
function codeOf(error: unknown): string {
  if (error && typeof error === 'object') {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    return (error as Error).constructor?.name ?? 'Error';
  }
  return 'Error';
}

/** Runs `fn` inside a new active span that ends when `fn` settles; a throw marks it failed and is rethrown. */
async function inSpan<T>(name: string, kind: SpanKind, attributes: Attributes, fn: (span: Span) => Promise<T>, parent: Context = context.active()): Promise<T> {
  return tracer().startActiveSpan(name, { kind, attributes }, parent, async (span) => {
    try {
      return await fn(span);
    } catch (error) {
      failSpan(span, codeOf(error));
      throw error;
    } finally {
      span.end();
    }
  });
}

// ─────────────────────────────── Exotel ───────────────────────────────

/**
 * One logical Exotel request (all its attempts): span `exotel <endpoint>`, kind CLIENT. The URL is not
 * recorded (it holds the account Sid and entity Sids in the path; the endpoint name says what was asked).
 * `exotel.priority` tells a client's request (`foreground`) from the poller's and reconciler's
 * (`background`), which start traces of their own.
 */
export function traceExotelRequest<T>(request: { endpoint: string; method: string; host: string; priority: string }, fn: () => Promise<T>): Promise<T> {
  if (!enabled) return fn();
  return inSpan(
    `exotel ${request.endpoint}`,
    SpanKind.CLIENT,
    { 'exotel.endpoint': request.endpoint, 'http.request.method': request.method, 'server.address': request.host, 'exotel.priority': request.priority },
    () => fn(),
  );
}

/**
 * The wait for one request's worth of rate budget: span `exotel budget wait`. Before an attempt it is a
 * child of the Exotel request (`exotel.attempt` set); for a shared lookup batch, which takes its budget
 * before its request, a child of the operation that opened the batch.
 */
export function traceBudgetWait<T>(priority: string, attempt: number | undefined, fn: () => Promise<T>): Promise<T> {
  if (!enabled) return fn();
  const attributes: Attributes = { 'exotel.budget.priority': priority };
  if (attempt !== undefined) attributes['exotel.attempt'] = attempt;
  return inSpan('exotel budget wait', SpanKind.INTERNAL, attributes, () => fn());
}

/** Records one attempt's answer on the Exotel request span (an event per attempt; the last status as an attribute). */
export function noteExotelAttempt(attempt: number, status: number | string, durationMs: number): void {
  if (!enabled) return;
  const span = trace.getActiveSpan();
  if (!span) return;
  span.addEvent('exotel attempt', { 'exotel.attempt': attempt, 'exotel.attempt.outcome': String(status), 'exotel.attempt.duration_ms': durationMs });
  span.setAttribute('exotel.attempts', attempt);
  if (typeof status === 'number') span.setAttribute('http.response.status_code', status);
}

// ─────────────────────────────── live ───────────────────────────────

/**
 * One webhook's ingest (validated update → event log → publish): span `webhook <kind>`, kind SERVER,
 * continuing a `traceparent` the sender (or a proxy in front) sent. The URL, which holds the webhook
 * token, is never recorded.
 */
export function traceIngest<T>(webhook: { kind: string; sid: string | undefined; headers: Record<string, unknown> }, fn: (span: Span) => Promise<T>): Promise<T> {
  if (!enabled) return fn(NOT_RECORDING);
  const attributes: Attributes = { 'webhook.kind': webhook.kind };
  if (webhook.sid) attributes['exotel.sid'] = webhook.sid;
  return inSpan(`webhook ${webhook.kind}`, SpanKind.SERVER, attributes, fn, extractTraceContext(webhook.headers, context.active()));
}

/**
 * One event handed to this process's subscribers: span `event fan-out`, a child of the ingest that
 * published it when both run in this process (memory storage); on Redis the reader starts a new trace and
 * the event id ties the two together.
 */
export function traceFanOut<E extends { id: string; kind: string; source: string }>(event: E, deliver: (event: E) => number): void {
  if (!enabled) {
    deliver(event);
    return;
  }
  const span = tracer().startSpan('event fan-out', {
    kind: SpanKind.INTERNAL,
    attributes: { 'gateway.event.id': event.id, 'gateway.event.kind': event.kind, 'gateway.event.source': event.source },
  });
  try {
    span.setAttribute('gateway.event.subscribers', context.with(trace.setSpan(context.active(), span), deliver, undefined, event));
  } catch (error) {
    failSpan(span, codeOf(error));
    throw error;
  } finally {
    span.end();
  }
}
