/** Number metadata (v1) and the account's ExoPhones (v2_beta IncomingPhoneNumbers). */
import { badInput, ErrorCode, GatewayError } from '../errors.js';
import type { ExotelHttp } from './http.js';
import { parseExoPhone, parseNumberMetadata, text } from './parse.js';
import type { ExoPhone, ExotelApi, RequestOptions, WireExoPhoneListResponse, WireNumberResponse } from './types.js';

/** Safety stop for ExoPhone paging: an account with more than 100 × 100 numbers is not a thing we page through. */
const MAX_EXOPHONE_PAGES = 100;
const EXOPHONE_PAGE_SIZE = 100;

type NumbersApi = Pick<ExotelApi, 'getNumberMetadata' | 'listExoPhones'>;

/** Number metadata and ExoPhones of ExotelApi. */
export function createNumbersApi(http: ExotelHttp, accountSid: string): NumbersApi {
  const v2Path = `/v2_beta/Accounts/${encodeURIComponent(accountSid)}/IncomingPhoneNumbers`;
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
      const phones: ExoPhone[] = [];
      const seen = new Set<string>();
      let query: URLSearchParams | undefined = new URLSearchParams({ Page: '0', PageSize: String(EXOPHONE_PAGE_SIZE) });
      for (let page = 0; query && page < MAX_EXOPHONE_PAGES; page++) {
        const key = query.toString();
        if (seen.has(key)) break; // a next_page_uri pointing back at itself must not loop forever
        seen.add(key);
        const json = (await http.request({ endpoint: 'exophones.list', method: 'GET', path: v2Path, query }, options)) as WireExoPhoneListResponse;
        const items: unknown[] = Array.isArray(json?.incoming_phone_numbers) ? json.incoming_phone_numbers : [];
        for (const item of items) {
          const phone = parseExoPhone(item as Record<string, unknown>);
          if (phone) phones.push(phone);
        }
        query = items.length === 0 ? undefined : nextPageQuery(json?.next_page_uri, v2Path);
      }
      return phones;
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
    if (url.pathname.replace(/\/+$/, '') !== expectedPath) return undefined;
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
