/**
 * createExotelClient: the real ExotelApi. Wiring only — each resource lives in its own module (calls.ts,
 * sms.ts, numbers.ts) on top of one http layer (http.ts) that owns auth, budget, retries and error mapping.
 */
import { createCallsApi } from './calls.js';
import { epochMsToIso } from './dates.js';
import { createExotelHttp } from './http.js';
import { createNumbersApi } from './numbers.js';
import { createUnreadableFieldLog, type ParseOptions } from './parse.js';
import { resolveExotelClientOptions, type ExotelClientOptions } from './options.js';
import { createSmsApi } from './sms.js';
import type { ExotelApi, RateLimitStatus } from './types.js';
import { traceBudgetWait } from '../tracing/spans.js';

export { EXOTEL_CLIENT_DEFAULTS, EXOTEL_REGION_BASE_URLS } from './options.js';
export type { ExotelClientOptions, ExotelLogger, ExotelRegion } from './options.js';

/** The ExotelApi backed by Exotel's REST API (or anything that speaks it, like the simulator). */
export function createExotelClient(options: ExotelClientOptions): ExotelApi {
  const resolved = resolveExotelClientOptions(options);
  const http = createExotelHttp(resolved);
  const { accountSid, budget } = resolved;
  // One log of unreadable fields per client, so each odd field is reported once, not on every answer.
  const parse: ParseOptions = {
    unreadable: createUnreadableFieldLog(resolved.logger),
    // Exotel's fault, not the client's, and the rest of the page is still good: a warning, once per item.
    unreadableItem: (object, error) => resolved.logger.warn({ object, reason: error.message }, 'Exotel listed an item the gateway cannot read; it is left out'),
    nowMs: () => resolved.clock.now(),
  };
  return {
    accountSid,
    ...createCallsApi(http, accountSid, parse),
    ...createSmsApi(http, accountSid, parse),
    ...createNumbersApi(http, accountSid),
    async rateLimit(client): Promise<RateLimitStatus> {
      const [status, mine] = await Promise.all([budget.status(client), client === undefined ? undefined : http.queue.clientShare(client)]);
      return {
        limitPerMinute: status.limit,
        remaining: status.remaining,
        // IST like every other DateTime; rounded up to the second so it is never before the slot frees.
        resetsAt: epochMsToIso(Math.ceil(status.resetsAtMs / 1000) * 1000),
        queued: http.queue.waiting,
        myShare: mine ? Math.floor(mine.share) : null,
        myUsed: mine ? status.clientUsed : null,
      };
    },
    // Budget taken ahead of a shared lookup batch: traced here, as the take before an attempt is in http.ts.
    waitForBudget: ({ client, signal, deadlineAtMs }) => traceBudgetWait('foreground', undefined, () => http.queue.acquire({ priority: 'foreground', client, signal, deadlineAtMs })),
    trySpareBudget: (client, keepShare) => traceBudgetWait('spare', undefined, () => http.queue.trySpare(client, keepShare)),
  };
}
