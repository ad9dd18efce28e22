/**
 * The process entry point: the only place that reads process.env, listens, and handles signals.
 */
import { loadConfigOrExit, type Config } from './config.js';
import type { Gateway } from './server.js';

/** Why the gateway could not start, in words that name the variable to change. */
function startFailure(err: unknown, config: Config): string {
  switch ((err as NodeJS.ErrnoException | undefined)?.code) {
    case 'EADDRINUSE':
      return `port ${config.port} on ${config.host} is already in use; stop what listens there or set PORT`;
    case 'EACCES':
      return `not allowed to listen on port ${config.port} (ports below 1024 need privileges); set PORT`;
    case 'EADDRNOTAVAIL':
      return `HOST ${config.host} is not an address of this machine; set HOST`;
    default:
      return err instanceof Error ? err.message : String(err);
  }
}

async function main(): Promise<void> {
  const config = loadConfigOrExit(process.env);

  // Tracing is process-wide and must be registered before the gateway is wired; its SDK is loaded only
  // when an OTLP endpoint is set (src/tracing/sdk.ts).
  const { startTracing } = await import('./tracing/sdk.js');
  const tracing = await startTracing(process.env);
  // Imported after the config is known good, so a bad variable is reported before anything loads.
  const { createServer, shutdownTimeoutMs } = await import('./server.js');
  let gateway: Gateway;
  try {
    gateway = await createServer(config);
  } catch (err) {
    // One line an operator can act on, no stack: the usual causes are the address, not the code.
    console.error(`gateway failed to start: ${startFailure(err, config)}`);
    process.exit(1);
  }
  if (tracing) {
    tracing.logTo(gateway.logger.child({ component: 'otel' }));
    gateway.logger.info({ endpoint: tracing.endpoint }, 'tracing on: spans exported over OTLP/HTTP');
    for (const warning of tracing.warnings) gateway.logger.warn({ component: 'otel' }, warning);
  }
  gateway.logger.info(`GraphQL at ${gateway.url}/graphql, GraphiQL at ${gateway.url}/graphiql`);

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    gateway.logger.info({ signal }, 'shutting down');
    // Bound on graceful shutdown: after this the process exits anyway.
    const timeoutMs = shutdownTimeoutMs(config);
    const timer = setTimeout(() => {
      gateway.logger.error({ timeoutMs }, 'shutdown took too long; exiting');
      process.exit(1);
    }, timeoutMs);
    timer.unref();
    gateway
      .stop()
      // Last: the spans of the shutdown itself are exported too.
      .then(() => tracing?.shutdown())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          gateway.logger.error({ err }, 'error during shutdown');
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('unhandledRejection', (reason) => gateway.logger.error({ err: reason }, 'unhandled rejection'));
}

main().catch((err: unknown) => {
  console.error('gateway failed to start:', err instanceof Error ? err.message : String(err));
  process.exit(1);
});
