/**
 * The reconciler: Exotel retries a callback at most twice, so a call (or SMS) that has not reached a
 * final status some time after it should have is fetched and finished from its details (source POLL).
 * A dropped callback therefore never leaves a subscriber waiting. One replica runs it at a time.
 *
 * It also resolves unknown outcomes: a connect whose answer was lost and whose callbacks never came is
 * looked for in Exotel's bulk call details around its request time, by the request reference its
 * CustomField carries (never by From/To: another call between the same numbers is not this one). Once
 * found, the call is ingested with that reference, so a retry of the idempotency key replays it.
 *
 * Nothing stays in the open list for ever: a call or SMS Exotel still reports unfinished a day after its
 * DateCreated is let go, and so is any item whose look keeps failing (Exotel answering an error for that Sid,
 * an answer that does not parse) a day after it entered the open list: such a look never learns DateCreated.
 */
import { ErrorCode, GatewayError } from '../errors.js';
import { epochMsToIso, isoToEpochMs } from '../exotel/dates.js';
import type { Call, ExotelApi } from '../exotel/types.js';
import type { Logger } from '../logger.js';
import type { Lease, OpenItems } from '../storage/types.js';
import { ingest, type IngestDeps } from './ingest.js';
import { startLoop, type Loop } from './loop.js';
import { refOfCustomField } from './callback-urls.js';
import { isTerminalCall, isTerminalSms, openSets } from './updates.js';

/** Looking for the call of an unknown outcome: the window around the request time, pages read, give-up age. */
export const UNKNOWN_CALL_SEARCH = {
  /** Exotel's clock and ours may differ, and DateCreated has whole seconds. */
  windowBeforeMs: 60_000,
  windowAfterMs: 5 * 60_000,
  maxPages: 5,
  /** As long as an idempotency key is remembered: after that nobody can replay it. */
  giveUpAfterMs: 24 * 60 * 60_000,
} as const;

/** The open-item member of an unknown outcome: "<ref> <request time ms>" (a reference has no spaces). */
export function unknownCallItem(ref: string, requestedAtMs: number): string {
  return `${ref} ${requestedAtMs}`;
}

function parseUnknownCallItem(item: string): { ref: string; requestedAtMs: number } | undefined {
  const [ref, at] = item.split(' ');
  const requestedAtMs = Number(at);
  return ref && Number.isSafeInteger(requestedAtMs) ? { ref, requestedAtMs } : undefined;
}

/**
 * How an item looked at is moved on: only if it is still listed. A final status (a callback's status step)
 * can take it out of the list while its look is on its way, and a move must not put it back.
 */
const STILL_LISTED = { onlyIfPresent: true } as const;

/** What an open item is: a call, an SMS, or the connect of an unknown outcome (its request reference). */
export type OpenItemKind = 'call' | 'sms' | 'unknown-outcome';

/**
 * Why an item was let go before it was finished: Exotel still reports it unfinished a day after it was created,
 * or its look has been failing for a day since it entered the open list.
 */
export type GiveUpReason = 'unfinished' | 'lookup-failing';

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
  /**
   * A call or SMS Exotel still reports unfinished this long after it was created is let go, ms: looked at
   * again every `recheckMs`, it would stay in the open list, and cost a request each time, for ever. So is
   * any item whose look keeps failing this long after it entered the open list.
   */
  giveUpAfterMs: number;
  /** Told when a final status came from the reconciler rather than a callback (metrics). */
  onReconciled?: (kind: 'call' | 'sms') => void;
  /** Told when an item is let go unfinished (metrics). */
  onGivenUp?: (kind: OpenItemKind, reason: GiveUpReason) => void;
}

