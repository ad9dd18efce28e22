/**
 * startGateway(): the real server on port 0 (simulator upstream, memory storage unless told otherwise),
 * disposed automatically after the test file.
 */
import { afterAll } from 'vitest';
import { Writable } from 'node:stream';
import { configFrom, type Config } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { createServer, type Gateway, type GatewayDeps } from '../../src/server.js';

export interface TestGateway extends Gateway {
  /** Every log line the gateway wrote, parsed. */
  logs: Array<Record<string, unknown>>;
  /** The raw log text, for canary searches. */
  logText(): string;
  /** POST a GraphQL operation; returns the parsed body and status. */
  gql<T = any>(query: string, variables?: Record<string, unknown>, headers?: Record<string, string>): Promise<{ status: number; body: { data?: T; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> } }>;
}

/** Environment every test gateway starts from: fast simulator, quiet logs unless asked. */
export const TEST_ENV: Record<string, string> = {
  PORT: '0',
  HOST: '127.0.0.1',
  SIMULATOR_TIME_SCALE: '0.01',
  LOG_LEVEL: 'info',
};

export async function startGateway(
  env: Record<string, string | undefined> = {},
  overrides: Partial<Config> = {},
  deps: GatewayDeps = {},
  options: { autoStop?: boolean } = {},
): Promise<TestGateway> {
  const config = configFrom({ ...TEST_ENV, ...env }, overrides);
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  const logger = deps.logger ?? createLogger({ level: config.logLevel, destination });
  const gateway = await createServer(config, { ...deps, logger });
  if (options.autoStop !== false) afterAll(() => gateway.stop());
  const parseLogs = () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  const testGateway = Object.assign(gateway, {
    logs: [] as Array<Record<string, unknown>>,
    logText: () => chunks.join(''),
    async gql(query: string, variables?: Record<string, unknown>, headers: Record<string, string> = {}) {
      const res = await fetch(`${gateway.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ query, variables }),
      });
      const text = await res.text();
      return { status: res.status, body: JSON.parse(text) };
    },
  });
  // Parsed on every read, so a test always sees the lines written so far.
  Object.defineProperty(testGateway, 'logs', { get: parseLogs });
  return testGateway;
}
