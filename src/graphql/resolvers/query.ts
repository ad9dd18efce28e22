/**
 * Query resolvers. Lookups go through the per-request loaders (cache first, then bulk requests);
 * `calls` pages over Exotel's bulk listing with opaque cursors (src/graphql/cursor.ts).
 */
import { badInput } from '../../errors.js';
import type { CallListQuery } from '../../exotel/types.js';
import type { CallFilter, QueryResolvers } from '../../generated/graphql.js';
import type { GraphQLContext } from '../context.js';
import { decodeCursor, encodeCursor, filterHash } from '../cursor.js';
import { exotelSid, lookupList, phoneNumber } from '../validation.js';
import { isoToEpochMs } from '../../exotel/dates.js';

/** Page size of `calls` when `first` is omitted (Exotel's own default page size, as the schema says). */
export const DEFAULT_CALLS_PAGE_SIZE = 50;
/** Exotel bulk call details: PageSize ≤ 100. */
export const MAX_CALLS_PAGE_SIZE = 100;
/** Exotel bulk call details: To/From filters take up to 5 numbers each. */
const MAX_FILTER_NUMBERS = 5;

/**
 * Exotel's bulk call listing (docs/exotel-fidelity.md): without DateCreated it searches the last 31 days; a range
 * may span at most a month and reach at most 6 months back. Checked here so a range Exotel would refuse
 * costs no request of the budget.
 */
export const CALL_HISTORY_LIMITS = Object.freeze({ maxRangeDays: 31, maxHistoryDays: 183 });
const DAY_MS = 86_400_000;

/**
 * Per-slot results for list fields: graphql-js turns an Error *returned* in a list slot into null plus
 * an error at that path, so one bad key never fails its neighbours.
 */
function slots<T>(values: ReadonlyArray<T | null | Error>): Array<T | null> {
  return values as Array<T | null>;
}

/** Validates each key on its own; a bad key becomes an Error in its slot, the rest are loaded. */
async function loadEach<T>(keys: readonly string[], field: string, check: (value: string, field: string) => string, load: (keys: string[]) => Promise<Array<T | null | Error>>): Promise<Array<T | null>> {
  lookupList(keys, field);
  const checked = keys.map((k, i) => {
    try {
      return check(k, `${field}[${i}]`);
    } catch (err) {
      return err as Error;
    }
  });
  const valid = checked.filter((c): c is string => typeof c === 'string');
  const loaded = await load(valid);
  let next = 0;
  return slots(checked.map((c) => (typeof c === 'string' ? loaded[next++]! : c)));
}

/** The filter as Exotel gets it: numbers in E.164, lists sorted and deduplicated so equal filters hash equally. */
/** Refuses a DateCreated range Exotel would refuse (CALL_HISTORY_LIMITS), naming the field. */
function checkHistoryRange(from: string | undefined, to: string | undefined, now: number): void {
  if (from === undefined && to === undefined) return;
  const { maxRangeDays, maxHistoryDays } = CALL_HISTORY_LIMITS;
  const lower = from !== undefined ? isoToEpochMs(from) : isoToEpochMs(to!) - maxRangeDays * DAY_MS;
  const upper = to !== undefined ? isoToEpochMs(to) : Math.min(now, lower + maxRangeDays * DAY_MS);
  if (upper - lower > maxRangeDays * DAY_MS) {
    throw badInput('filter.dateCreatedTo', `the range may span at most ${maxRangeDays} days (Exotel's limit); page through longer periods one month at a time`);
  }
  if (lower < now - maxHistoryDays * DAY_MS) {
    throw badInput(from !== undefined ? 'filter.dateCreatedFrom' : 'filter.dateCreatedTo', `Exotel keeps call records for 6 months (${maxHistoryDays} days) only`);
  }
}

export function normaliseCallFilter(filter: CallFilter | null | undefined, now: number = Date.now()): Omit<CallListQuery, 'pageSize' | 'after' | 'before'> {
  const query: Omit<CallListQuery, 'pageSize' | 'after' | 'before'> = {};
  if (!filter) return query;
  if (filter.dateCreatedFrom) query.dateCreatedFrom = filter.dateCreatedFrom;
  if (filter.dateCreatedTo) query.dateCreatedTo = filter.dateCreatedTo;
  if (query.dateCreatedFrom && query.dateCreatedTo && isoToEpochMs(query.dateCreatedFrom) > isoToEpochMs(query.dateCreatedTo)) {
    throw badInput('filter.dateCreatedFrom', 'must not be after filter.dateCreatedTo');
  }
  checkHistoryRange(query.dateCreatedFrom, query.dateCreatedTo, now);
  if (filter.status?.length) query.status = [...new Set(filter.status)].sort();
  if (filter.direction) query.direction = filter.direction;
  for (const side of ['from', 'to'] as const) {
    const numbers = filter[side];
    if (!numbers?.length) continue;
    if (numbers.length > MAX_FILTER_NUMBERS) throw badInput(`filter.${side}`, `at most ${MAX_FILTER_NUMBERS} numbers (Exotel's limit)`);
    query[side] = [...new Set(numbers.map((n, i) => phoneNumber(n, `filter.${side}[${i}]`)))].sort();
  }
  if (filter.sort) query.sort = filter.sort === 'ASC' ? 'asc' : 'desc';
  return query;
}

