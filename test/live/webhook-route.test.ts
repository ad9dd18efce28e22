/** Which requests the node:http webhook route takes from the server (the rest go to express). */
import { describe, expect, it } from 'vitest';
import { WEBHOOK_BASE_PATH } from '../../src/live/callback-urls.js';
import { isWebhookRequest } from '../../src/live/webhooks.js';

describe('isWebhookRequest', () => {
  it('takes every path under the webhook base, with or without a query string, and nothing else', () => {
    for (const url of [`${WEBHOOK_BASE_PATH}/tok/call-status`, `${WEBHOOK_BASE_PATH}/tok/incoming-call?CallSid=x`, `${WEBHOOK_BASE_PATH}`, `${WEBHOOK_BASE_PATH}/`, `${WEBHOOK_BASE_PATH}?x=1`]) {
      expect(isWebhookRequest(url, WEBHOOK_BASE_PATH), url).toBe(true);
    }
    for (const url of [`${WEBHOOK_BASE_PATH}x/tok/call-status`, '/webhooks', '/graphql', '/', undefined]) {
      expect(isWebhookRequest(url, WEBHOOK_BASE_PATH), String(url)).toBe(false);
    }
  });
});
