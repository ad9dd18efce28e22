/**
 * The cache policy for Exotel objects, per account: terminal calls are kept for hours, live calls for
 * seconds, number metadata for long, ExoPhones for minutes. The GraphQL loaders read and fill it; the
 * live pipeline updates it from callbacks, so a subscriber's next query sees the new state.
 */
import type { Call, CallStatus, ExoPhone, NumberMetadata, SmsMessage, SmsStatus } from '../exotel/types.js';
import { callStatusRank, smsStatusRank, TERMINAL_CALL_STATUSES, TERMINAL_SMS_STATUSES } from '../exotel/types.js';
import type { Cache, CacheGuard } from '../storage/types.js';

export interface CacheTtls {
  /** A finished call no longer changes, except Duration/Price filled ~5 min after the end (Exotel). */
  terminalCallMs: number;
  /** A terminal call whose price/duration Exotel has not filled yet: refresh sooner. */
  terminalCallUnpricedMs: number;
  liveCallMs: number;
  terminalSmsMs: number;
  liveSmsMs: number;
  numberMs: number;
  /** A number Exotel does not know: remembered briefly so a repeated typo costs no budget, yet a newly allocated range shows up soon. */
  unknownNumberMs: number;
  exoPhonesMs: number;
  /** A Sid Exotel does not know: remembered briefly, so a repeated wrong Sid costs no budget. */
  unknownCallMs: number;
}

export const DEFAULT_CACHE_TTLS: CacheTtls = {
  terminalCallMs: 6 * 60 * 60_000,
  terminalCallUnpricedMs: 10 * 60_000,
  liveCallMs: 5_000,
  terminalSmsMs: 6 * 60 * 60_000,
  liveSmsMs: 5_000,
  numberMs: 24 * 60 * 60_000,
  unknownNumberMs: 60 * 60_000,
  exoPhonesMs: 5 * 60_000,
  unknownCallMs: 60_000,
};

export interface EntityCache {
  getCalls(sids: readonly string[]): Promise<Array<Call | undefined>>;
  /** Caches the call unless the cached one is further along (NEWER_CALL); true when stored. */
  putCall(call: Call): Promise<boolean>;
  getSms(sids: readonly string[]): Promise<Array<SmsMessage | undefined>>;
  /** Caches the SMS unless the cached one is further along; true when stored. */
  putSms(sms: SmsMessage): Promise<boolean>;
  /** undefined: not cached; null: cached as unknown to Exotel. */
  getNumbers(numbers: readonly string[]): Promise<Array<NumberMetadata | null | undefined>>;
  /** `null` records "Exotel does not know this number" so it is not asked again for a while. */
  putNumber(number: string, metadata: NumberMetadata | null): Promise<void>;
  getExoPhones(): Promise<ExoPhone[] | undefined>;
  putExoPhones(phones: ExoPhone[]): Promise<void>;
  /** Whether each Sid was answered "no such call" by Exotel in the last minute. */
  areUnknownCalls(sids: readonly string[]): Promise<boolean[]>;
  putUnknownCall(sid: string): Promise<void>;
  /** A callback for the Sid arrived: it exists after all. */
  forgetUnknownCall(sid: string): Promise<void>;
  /** The cached call and whether the Sid is remembered as unknown, in one cache read (the webhook path). */
  getCallAndUnknown(sid: string): Promise<{ call: Call | undefined; unknown: boolean }>;
}

export function callTtlMs(call: Call, ttls: CacheTtls = DEFAULT_CACHE_TTLS): number {
  if (!TERMINAL_CALL_STATUSES.has(call.status)) return ttls.liveCallMs;
  return call.durationSeconds === null && call.price === null ? ttls.terminalCallUnpricedMs : ttls.terminalCallMs;
}

const CALL_STATUSES: readonly CallStatus[] = ['QUEUED', 'RINGING', 'IN_PROGRESS', 'COMPLETED', 'FAILED', 'BUSY', 'NO_ANSWER', 'CANCELED'];
const SMS_STATUSES: readonly SmsStatus[] = ['QUEUED', 'SENDING', 'SUBMITTED', 'SENT', 'DELIVERED', 'FAILED', 'FAILED_DND', 'EXPIRED', 'UNDELIVERED'];

/**
 * A cached call or SMS is never taken back to an earlier status. Its writers race: an Exotel answer asked
 * for before a terminal callback can arrive after it, and two replicas write the answered and the terminal
 * callback of one call in either order. Written over a status that outranks it, such a value would stand
 * for its whole TTL while the call's history says otherwise. An equal rank is written (a final status
 * with its price filled in later).
 */
const newerThan = <S extends string>(statuses: readonly S[], rank: (status: S) => number) => {
  const guards = new Map<S, CacheGuard>(statuses.map((status) => [status, { field: 'status', newer: statuses.filter((other) => rank(other) > rank(status)) }]));
  return (status: S) => guards.get(status)!;
};
const NEWER_CALL = newerThan(CALL_STATUSES, callStatusRank);
const NEWER_SMS = newerThan(SMS_STATUSES, smsStatusRank);

/**
 * Stored in place of "Exotel does not know this number": caches read null back as a miss, so the
 * negative answer needs a value of its own.
 */
const UNKNOWN_NUMBER = { unknownNumber: true } as const;
type StoredNumber = NumberMetadata | typeof UNKNOWN_NUMBER;

function isUnknownNumber(value: StoredNumber): value is typeof UNKNOWN_NUMBER {
  return (value as { unknownNumber?: unknown }).unknownNumber === true;
}

export function createEntityCache(cache: Cache, accountSid: string, ttls: Partial<CacheTtls> = {}): EntityCache {
  const t = { ...DEFAULT_CACHE_TTLS, ...ttls };
  const key = (kind: string, id: string) => `${accountSid}:${kind}:${id}`;
  return {
    getCalls: (sids) => cache.getMany<Call>(sids.map((s) => key('call', s))),
    putCall: (call) => cache.setUnlessNewer(key('call', call.sid), call, callTtlMs(call, t), NEWER_CALL(call.status)),
    getSms: (sids) => cache.getMany<SmsMessage>(sids.map((s) => key('sms', s))),
    putSms: (sms) => cache.setUnlessNewer(key('sms', sms.sid), sms, TERMINAL_SMS_STATUSES.has(sms.status) ? t.terminalSmsMs : t.liveSmsMs, NEWER_SMS(sms.status)),
    getNumbers: async (numbers) =>
      (await cache.getMany<StoredNumber>(numbers.map((n) => key('number', n)))).map((v) => (v === undefined ? undefined : isUnknownNumber(v) ? null : v)),
    putNumber: (number, metadata) =>
      metadata === null ? cache.set(key('number', number), UNKNOWN_NUMBER, t.unknownNumberMs) : cache.set(key('number', number), metadata, t.numberMs),
    getExoPhones: () => cache.get<ExoPhone[]>(key('exophones', 'all')),
    putExoPhones: (phones) => cache.set(key('exophones', 'all'), phones, t.exoPhonesMs),
    areUnknownCalls: async (sids) => (await cache.getMany<boolean>(sids.map((s) => key('nocall', s)))).map((v) => v === true),
    putUnknownCall: (sid) => cache.set(key('nocall', sid), true, t.unknownCallMs),
    forgetUnknownCall: (sid) => cache.delete(key('nocall', sid)),
    getCallAndUnknown: async (sid) => {
      const [call, unknown] = await cache.getMany<Call | boolean>([key('call', sid), key('nocall', sid)]);
      return { call: call as Call | undefined, unknown: unknown === true };
    },
  };
}
