/**
 * The process entry point: the only place that reads process.env, listens, and handles signals.
 */
import { loadConfigOrExit } from './config.js';
import type { Gateway } from './server.js';

/** Bound on graceful shutdown: after this the process exits anyway. */
const SHUTDOWN_TIMEOUT_MS = 15_000;

async function main(): Promise<void> {
  const config = loadConfigOrExit(process.env);

  // Imported after the config is known good, so a bad variable is reported before anything loads.
  const { createServer } = await import('./server.js');
  const gateway: Gateway = await createServer(config);
  gateway.logger.info(`GraphQL at ${gateway.url}/graphql, GraphiQL at ${gateway.url}/graphiql`);

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    gateway.logger.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      gateway.logger.error('shutdown took too long; exiting');
      process.exit(1);
    }, SHUTDOWN_TIMEOUT_MS);
    timer.unref();
    gateway.stop().then(
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
