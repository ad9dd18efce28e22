/**
 * The replica's near-cache of Exotel objects, in front of the shared entity cache (memory or Redis): calls,
 * SMS and number metadata this replica has read or written, each with an explicit version — a number this
 * replica gives the entry when it keeps it, never reused. A warm query reads them without a round trip to
 * Redis, and a kept answer (src/graphql/warm-answers.ts) is still right while every version it was built
 * from is still the one held here.
 *
 * Kept coherent by the event log this replica already reads: every forward call or SMS event, from any
 * replica, drops the object here and fences it with the event's status rank. Until a value at least that
 * far along is read back from the shared cache (or written by this replica), the object is not kept again:
 * a read that started before the event, or the shared entry not yet rewritten by the replica that took the
 * callback, cannot bring the old state back. Writes by this replica replace the entry (a new version).
 * Objects that still change without an event (live calls, a finished call whose price Exotel has not
 * filled yet) are kept for a second only; finished objects for as long as the shared cache keeps them.
 */
import { LRUCache } from 'lru-cache';
import { callStatusRank, smsStatusRank, type Call, type NumberMetadata, type SmsMessage } from '../exotel/types.js';
import { TERMINAL_CALL_STATUSES, TERMINAL_SMS_STATUSES } from '../exotel/types.js';
import type { EventLog } from '../storage/types.js';
import { DEFAULT_CACHE_TTLS, type CacheTtls, type EntityCache } from './entities.js';

/** Bounds, declared once. */
export const NEAR_CACHE = Object.freeze({
  /** Objects held per replica (least recently used dropped first). */
  maxEntries: 20_000,
  /** How long an object that may still change without an event is held, ms. */
  changingMs: 1_000,
  /** Fences held at most (a fence older than this has outlived every shared entry it guards against), and for how long, ms. */
  maxFences: 20_000,
  fenceMs: 60_000,
});

/** The versions of the objects one execution read through a recording view; `missed` when any was not held here. */
export interface EntityReads {
  versions: Map<string, number>;
  missed: boolean;
}

export function newEntityReads(): EntityReads {
  return { versions: new Map(), missed: false };
}

/**
 * Where a request's loaders record what they read: `current` is read at each read (the warm-answer plugin
 * sets it before execution), and `used` says whether anything was read through it at all.
 */
export interface ReadsSlot {
  current: EntityReads | undefined;
  used: boolean;
}

export interface NearEntityCache extends EntityCache {
  /** The same cache, recording into `slot.current` the version of every object read through it. */
  recording(slot: ReadsSlot): EntityCache;
  /** True while every recorded version is still the one held (no shared read). */
  current(versions: ReadonlyMap<string, number>): boolean;
  /** Objects held right now (tests, metrics). */
  readonly size: number;
  /** Reads answered here, without the shared cache (metrics add them to the shared cache's hits). */
  readonly stats: { hits: number };
  /** Stops following the event log. */
  close(): void;
}

export interface NearCacheOptions {
  events: EventLog;
  accountSid: string;
  ttls?: Partial<CacheTtls>;
  maxEntries?: number;
  /** Default NEAR_CACHE.changingMs. */
  changingMs?: number;
}

interface Held {
  value: unknown;
  version: number;
}

type Kind = 'call' | 'sms' | 'number';

