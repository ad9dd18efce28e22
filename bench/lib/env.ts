/**
 * The parts every figure starts: a simulator in the bench process (so upstream requests are counted where
 * they arrive), gateways in child processes pointed at it, baselines in child processes, and the webhook
 * URLs the gateway accepts.
 */
import { randomBytes } from 'node:crypto';
import { callbackToken } from '../../src/live/callback-urls.js';
import { createSimulator, type Simulator } from '../../src/simulator/index.js';
import type { BaselineInfo } from '../workers/baseline.js';
import type { GatewayInfo } from '../workers/gateway.js';
import { spawnWorker, type Worker } from './procs.js';

/** One secret per bench run: the bench mints the same callback URLs the gateway would. */
export const WEBHOOK_SECRET = `bench-${randomBytes(16).toString('hex')}`;

/** Budgets far above any figure's demand, for figures that are not about the rate budget. */
export const UNLIMITED_RATE_PER_MIN = 100_000;

export interface SimulatorSetup {
  ratePerMinute?: number;
  rateWindowMs?: number;
}

/** A quiet simulator on a free port; real-time clock (figures create finished calls directly). */
export function startSimulator(setup: SimulatorSetup = {}): Promise<Simulator> {
  return createSimulator({
    port: 0,
    host: '127.0.0.1',
    ratePerMinute: setup.ratePerMinute ?? UNLIMITED_RATE_PER_MIN,
    rateWindowMs: setup.rateWindowMs ?? 60_000,
    log: () => {},
  });
}

/**
 * The gateway's environment against `sim`: production mode (introspection off, masked errors), info
 * logs to a file, no client keys, limits raised only where a figure needs 10,000 sockets and subscriptions.
 */
export function gatewayEnv(sim: Simulator, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PORT: '0',
    HOST: '127.0.0.1',
    NODE_ENV: 'production',
    LOG_LEVEL: 'info',
    EXOTEL_ACCOUNT_SID: sim.accountSid,
    EXOTEL_API_KEY: sim.apiKey,
    EXOTEL_API_TOKEN: sim.apiToken,
    EXOTEL_BASE_URL: sim.url,
    EXOTEL_RATE_LIMIT_PER_MIN: String(UNLIMITED_RATE_PER_MIN),
    WEBHOOK_SECRET,
    GATEWAY_ALLOW_OPEN: '1',
    // The machine's ulimit allows 20,000 descriptors; the fan-out figure opens 10,000 sockets from one client.
    WS_MAX_SOCKETS_PER_KEY: '20000',
    WS_MAX_SUBSCRIPTIONS_PER_KEY: '20000',
    ...extra,
  };
}

/** Starts a gateway worker. */
export function startGateway(name: string, env: Record<string, string>, nodeFlags: string[] = []): Promise<Worker<GatewayInfo>> {
  return spawnWorker<GatewayInfo>(name, 'gateway.ts', { env, nodeFlags });
}

/** Starts a baseline worker of `role` (see workers/baseline.ts). */
export function startBaseline(role: 'http-json' | 'express-200' | 'express-redis' | 'ws-broadcast' | 'graphql-ws-floor' | 'apollo-dataloader', env: Record<string, string> = {}, nodeFlags: string[] = []): Promise<Worker<BaselineInfo>> {
  return spawnWorker<BaselineInfo>(`baseline-${role}`, 'baseline.ts', { args: [role], env, nodeFlags });
}

/** The call-status webhook URL of a gateway at `baseUrl`. */
export function callStatusUrl(baseUrl: string, accountSid: string): string {
  return `${baseUrl}/webhooks/exotel/${callbackToken(WEBHOOK_SECRET, accountSid, 'call-status')}/call-status`;
}

/** A fresh Exotel-like call Sid (32 hex characters). */
export function newSid(): string {
  return randomBytes(16).toString('hex');
}

/** A call-status callback body as Exotel posts it (form-urlencoded, the four default fields). */
export function callbackBody(callSid: string, status = 'completed'): string {
  return new URLSearchParams({ CallSid: callSid, Status: status, DateUpdated: '2026-01-15 10:00:00', RecordingUrl: '' }).toString();
}

/** Adds `count` finished (completed) calls to the simulator; returns their Sids. */
export function seedFinishedCalls(sim: Simulator, count: number): string[] {
  const sids: string[] = [];
  for (let i = 0; i < count; i++) {
    const call = sim.calls.create({ from: '09876543210', to: `0981234${String(i % 10000).padStart(4, '0')}`, status: 'completed', talkSeconds: 30 + (i % 60) });
    sids.push(call.Sid);
  }
  return sids;
}

/** POSTs a GraphQL operation; the body is always read. */
export async function gql<T = Record<string, unknown>>(url: string, query: string, variables?: Record<string, unknown>): Promise<{ status: number; data?: T; errors?: Array<{ message: string; extensions?: { code?: string } }> }> {
  const res = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }) });
  const text = await res.text();
  try {
    return { status: res.status, ...(JSON.parse(text) as object) };
  } catch {
    throw new Error(`non-JSON GraphQL answer (${res.status}): ${text.slice(0, 200)}`);
  }
}
