/**
 * Live status between callbacks. Exotel posts only `answered` and terminal callbacks, so calls that have
 * subscribers somewhere in the fleet are polled (call details, one by one: bulk listing omits live
 * calls) and ringing/in-progress transitions go through ingest with source POLL. Polls spend from the
 * background share of the rate budget only, and one replica polls at a time (a storage lease).
 *
 * A call Exotel never finishes is not polled for ever: a day after its DateCreated (or, while no poll has
 * told it, a day after the call was first watched) the poller stops looking at it. Its subscriptions go on
 * and still get whatever callbacks bring; they end when the client ends them.
 */
import { ErrorCode, GatewayError } from '../errors.js';
import { epochMsToIso, isoToEpochMs } from '../exotel/dates.js';
import type { ExotelApi } from '../exotel/types.js';
import type { Logger } from '../logger.js';
import type { Lease, OpenItems } from '../storage/types.js';
import { ingest, type IngestDeps } from './ingest.js';
import { startLoop, type Loop } from './loop.js';
import type { Topics } from './topics.js';
import { callStatusRank, isTerminalCall, openSets } from './updates.js';

export interface PollerOptions {
  accountSid: string;
  exotel: ExotelApi;
  openItems: OpenItems;
  lease: Lease;
  topics: Topics;
  ingestDeps: IngestDeps;
  logger: Logger;
  now: () => number;
  /** LIVE_POLL_INTERVAL_MS. */
  intervalMs: number;
  /** Most calls polled per interval; the rest wait for the next one. */
  maxCallsPerTick: number;
  /**
   * A watched call is no longer polled this long after its DateCreated, or, while no poll has told it,
   * after it was first watched, ms: the reconciler's one-day rule.
   */
  giveUpAfterMs: number;
}

export interface Poller extends Loop {
  /** Marks a call watched now (a local subscriber just arrived), so the next tick polls it. */
  watch(callSid: string): Promise<void>;
}

const CALL_TOPIC = /^call:(.+)$/;

/** Epoch ms of an Exotel time, or undefined when it cannot be read. */
function readableTime(iso: string): number | undefined {
  try {
    return isoToEpochMs(iso);
  } catch {
    return undefined;
  }
}

/**
 * Most watched calls one round reads to choose from. Far above what a budget share can poll in a round:
 * choosing fairly needs the whole list, and this only bounds a runaway set.
 */
const WATCHED_SCAN_LIMIT = 10_000;

/**
 * The calls one round should try, least recently tried first (never tried before all others), at most
 * `max`. A round stops at the first refusal (mostly: background budget spent), so a fixed order would
 * poll the same head of the list every round and starve the tail.
 */
export function pollOrder(watched: readonly string[], lastTried: ReadonlyMap<string, number>, max: number): string[] {
  // Array.prototype.sort is stable: ties keep the storage's order.
  return [...watched].sort((a, b) => (lastTried.get(a) ?? -1) - (lastTried.get(b) ?? -1)).slice(0, max);
}

