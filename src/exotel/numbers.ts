/**
 * Number metadata (v1) and the account's ExoPhones.
 *
 * ExoPhones come from v1 `GET /v1/Accounts/{sid}/IncomingPhoneNumbers.json` — what production integrations
 * call (docs/exotel-fidelity.md, "ExoPhones") — and from the v2_beta listing only when v1 answers 404.
 * Paging follows the answer's next-page URI and never computes pages from the echoed page size (v2_beta
 * echoes 50 whatever was asked); it stops when a page adds no ExoPhone not already seen, and every
 * ExoPhone appears once (by sid).
 */
import { badInput, ErrorCode, GatewayError, isGatewayError } from '../errors.js';
import type { ExotelHttp } from './http.js';
import { parseExoPhone, parseNumberMetadata, text } from './parse.js';
import type { ExoPhone, ExotelApi, RequestOptions, WireNumberResponse } from './types.js';

/** Safety stop for ExoPhone paging: an account with more than 100 × 100 numbers is not a thing we page through. */
const MAX_EXOPHONE_PAGES = 100;
const EXOPHONE_PAGE_SIZE = 100;

type NumbersApi = Pick<ExotelApi, 'getNumberMetadata' | 'listExoPhones'>;

/** One of the two ExoPhone listings: where it lives, how its first page is asked for, where its items are. */
interface ExoPhoneListing {
  path: string;
  firstPage: URLSearchParams;
  items(json: Record<string, unknown>): unknown[];
  nextUri(json: Record<string, unknown>): unknown;
}

/** Number metadata and ExoPhones of ExotelApi. */
export function createNumbersApi(http: ExotelHttp, accountSid: string): NumbersApi {
  const account = encodeURIComponent(accountSid);
  const v1: ExoPhoneListing = {
    path: `/v1/Accounts/${account}/IncomingPhoneNumbers.json`,
    firstPage: new URLSearchParams({ Page: '0', PageSize: String(EXOPHONE_PAGE_SIZE) }),
    items: (json) => (Array.isArray(json.IncomingPhoneNumbers) ? json.IncomingPhoneNumbers : []),
    nextUri: (json) => json.NextPageUri ?? json.next_page_uri ?? (json.Metadata as Record<string, unknown> | undefined)?.NextPageUri,
  };
  const v2: ExoPhoneListing = {
    path: `/v2_beta/Accounts/${account}/IncomingPhoneNumbers`,
    firstPage: new URLSearchParams({ Page: '0', PageSize: String(EXOPHONE_PAGE_SIZE) }),
    items: (json) => (Array.isArray(json.incoming_phone_numbers) ? json.incoming_phone_numbers : []),
    nextUri: (json) => json.next_page_uri ?? json.NextPageUri,
  };

  async function list(listing: ExoPhoneListing, options?: RequestOptions): Promise<ExoPhone[]> {
    const phones = new Map<string, ExoPhone>();
    const asked = new Set<string>();
    let query: URLSearchParams | undefined = listing.firstPage;
    for (let page = 0; query && page < MAX_EXOPHONE_PAGES; page++) {
      const key = query.toString();
      if (asked.has(key)) break; // a next-page URI pointing back at an asked page must not loop forever
      asked.add(key);
      const answer = await http.request({ endpoint: 'exophones.list', method: 'GET', path: listing.path, query }, options);
      const json = (answer && typeof answer === 'object' && !Array.isArray(answer) ? answer : {}) as Record<string, unknown>;
      let added = 0;
      for (const item of listing.items(json)) {
        const phone = parseExoPhone(item as Record<string, unknown>);
        if (phone && !phones.has(phone.sid)) {
          phones.set(phone.sid, phone);
          added++;
        }
      }
      // A page with nothing new means the server ignored our paging (or repeats itself): stop there.
      query = added === 0 ? undefined : nextPageQuery(listing.nextUri(json), listing.path);
    }
    return [...phones.values()];
  }

  return {
    async getNumberMetadata(number: string, options?: RequestOptions) {
      const normalised = normaliseNumber(number);
      const json = (await http.request(
        { endpoint: 'numbers.get', method: 'GET', path: `${http.v1}/Numbers/${encodeURIComponent(normalised)}.json`, notFoundAsNull: true },
        options,
      )) as WireNumberResponse | null;
      if (json === null) return null;
      if (!json || typeof json !== 'object' || !json.Numbers) {
        throw new GatewayError(ErrorCode.UPSTREAM_ERROR, 'Exotel sent an unexpected answer: no Numbers object');
      }
      return parseNumberMetadata(json.Numbers, normalised);
    },

    async listExoPhones(options?: RequestOptions) {
      try {
        return await list(v1, options);
      } catch (error) {
        // An account or cluster without the v1 listing: the v2_beta one has the same numbers.
        if (isGatewayError(error) && error.code === ErrorCode.NOT_FOUND) return list(v2, options);
        throw error;
      }
    },
  };
}

/**
 * The query of a v2 `next_page_uri`. Only its query string is used, on our own host and path: the URI may
 * name another host (twilix.exotel.com in Exotel's sample) and following it would send our credentials there.
 */
export function nextPageQuery(uri: unknown, expectedPath: string): URLSearchParams | undefined {
  const s = text(uri);
  if (s === null) return undefined;
  try {
    const url = new URL(s, 'http://exotel.invalid');
    // The next-page URI may name the listing with or without `.json`.
    const bare = (p: string) => p.replace(/\/+$/, '').replace(/\.json$/, '');
    if (bare(url.pathname) !== bare(expectedPath)) return undefined;
    return url.searchParams.size > 0 ? url.searchParams : undefined;
  } catch {
    return undefined;
  }
}

/** Accepts "+91 98765-43210", "09876543210", "080 1234 5678"; BAD_USER_INPUT for anything else. */
export function normaliseNumber(number: string): string {
  if (typeof number !== 'string') throw badInput('number', 'is required');
  const compact = number.trim().replace(/[\s().-]/g, '');
  if (!/^\+?\d{6,15}$/.test(compact)) throw badInput('number', `${JSON.stringify(number.slice(0, 32))} is not a phone number`);
  return compact;
}