function pageSizeOf(first: number | null | undefined): number {
  if (first === null || first === undefined) return DEFAULT_CALLS_PAGE_SIZE;
  if (!Number.isInteger(first) || first < 1 || first > MAX_CALLS_PAGE_SIZE) throw badInput('first', `must be between 1 and ${MAX_CALLS_PAGE_SIZE}`);
  return first;
}

async function exophones(ctx: GraphQLContext) {
  const cached = await ctx.cache.getExoPhones().catch((err: unknown) => {
    ctx.logger.warn({ err }, 'cache read failed; asking Exotel');
    return undefined;
  });
  if (cached) return cached;
  const phones = await ctx.exotel.listExoPhones({ client: ctx.client });
  await ctx.cache.putExoPhones(phones).catch((err: unknown) => ctx.logger.warn({ err }, 'cache write failed'));
  return phones;
}

export const Query: QueryResolvers = {
  call: (_root, { sid }, ctx) => ctx.loaders.call.load(exotelSid(sid, 'sid')),

  callsBySid: (_root, { sids }, ctx) => loadEach(sids, 'sids', exotelSid, (keys) => ctx.loaders.call.loadMany(keys)),

  async calls(_root, args, ctx) {
    const first = pageSizeOf(args.first);
    const query = normaliseCallFilter(args.filter);
    const hash = filterHash(query);
    // Where to start: the first page, the start of a later Exotel page, or just after an item of a page
    // fetched before (same After and PageSize give the same page, so the skip lands on the right item).
    let pageAfter: string | null = null;
    let pageSize = first;
    let skip = 0;
    if (args.after) {
      const cursor = decodeCursor(args.after, hash);
      if (cursor.kind === 'page') pageAfter = cursor.nextAfter;
      else {
        pageAfter = cursor.pageAfter;
        pageSize = cursor.pageSize;
        skip = cursor.offset + 1;
      }
    }
    // details=true costs nothing extra and matters: the listed calls are cached for hours, and without
    // their Details a later `call { legs }` would read legs: null from the cache.
    const page = await ctx.exotel.listCalls({ ...query, pageSize, details: true, ...(pageAfter !== null ? { after: pageAfter } : {}) }, { client: ctx.client });
    // Listed calls feed the loader and the cache, so a follow-up lookup of any of them costs nothing.
    for (const call of page.calls) ctx.loaders.call.prime(call.sid, call);
    await Promise.all(page.calls.map((call) => ctx.cache.putCall(call).catch((err: unknown) => ctx.logger.warn({ err }, 'cache write failed'))));
    const items = page.calls.slice(skip, skip + first);
    const edges = items.map((call, j) => {
      const offset = skip + j;
      // The last item of a page points at the next Exotel page directly: resuming costs one request.
      const cursor =
        offset === page.calls.length - 1 && page.nextAfter
          ? encodeCursor({ kind: 'page', filterHash: hash, nextAfter: page.nextAfter })
          : encodeCursor({ kind: 'item', filterHash: hash, pageAfter, pageSize, offset });
      return { cursor, node: call };
    });
    const hasNextPage = skip + items.length < page.calls.length || page.nextAfter !== null;
    const endCursor =
      edges.at(-1)?.cursor ?? (page.nextAfter ? encodeCursor({ kind: 'page', filterHash: hash, nextAfter: page.nextAfter }) : null);
    return {
      edges,
      nodes: items,
      totalCount: page.total,
      pageInfo: { hasNextPage, endCursor, hasPreviousPage: Boolean(args.after), startCursor: edges[0]?.cursor ?? null },
    };
  },

  sms: (_root, { sid }, ctx) => ctx.loaders.sms.load(exotelSid(sid, 'sid')),

  smsBySid: (_root, { sids }, ctx) => loadEach(sids, 'sids', exotelSid, (keys) => ctx.loaders.sms.loadMany(keys)),

  numberMetadata: (_root, { number }, ctx) => ctx.loaders.number.load(phoneNumber(number, 'number')),

  numbersMetadata: (_root, { numbers }, ctx) => loadEach(numbers, 'numbers', phoneNumber, (keys) => ctx.loaders.number.loadMany(keys)),

  exophones: (_root, _args, ctx) => exophones(ctx),

  rateLimit: (_root, _args, ctx) => ctx.exotel.rateLimit(ctx.client),

  gateway: (_root, _args, ctx) => ({ mode: ctx.mode, version: ctx.version }),
};
