/**
 * `npm run simulator`: the Exotel simulator as its own process (for running the gateway against it
 * with EXOTEL_BASE_URL, or for poking it with curl). The only simulator file that reads process.env.
 *
 * SIMULATOR_PORT (default 4010), SIMULATOR_HOST (default 127.0.0.1), SIMULATOR_TIME_SCALE (default 1),
 * SIMULATOR_RATE_PER_MIN (default 200), SIMULATOR_INCOMING_CALL_URL (where incoming calls' flow requests go,
 * e.g. a gateway's URL from `npm run webhook-urls`), EXOTEL_ACCOUNT_SID / EXOTEL_API_KEY / EXOTEL_API_TOKEN (the
 * credentials it accepts; default the simulator's own sim-account / sim-key / sim-token).
 */
import { createSimulator, SIMULATOR_DEFAULTS } from './index.js';

/** One line on stderr and exit 1: what to change, no stack. */
function fail(message: string): never {
  console.error(`Exotel SIMULATOR: ${message}`);
  process.exit(1);
}

function numberVar(name: string, fallback: number, rule: string, check: (n: number) => boolean): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!check(value)) fail(`${name}=${JSON.stringify(raw)} is not valid: ${rule}`);
  return value;
}

const env = process.env;
const accountSid = env.EXOTEL_ACCOUNT_SID || SIMULATOR_DEFAULTS.accountSid;
const apiKey = env.EXOTEL_API_KEY || SIMULATOR_DEFAULTS.apiKey;
const apiToken = env.EXOTEL_API_TOKEN || SIMULATOR_DEFAULTS.apiToken;

const port = numberVar('SIMULATOR_PORT', SIMULATOR_DEFAULTS.port, 'a whole number from 0 to 65535', (n) => Number.isInteger(n) && n >= 0 && n < 65536);
const host = env.SIMULATOR_HOST || SIMULATOR_DEFAULTS.host;
const sim = await createSimulator({
  port,
  host,
  timeScale: numberVar('SIMULATOR_TIME_SCALE', SIMULATOR_DEFAULTS.timeScale, 'a number above 0 (0.01 = 100× faster)', (n) => n > 0),
  ratePerMinute: numberVar('SIMULATOR_RATE_PER_MIN', SIMULATOR_DEFAULTS.ratePerMinute, 'a whole number above 0', (n) => Number.isInteger(n) && n > 0),
  accountSid,
  apiKey,
  apiToken,
  ...(env.SIMULATOR_INCOMING_CALL_URL ? { incomingCallUrl: env.SIMULATOR_INCOMING_CALL_URL } : {}),
}).catch((err: unknown) => {
  // The usual causes are the address, as for the gateway (src/main.ts).
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'EADDRINUSE') fail(`port ${port} on ${host} is already in use; stop what listens there or set SIMULATOR_PORT`);
  if (code === 'EACCES') fail(`not allowed to listen on port ${port}; set SIMULATOR_PORT`);
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') fail(`SIMULATOR_HOST ${host} is not an address of this machine; set SIMULATOR_HOST`);
  throw err;
});

const usingDefaults = apiKey === SIMULATOR_DEFAULTS.apiKey && apiToken === SIMULATOR_DEFAULTS.apiToken;
console.log('This is a SIMULATOR of Exotel: no real calls or SMS are made.');
console.log(`  base URL:   ${sim.url}   (e.g. ${sim.url}/v1/Accounts/${sim.accountSid}/Calls.json)`);
// The simulator's own default credentials are not secrets; credentials given by env are never printed.
console.log(usingDefaults ? `  account:    ${sim.accountSid}   key: ${sim.apiKey}   token: ${sim.apiToken}` : `  account:    ${sim.accountSid}   (key/token from the environment)`);
console.log(`  faults:     POST ${sim.url}/__sim/faults  e.g. {"kind":"error","status":503,"count":3}`);
console.log(`  incoming:   POST ${sim.url}/__sim/incoming-calls  e.g. {"outcome":"answered"}  (to ${env.SIMULATOR_INCOMING_CALL_URL ? 'SIMULATOR_INCOMING_CALL_URL' : 'the "url" you give'})`);
if (usingDefaults) {
  // What a gateway needs to talk to this simulator as if it were Exotel (live mode; docs/simulator.md).
  console.log(
    `  gateway:    EXOTEL_BASE_URL=${sim.url} EXOTEL_ACCOUNT_SID=${sim.accountSid} EXOTEL_API_KEY=${sim.apiKey} ` +
      `EXOTEL_API_TOKEN=${sim.apiToken} WEBHOOK_SECRET=local-simulator-secret GATEWAY_ALLOW_OPEN=1 npm start`,
  );
  // Callbacks go to PUBLIC_URL (default http://localhost:$PORT): with several gateways, the address in front of them.
  console.log('  replicas:   add PORT, PUBLIC_URL (the proxy in front of them), REDIS_URL and GATEWAY_REPLICAS to each (docs/scale-out.md)');
}

let shuttingDown = false;
const shutdown = (signal: string): void => {
  if (shuttingDown) return;
  shuttingDown = true;
  console.log(`Exotel SIMULATOR: ${signal}, stopping`);
  sim.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
