/**
 * A gateway under test in its own process: the real createServer() with the configuration of its
 * environment (the bench process sets it), plus the bench-only IPC of ./ipc.ts (memory after GC).
 */
import { loadConfig } from '../../src/config.js';
import { createServer } from '../../src/server.js';
import { serveIpc } from './ipc.js';

/** What the bench process learns when the gateway is up. */
export interface GatewayInfo {
  url: string;
  wsUrl: string;
  accountSid: string;
}

const config = loadConfig(process.env);
const gateway = await createServer(config);
serveIpc(
  { url: gateway.url, wsUrl: gateway.wsUrl, accountSid: gateway.exotel.accountSid } satisfies GatewayInfo,
  {},
  () => gateway.stop(),
);