export function createNearEntityCache(shared: EntityCache, options: NearCacheOptions): NearEntityCache {
  const t = { ...DEFAULT_CACHE_TTLS, ...options.ttls };
  const changingMs = options.changingMs ?? NEAR_CACHE.changingMs;
  const held = new LRUCache<string, Held>({ max: options.maxEntries ?? NEAR_CACHE.maxEntries, ttlAutopurge: false, ttl: t.terminalCallMs });
  /** Objects an event changed: `epoch` of the change, and the status rank a value needs to be kept again. */
  const fences = new LRUCache<string, { epoch: number; rank: number }>({ max: NEAR_CACHE.maxFences, ttl: NEAR_CACHE.fenceMs });
  let epoch = 0;
  /** The epoch at which this replica last lost events on their way from the log (EventLog.subscribe). */
  let lostAt = 0;
  let nextVersion = 0;
  const stats = { hits: 0 };

  const rankOf = (kind: Kind, value: unknown): number => {
    if (value === null || kind === 'number') return 0;
    return kind === 'call' ? callStatusRank((value as Call).status) : smsStatusRank((value as SmsMessage).status);
  };
  const ttlOf = (kind: Kind, value: unknown): number => {
    if (kind === 'number') return value === null ? t.unknownNumberMs : t.numberMs;
    if (kind === 'sms') return TERMINAL_SMS_STATUSES.has((value as SmsMessage).status) ? t.terminalSmsMs : changingMs;
    const call = value as Call;
    return TERMINAL_CALL_STATUSES.has(call.status) && (call.durationSeconds !== null || call.price !== null) ? t.terminalCallMs : changingMs;
  };

  /** Holds `value` under a new version unless an event fenced the key after `since`, or it is behind the fence. */
  function keep(kind: Kind, key: string, value: unknown, since: number): number | undefined {
    // Read before events this replica never got: any object may have changed meanwhile.
    if (since < lostAt) return undefined;
    const fence = fences.get(key);
    if (fence) {
      if (fence.epoch > since || rankOf(kind, value) < fence.rank) return undefined;
      fences.delete(key);
    }
    const version = ++nextVersion;
    held.set(key, { value, version }, { ttl: ttlOf(kind, value) });
    return version;
  }

  const stopFollowing = options.events.subscribe(
    (event) => {
      if (!event.forward || event.accountSid !== options.accountSid) return;
      const key = event.kind === 'sms' ? `sms:${event.smsSid}` : `call:${event.callSid}`;
      held.delete(key);
      // An incoming-call event only caches a call nothing cached yet: any value read after it will do.
      const rank = event.kind === 'call' ? callStatusRank(event.status) : event.kind === 'sms' ? smsStatusRank(event.status) : 0;
      fences.set(key, { epoch: ++epoch, rank });
    },
    // Events this replica never got may have changed any object held here: none is kept, and no read that
    // started before is either.
    () => {
      held.clear();
      lostAt = ++epoch;
    },
  );

  function reader<V>(kind: Kind, read: (ids: readonly string[]) => Promise<Array<V | undefined>>) {
    return async (ids: readonly string[], slot?: ReadsSlot): Promise<Array<V | undefined>> => {
      const reads = slot?.current;
      if (slot) slot.used = true;
      const out = new Array<V | undefined>(ids.length);
      const missing: number[] = [];
      ids.forEach((id, i) => {
        const entry = held.get(`${kind}:${id}`);
        if (entry) {
          stats.hits++;
          out[i] = entry.value as V;
          reads?.versions.set(`${kind}:${id}`, entry.version);
        } else missing.push(i);
      });
      if (missing.length === 0) return out;
      const since = epoch;
      const values = await read(missing.map((i) => ids[i]!));
      missing.forEach((i, j) => {
        const value = values[j];
        out[i] = value;
        const version = value === undefined ? undefined : keep(kind, `${kind}:${ids[i]}`, value, since);
        if (version === undefined) {
          if (reads) reads.missed = true;
        } else reads?.versions.set(`${kind}:${ids[i]}`, version);
      });
      return out;
    };
  }

  /**
   * A write goes to the shared cache first; the entry held here is replaced only once it is stored. A call
   * or SMS the shared cache refused (it holds one further along) is not kept: the next read gets that one.
   */
  async function write<R extends boolean | void>(kind: Kind, id: string, value: unknown, put: () => Promise<R>): Promise<R> {
    const key = `${kind}:${id}`;
    held.delete(key);
    const since = epoch;
    const stored = await put();
    if (stored !== false) keep(kind, key, value, since);
    return stored;
  }

  const getCalls = reader<Call>('call', (ids) => shared.getCalls(ids));
  const getSms = reader<SmsMessage>('sms', (ids) => shared.getSms(ids));
  const getNumbers = reader<NumberMetadata | null>('number', (ids) => shared.getNumbers(ids));

  const cache: NearEntityCache = {
    // Everything else (ExoPhones, unknown-call memory…) is the shared cache's alone.
    ...shared,
    getCalls: (sids) => getCalls(sids),
    getSms: (sids) => getSms(sids),
    getNumbers: (numbers) => getNumbers(numbers),
    putCall: (call) => write('call', call.sid, call, () => shared.putCall(call)),
    putSms: (sms) => write('sms', sms.sid, sms, () => shared.putSms(sms)),
    putNumber: (number, metadata) => write('number', number, metadata, () => shared.putNumber(number, metadata)),
    recording: (slot) => ({
      ...cache,
      getCalls: (sids) => getCalls(sids, slot),
      getSms: (sids) => getSms(sids, slot),
      getNumbers: (numbers) => getNumbers(numbers, slot),
    }),
    current(versions) {
      for (const [key, version] of versions) if (held.get(key)?.version !== version) return false;
      return true;
    },
    get size() {
      return held.size;
    },
    stats,
    close: stopFollowing,
  };
  return cache;
}
