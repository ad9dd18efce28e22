/**
 * `npm run webhook-urls`: prints the callback URLs of the configured account, to paste into flows set up
 * in Exotel's dashboard (a Passthru applet for incoming calls, StatusCallback fields). The URLs carry a
 * token derived from WEBHOOK_SECRET, never the secret itself, so printing them is safe — but anyone who
 * has a URL can post to it, so share them like credentials.
 */
import { loadConfigOrExit } from './config.js';
import { createCallbackUrls } from './live/callback-urls.js';
import { exotelBaseUrlFor } from './exotel/options.js';
import { unreachablePublicUrl } from './live/public-url.js';
import { SIMULATOR_DEFAULTS } from './simulator/index.js';

function main(): void {
  // It prints URLs and serves nothing: the client keys of the GraphQL API are not its business.
  const config = loadConfigOrExit(process.env, { servesClients: false });
  const accountSid = config.exotel?.accountSid ?? SIMULATOR_DEFAULTS.accountSid;
  const urls = createCallbackUrls({ publicUrl: config.publicUrl, webhookSecret: config.webhookSecret, accountSid });
  const lines = [
    `Exotel webhook URLs for account ${accountSid} at ${config.publicUrl}`,
    '',
    `  Call status (StatusCallback of calls placed from flows):  ${urls.callStatus}`,
    `  SMS status (StatusCallback of SMS sent outside the API):   ${urls.smsStatus}`,
    `  Incoming calls (Passthru applet URL, GET or POST):          ${urls.incomingCall}`,
    '',
    'Calls and SMS created through the gateway carry these URLs already.',
  ];
  if (!config.exotel) lines.push('Simulator mode: no Exotel credentials are set; the simulator\'s account is shown.');
  const unreachable = config.exotel
    ? unreachablePublicUrl(config.publicUrl, exotelBaseUrlFor(config.exotelRegion, config.exotelBaseUrl))
    : undefined;
  if (unreachable) lines.push(`WARNING: ${unreachable}`);
  if (config.webhookSecretGenerated) {
    lines.push(
      'WARNING: WEBHOOK_SECRET is not set, so a random secret was made for this command only. These URLs will',
      'not match a running gateway (each process makes its own). Set WEBHOOK_SECRET (≥ 16 characters) for',
      'URLs that stay valid across restarts and replicas.',
    );
  }
  console.log(lines.join('\n'));
}

main();