/** Starts the live poller loop (every LIVE_POLL_INTERVAL_MS); stop() ends it. */
export function createPoller(options: PollerOptions): Poller {
  const sets = openSets(options.accountSid);
  // A watch mark outlives a few intervals so a replica's refresh can be late without losing the call.
  const markTtlMs = () => options.intervalMs * 3;
  const leaseName = `live-poller:${options.accountSid}`;

  const watch = (callSid: string) => options.openItems.put(sets.watchedCalls, callSid, options.now() + markTtlMs());
  // When each watched call was last tried (a counter, not a clock: rounds can share a millisecond). Local
  // to this replica: another lease holder starts from the storage order and becomes fair from there.
  const lastTried = new Map<string, number>();
  let tries = 0;
  // Also this replica's only, for watched calls: DateCreated (epoch ms) once a poll has told it, and the
  // calls polled long enough. Another lease holder learns both again at the cost of one poll per call.
  const createdAt = new Map<string, number>();
  const stopped = new Set<string>();

  /**
   * Stops polling `callSid` once it has been polled long enough: a day after its DateCreated once a poll
   * told it, else a day after it was first watched. Logged once per call.
   */
  async function stopIfPolledLongEnough(callSid: string, now: number): Promise<void> {
    const created = createdAt.get(callSid);
    const since = created ?? (await options.openItems.addedAt(sets.watchedCalls, callSid));
    if (since === undefined || now - since <= options.giveUpAfterMs) return;
    stopped.add(callSid);
    options.logger.info(
      { callSid, [created !== undefined ? 'dateCreated' : 'watchedSince']: epochMsToIso(since) },
      'live poller: the call is still unfinished a day on; no longer polling it (its subscribers still get what callbacks bring)',
    );
  }

  async function pollOne(callSid: string, signal: AbortSignal): Promise<void> {
    const known = await options.ingestDeps.events.statusRank('call', options.accountSid, callSid);
    if (known !== undefined && known >= callStatusRank('COMPLETED')) {
      await options.openItems.remove(sets.watchedCalls, callSid);
      return;
    }
    const call = await options.exotel.getCall(callSid, { priority: 'background', signal });
    if (!call) {
      options.logger.warn({ callSid }, 'live poller: Exotel does not know a watched call');
      await options.openItems.remove(sets.watchedCalls, callSid);
      return;
    }
    if (known === undefined || callStatusRank(call.status) > known) {
      await ingest({ kind: 'call', callSid, status: call.status, at: call.dateUpdated, source: 'POLL', fields: call }, options.ingestDeps);
    }
    if (isTerminalCall(call.status)) {
      await options.openItems.remove(sets.watchedCalls, callSid);
      return;
    }
    const created = readableTime(call.dateCreated);
    if (created !== undefined) createdAt.set(callSid, created);
    await stopIfPolledLongEnough(callSid, options.now());
  }

  async function tick(signal: AbortSignal): Promise<void> {
    // Every replica refreshes the marks of its own subscribers; only the lease holder polls.
    const now = options.now();
    for (const topic of options.topics.activeTopics()) {
      const sid = CALL_TOPIC.exec(topic)?.[1];
      if (sid) await options.openItems.put(sets.watchedCalls, sid, now + markTtlMs());
    }
    if (!(await options.lease.acquire(leaseName, markTtlMs()))) return;
    await options.openItems.pruneBefore(sets.watchedCalls, now);
    const watched = await options.openItems.laterThan(sets.watchedCalls, now, WATCHED_SCAN_LIMIT);
    const stillWatched = new Set(watched);
    for (const local of [lastTried, createdAt, stopped]) for (const sid of local.keys()) if (!stillWatched.has(sid)) local.delete(sid);
    const toPoll = watched.filter((sid) => !stopped.has(sid));
    for (const sid of pollOrder(toPoll, lastTried, options.maxCallsPerTick)) {
      // Marked before the attempt: a call whose poll fails goes to the back too, and cannot block the rest.
      const previous = lastTried.get(sid);
      lastTried.set(sid, ++tries);
      if (signal.aborted) return;
      try {
        await pollOne(sid, signal);
      } catch (err) {
        // Cancelled by stop (shutdown): the poll did not fail; the call is polled again after a restart.
        if (signal.aborted) return;
        // Refused for budget, it was not polled at all: it keeps its place at the front for the next round.
        if (err instanceof GatewayError && err.code === ErrorCode.RATE_LIMITED) {
          if (previous === undefined) lastTried.delete(sid);
          else lastTried.set(sid, previous);
        } else {
          // A poll that keeps failing never learns DateCreated: the day counts from when it was first watched.
          await stopIfPolledLongEnough(sid, now).catch(() => undefined);
        }
        // Most often the background share of the budget is spent: stop here and try next interval.
        options.logger.info({ err, callSid: sid }, 'live poller: stopping this round early');
        return;
      }
    }
  }

  const loop = startLoop('live-poller', options.intervalMs, tick, options.logger);
  return { ...loop, watch };
}
