/**
 * Starting OpenTelemetry tracing, only when an OTLP endpoint is configured. The SDK and the exporter are
 * imported here dynamically, so a gateway without `OTEL_EXPORTER_OTLP_ENDPOINT` (or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) never loads them and every span helper (./spans.ts) is a no-op.
 *
 * Everything else is the standard OpenTelemetry environment, read by the SDK itself: OTEL_SERVICE_NAME and
 * OTEL_RESOURCE_ATTRIBUTES (resource), OTEL_TRACES_SAMPLER(_ARG) (sampling), OTEL_BSP_* (batching),
 * OTEL_EXPORTER_OTLP_(TRACES_)HEADERS / TIMEOUT / COMPRESSION (export), OTEL_SDK_DISABLED and
 * OTEL_TRACES_EXPORTER=none (off). The provider is process-wide, so main.ts starts and flushes it, not
 * createServer().
 */
import { diag, DiagLogLevel, type DiagLogger } from '@opentelemetry/api';
import { gatewayVersion } from '../graphql/version.js';
import { setTracingEnabled } from './spans.js';

/** service.name when neither OTEL_SERVICE_NAME nor OTEL_RESOURCE_ATTRIBUTES names one. */
export const DEFAULT_SERVICE_NAME = 'exotel-graphql-gateway';

export interface Tracing {
  /** Where spans go: the endpoint's origin and path only (never credentials or query). */
  endpoint: string;
  /** Settings that were set but are not honoured, for main.ts to log once. */
  warnings: string[];
  /** OpenTelemetry's own warnings and errors (export failures) go to this logger from now on. */
  logTo(logger: { warn(obj: object, msg: string): void; debug(obj: object, msg: string): void }): void;
  /** Exports every ended span still buffered, then stops the provider. Safe to call twice. */
  shutdown(): Promise<void>;
}

/** The reason tracing stays off for `env`, or undefined when it should start. */
export function tracingOffReason(env: NodeJS.ProcessEnv): string | undefined {
  if (!env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() && !env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim()) return 'no OTLP endpoint set';
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return 'OTEL_SDK_DISABLED=true';
  if (env.OTEL_TRACES_EXPORTER?.split(',').some((e) => e.trim() === 'none')) return 'OTEL_TRACES_EXPORTER=none';
  return undefined;
}

/** One line of a diag message: failed exports arrive as a whole serialised error, stack included. */
function briefly(message: string): string {
  let text = message;
  try {
    const parsed = JSON.parse(message) as { message?: unknown };
    if (typeof parsed?.message === 'string') text = parsed.message;
  } catch {
    // Not JSON: already a sentence.
  }
  return text.split('\n')[0]!.slice(0, 300);
}

/** The traces URL the exporter posts to, as the OTLP spec derives it from the environment. */
function tracesUrl(env: NodeJS.ProcessEnv): string {
  const specific = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  const raw = specific || `${(env.OTEL_EXPORTER_OTLP_ENDPOINT ?? '').trim().replace(/\/+$/, '')}/v1/traces`;
  try {
    const url = new URL(raw);
    return `${url.origin}${url.pathname}`;
  } catch {
    return '(unparsable URL)';
  }
}

/**
 * Starts tracing when `env` asks for it: registers a Node tracer provider (async-hooks context, W3C
 * trace-context propagation) with a batch span processor and the OTLP/HTTP (JSON) exporter.
 */
export async function startTracing(env: NodeJS.ProcessEnv): Promise<Tracing | undefined> {
  if (tracingOffReason(env)) return undefined;
  const [{ NodeTracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, { W3CTraceContextPropagator }, resources] = await Promise.all([
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/core'),
    import('@opentelemetry/resources'),
  ]);

  // Until main.ts hands over the gateway's logger, OpenTelemetry's complaints go to stderr.
  let target: Parameters<Tracing['logTo']>[0] = {
    warn: (_obj, msg) => console.error(msg),
    debug: () => undefined,
  };
  const toTarget: DiagLogger = {
    error: (message) => target.warn({}, `OpenTelemetry: ${briefly(message)}`),
    warn: (message) => target.warn({}, `OpenTelemetry: ${briefly(message)}`),
    info: (message) => target.debug({}, `OpenTelemetry: ${briefly(message)}`),
    debug: () => undefined,
    verbose: () => undefined,
  };
  diag.setLogger(toTarget, { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true });

  // Later resources win: the gateway's defaults, then OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES.
  const resource = resources
    .defaultResource()
    .merge(resources.resourceFromAttributes({ 'service.name': DEFAULT_SERVICE_NAME, 'service.version': gatewayVersion() }))
    .merge(resources.detectResources({ detectors: [resources.envDetector] }));

  const provider = new NodeTracerProvider({
    resource,
    // OTEL_BSP_SCHEDULE_DELAY, OTEL_BSP_MAX_QUEUE_SIZE, … are read by the processor itself.
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
  });
  // Only the trace context is continued from clients: W3C baggage would be untrusted input nobody reads.
  provider.register({ propagator: new W3CTraceContextPropagator() });
  setTracingEnabled(true);

  const warnings: string[] = [];
  const protocol = (env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL)?.trim();
  if (protocol && protocol !== 'http/json') warnings.push(`OTLP protocol "${protocol}" is not supported; spans are sent as OTLP/HTTP JSON`);

  let stopping: Promise<void> | undefined;
  return {
    endpoint: tracesUrl(env),
    warnings,
    logTo: (logger) => {
      target = logger;
    },
    shutdown: () =>
      (stopping ??= (async () => {
        setTracingEnabled(false);
        await provider.shutdown();
      })()),
  };
}
