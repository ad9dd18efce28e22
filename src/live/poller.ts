/**
 * Live status between callbacks. Exotel posts only `answered` and terminal callbacks, so calls that have
 * subscribers somewhere in the fleet are polled (call details, one by one: bulk listing omits live
 * calls) and ringing/in-progress transitions go through ingest with source POLL. Polls spend from the
 * background share of the rate budget only, and one replica polls at a time (a storage lease).
 */
import type { ExotelApi } from '../exotel/types.js';
import type { Logger } from '../logger.js';
import type { CallStateStore, Lease, OpenItems } from '../storage/types.js';
import { ingest, type IngestDeps } from './ingest.js';
import { startLoop, type Loop } from './loop.js';
import type { Topics } from './topics.js';
import { callStatusRank, isTerminalCall, openSets } from './updates.js';

export interface PollerOptions {
  accountSid: string;
  exotel: ExotelApi;
  openItems: OpenItems;
  callState: CallStateStore;
  lease: Lease;
  topics: Topics;
  ingestDeps: IngestDeps;
  logger: Logger;
  now: () => number;
  /** LIVE_POLL_INTERVAL_MS. */
  intervalMs: number;
  /** Most calls polled per interval; the rest wait for the next one. */
  maxCallsPerTick: number;
}

export interface Poller extends Loop {
  /** Marks a call watched now (a local subscriber just arrived), so the next tick polls it. */
  watch(callSid: string): Promise<void>;
}

const CALL_TOPIC = /^call:(.+)$/;

/** Starts the live poller loop (every LIVE_POLL_INTERVAL_MS); stop() ends it. */
export function createPoller(options: PollerOptions): Poller {
  const sets = openSets(options.accountSid);
  // A watch mark outlives a few intervals so a replica's refresh can be late without losing the call.
  const markTtlMs = () => options.intervalMs * 3;
  const leaseName = `live-poller:${options.accountSid}`;

  const watch = (callSid: string) => options.openItems.put(sets.watchedCalls, callSid, options.now() + markTtlMs());

  async function pollOne(callSid: string): Promise<void> {
    const known = await options.callState.get(`call:${options.accountSid}:${callSid}`);
    if (known !== undefined && known >= callStatusRank('COMPLETED')) {
      await options.openItems.remove(sets.watchedCalls, callSid);
      return;
    }
    const call = await options.exotel.getCall(callSid, { priority: 'background' });
    if (!call) {
      options.logger.warn({ callSid }, 'live poller: Exotel does not know a watched call');
      await options.openItems.remove(sets.watchedCalls, callSid);
      return;
    }
    if (known === undefined || callStatusRank(call.status) > known) {
      await ingest({ kind: 'call', callSid, status: call.status, at: call.dateUpdated, source: 'POLL', fields: call }, options.ingestDeps);
    }
    if (isTerminalCall(call.status)) await options.openItems.remove(sets.watchedCalls, callSid);
  }

  async function tick(): Promise<void> {
    // Every replica refreshes the marks of its own subscribers; only the lease holder polls.
    const now = options.now();
    for (const topic of options.topics.activeTopics()) {
      const sid = CALL_TOPIC.exec(topic)?.[1];
      if (sid) await options.openItems.put(sets.watchedCalls, sid, now + markTtlMs());
    }
    if (!(await options.lease.acquire(leaseName, markTtlMs()))) return;
    await options.openItems.pruneBefore(sets.watchedCalls, now);
    const sids = await options.openItems.laterThan(sets.watchedCalls, now, options.maxCallsPerTick);
    for (const sid of sids) {
      try {
        await pollOne(sid);
      } catch (err) {
        // Most often the background share of the budget is spent: stop here and try next interval.
        options.logger.info({ err, callSid: sid }, 'live poller: stopping this round early');
        return;
      }
    }
  }

  const loop = startLoop('live-poller', options.intervalMs, tick, options.logger);
  return { ...loop, watch };
}
