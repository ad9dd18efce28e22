/**
 * The reconciler: Exotel retries a callback at most twice, so a call (or SMS) that has not reached a
 * final status some time after it should have is fetched and finished from its details (source POLL).
 * A dropped callback therefore never leaves a subscriber waiting. One replica runs it at a time.
 */
import type { ExotelApi } from '../exotel/types.js';
import type { Logger } from '../logger.js';
import type { Lease, OpenItems } from '../storage/types.js';
import { ingest, type IngestDeps } from './ingest.js';
import { startLoop, type Loop } from './loop.js';
import { isTerminalCall, isTerminalSms, openSets } from './updates.js';

export interface ReconcilerOptions {
  accountSid: string;
  exotel: ExotelApi;
  openItems: OpenItems;
  lease: Lease;
  ingestDeps: IngestDeps;
  logger: Logger;
  now: () => number;
  intervalMs: number;
  /** When a call or SMS still open after a look is looked at again, ms later. */
  recheckMs: number;
  /** Most items looked at per run. */
  maxItemsPerTick: number;
  /** Told when a final status came from the reconciler rather than a callback (metrics). */
  onReconciled?: (kind: 'call' | 'sms') => void;
}

/** Starts the reconciler loop; stop() ends it. */
export function createReconciler(options: ReconcilerOptions): Loop {
  const sets = openSets(options.accountSid);
  const leaseName = `live-reconciler:${options.accountSid}`;

  async function reconcileCall(callSid: string): Promise<void> {
    const call = await options.exotel.getCall(callSid, { priority: 'background' });
    if (!call) {
      options.logger.warn({ callSid }, 'reconciler: Exotel does not know an open call; forgetting it');
      await options.openItems.remove(sets.calls, callSid);
      return;
    }
    // ingest ignores what is not forward, so this is safe whether or not a callback came meanwhile.
    const result = await ingest({ kind: 'call', callSid, status: call.status, at: call.dateUpdated, source: 'POLL', fields: call }, options.ingestDeps);
    if (result.outcome === 'published' && isTerminalCall(call.status)) options.onReconciled?.('call');
    if (isTerminalCall(call.status)) await options.openItems.remove(sets.calls, callSid);
    else await options.openItems.put(sets.calls, callSid, options.now() + options.recheckMs);
  }

  async function reconcileSms(smsSid: string): Promise<void> {
    const sms = await options.exotel.getSms(smsSid, { priority: 'background' });
    if (!sms) {
      options.logger.warn({ smsSid }, 'reconciler: Exotel does not know an open SMS; forgetting it');
      await options.openItems.remove(sets.sms, smsSid);
      return;
    }
    const result = await ingest({ kind: 'sms', smsSid, status: sms.status, at: sms.dateUpdated, source: 'POLL', fields: sms }, options.ingestDeps);
    if (result.outcome === 'published') options.onReconciled?.('sms');
    // Delivery often shows only as `sent` (exotel-api.md): once due, `sent` is as final as it gets.
    if (isTerminalSms(sms.status) || sms.status === 'SENT') await options.openItems.remove(sets.sms, smsSid);
    else await options.openItems.put(sets.sms, smsSid, options.now() + options.recheckMs);
  }

  async function tick(): Promise<void> {
    if (!(await options.lease.acquire(leaseName, options.intervalMs * 3))) return;
    const now = options.now();
    const work: Array<[string, () => Promise<void>]> = [
      ...(await options.openItems.dueBy(sets.calls, now, options.maxItemsPerTick)).map((sid): [string, () => Promise<void>] => [sid, () => reconcileCall(sid)]),
      ...(await options.openItems.dueBy(sets.sms, now, options.maxItemsPerTick)).map((sid): [string, () => Promise<void>] => [sid, () => reconcileSms(sid)]),
    ];
    for (const [sid, run] of work) {
      try {
        await run();
      } catch (err) {
        options.logger.info({ err, sid }, 'reconciler: stopping this round early');
        return;
      }
    }
  }

  return startLoop('live-reconciler', options.intervalMs, tick, options.logger);
}