/** Starts the reconciler loop; stop() ends it. */
export function createReconciler(options: ReconcilerOptions): Loop {
  const sets = openSets(options.accountSid);
  const leaseName = `live-reconciler:${options.accountSid}`;
  /** True once something Exotel created at `dateCreated` is past giving up on (an unreadable date never is). */
  const outlived = (dateCreated: string): boolean => {
    try {
      return options.now() - isoToEpochMs(dateCreated) > options.giveUpAfterMs;
    } catch {
      return false;
    }
  };

  /** A call or SMS Exotel reports unfinished: looked at again after `recheckMs`, or let go once it outlived any real one. */
  async function recheckOrLetGo(kind: 'call' | 'sms', sid: string, found: { status: string; dateCreated: string }): Promise<void> {
    const set = kind === 'call' ? sets.calls : sets.sms;
    if (!outlived(found.dateCreated)) return options.openItems.put(set, sid, options.now() + options.recheckMs, STILL_LISTED);
    options.logger.warn(
      { [kind === 'call' ? 'callSid' : 'smsSid']: sid, status: found.status, dateCreated: found.dateCreated },
      `reconciler: Exotel still reports ${kind === 'call' ? 'a call' : 'an SMS'} unfinished long after it was created; no longer looking at it`,
    );
    await options.openItems.remove(set, sid);
    options.onGivenUp?.(kind, 'unfinished');
  }

  /**
   * After a look that failed for anything but the budget: to the back of the list, or let go once the item
   * has been in the open list `giveUpAfterMs` (such a look never learns when Exotel created it). An item no
   * longer in the list was finished meanwhile (a callback's final status) and stays out of it.
   */
  async function afterFailedLook(kind: OpenItemKind, set: string, item: string, err: unknown, now: number): Promise<void> {
    const addedAt = await options.openItems.addedAt(set, item);
    if (addedAt === undefined) return;
    if (now - addedAt <= options.giveUpAfterMs) return options.openItems.put(set, item, now + options.recheckMs, STILL_LISTED);
    const subject =
      kind === 'call' ? { callSid: item } : kind === 'sms' ? { smsSid: item } : { requestRef: parseUnknownCallItem(item)?.ref ?? item };
    options.logger.warn(
      { ...subject, kind, listedAt: epochMsToIso(addedAt), err },
      'reconciler: looking this up has failed for a day since it entered the open list; no longer looking at it',
    );
    await options.openItems.remove(set, item);
    options.onGivenUp?.(kind, 'lookup-failing');
  }

  async function reconcileCall(callSid: string, signal: AbortSignal): Promise<void> {
    const call = await options.exotel.getCall(callSid, { priority: 'background', signal });
    if (!call) {
      options.logger.warn({ callSid }, 'reconciler: Exotel does not know an open call; forgetting it');
      await options.openItems.remove(sets.calls, callSid);
      return;
    }
    // ingest ignores what is not forward, so this is safe whether or not a callback came meanwhile.
    const result = await ingest({ kind: 'call', callSid, status: call.status, at: call.dateUpdated, source: 'POLL', fields: call }, options.ingestDeps);
    if (result.outcome === 'published' && isTerminalCall(call.status)) options.onReconciled?.('call');
    if (isTerminalCall(call.status)) await options.openItems.remove(sets.calls, callSid);
    else await recheckOrLetGo('call', callSid, call);
  }

  async function reconcileSms(smsSid: string, signal: AbortSignal): Promise<void> {
    const sms = await options.exotel.getSms(smsSid, { priority: 'background', signal });
    if (!sms) {
      options.logger.warn({ smsSid }, 'reconciler: Exotel does not know an open SMS; forgetting it');
      await options.openItems.remove(sets.sms, smsSid);
      return;
    }
    const result = await ingest({ kind: 'sms', smsSid, status: sms.status, at: sms.dateUpdated, source: 'POLL', fields: sms }, options.ingestDeps);
    if (result.outcome === 'published') options.onReconciled?.('sms');
    // Delivery often shows only as `sent` (docs/exotel-fidelity.md): once due, `sent` is as final as it gets.
    if (isTerminalSms(sms.status) || sms.status === 'SENT') await options.openItems.remove(sets.sms, smsSid);
    else await recheckOrLetGo('sms', smsSid, sms);
  }

  /** The call Exotel placed for request `ref`, from its bulk call details (finished calls only). */
  async function findCallOf(ref: string, requestedAtMs: number, signal: AbortSignal): Promise<Call | undefined> {
    let after: string | undefined;
    for (let page = 0; page < UNKNOWN_CALL_SEARCH.maxPages; page += 1) {
      const result = await options.exotel.listCalls(
        {
          dateCreatedFrom: epochMsToIso(requestedAtMs - UNKNOWN_CALL_SEARCH.windowBeforeMs),
          dateCreatedTo: epochMsToIso(requestedAtMs + UNKNOWN_CALL_SEARCH.windowAfterMs),
          pageSize: 100,
          ...(after ? { after } : {}),
        },
        { priority: 'background', signal },
      );
      const found = result.calls.find((call) => refOfCustomField(call.customField) === ref);
      if (found || !result.nextAfter) return found;
      after = result.nextAfter;
    }
    return undefined;
  }

  async function reconcileUnknownCall(item: string, signal: AbortSignal): Promise<void> {
    const parsed = parseUnknownCallItem(item);
    const { accountSid, events } = options.ingestDeps;
    // A callback already told which call it was: nothing to look for.
    if (!parsed || (await events.requestRef(accountSid, parsed.ref))) {
      await options.openItems.remove(sets.unknownCalls, item);
      return;
    }
    const call = await findCallOf(parsed.ref, parsed.requestedAtMs, signal);
    if (call) {
      await ingest(
        { kind: 'call', callSid: call.sid, status: call.status, at: call.dateUpdated, source: 'POLL', fields: call, requestRef: parsed.ref },
        options.ingestDeps,
      );
      options.logger.info({ callSid: call.sid }, 'reconciler: found the call of an unknown outcome in Exotel\'s call records');
      await options.openItems.remove(sets.unknownCalls, item);
    } else if (options.now() - parsed.requestedAtMs > UNKNOWN_CALL_SEARCH.giveUpAfterMs) {
      await options.openItems.remove(sets.unknownCalls, item);
    } else {
      // Not there yet (bulk call details list finished calls only), or never placed: look again later.
      await options.openItems.put(sets.unknownCalls, item, options.now() + options.recheckMs, STILL_LISTED);
    }
  }

  async function tick(signal: AbortSignal): Promise<void> {
    if (!(await options.lease.acquire(leaseName, options.intervalMs * 3))) return;
    const now = options.now();
    const due = async (kind: OpenItemKind, set: string, look: (item: string, signal: AbortSignal) => Promise<void>) =>
      (await options.openItems.dueBy(set, now, options.maxItemsPerTick)).map((item) => ({ kind, set, item, look }));
    const work = [
      ...(await due('call', sets.calls, reconcileCall)),
      ...(await due('sms', sets.sms, reconcileSms)),
      ...(await due('unknown-outcome', sets.unknownCalls, reconcileUnknownCall)),
    ];
    for (const { kind, set, item, look } of work) {
      if (signal.aborted) return;
      try {
        await look(item, signal);
      } catch (err) {
        // Cancelled by stop (shutdown): the look did not fail, and the item stays as it is, due again.
        if (signal.aborted) return;
        options.logger.info({ err, sid: item }, 'reconciler: stopping this round early');
        // A look that failed goes to the back, so that one call Exotel keeps failing on cannot hold up every
        // other due item for ever, and is let go a day after it was listed; one refused for budget was not
        // looked at and keeps its place. Storage trouble here leaves the item where it is, due again.
        if (!(err instanceof GatewayError && err.code === ErrorCode.RATE_LIMITED)) {
          await afterFailedLook(kind, set, item, err, now).catch(() => undefined);
        }
        return;
      }
    }
  }

  return startLoop('live-reconciler', options.intervalMs, tick, options.logger);
}
