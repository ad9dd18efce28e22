/**
 * Whether Exotel can be used, for /readyz and gateway_dependency_up (docs/operations.md, "Health"), judged
 * from the requests the gateway makes anyway: probing would spend the account's 200/min budget. Two ways
 * to fail:
 * - unreachable after `failuresToMark` attempts in a row got no HTTP answer at all (connection refused or
 *   reset, DNS, timeout), reachable again at the first answer of any status;
 * - the gateway's own credentials refused: Exotel answered 401, or 403 to a read (a GET is allowed to any
 *   working account, so a 403 there means the account itself is refused: inactive, IP not allowed). A 403
 *   to a send is that request's business (balance, KYC, DND) and says nothing about the account. Refused
 *   until a request succeeds again; the first refusal is logged once at error, with no secret in it.
 * With no traffic it stays as it was, usable at start.
 */
import type { UpstreamRequestEvent } from '../exotel/types.js';
import type { Logger } from '../logger.js';

export const UPSTREAM_HEALTH_DEFAULTS = Object.freeze({ failuresToMark: 3 });

export interface UpstreamHealthOptions {
  failuresToMark?: number;
  /** Where a refusal of the gateway's credentials, and the recovery, are logged. */
  logger?: Pick<Logger, 'error' | 'info'>;
  /** The Exotel base URL, named in the log line so an operator sees which host refused. */
  baseUrl?: string;
}

export interface UpstreamHealth {
  observe(event: Pick<UpstreamRequestEvent, 'status' | 'method' | 'endpoint'>): void;
  reachable(): boolean;
  /** Why Exotel cannot be used right now (for /readyz), or undefined while it can. */
  problem(): string | undefined;
}

export function createUpstreamHealth(options: UpstreamHealthOptions = {}): UpstreamHealth {
  const failuresToMark = options.failuresToMark ?? UPSTREAM_HEALTH_DEFAULTS.failuresToMark;
  let failuresInARow = 0;
  let refused: string | undefined;
  return {
    observe({ status, method, endpoint }) {
      failuresInARow = typeof status === 'number' ? 0 : failuresInARow + 1;
      if (typeof status !== 'number') return;
      if (status === 401 || (status === 403 && method === 'GET')) {
        if (refused) return;
        refused =
          status === 401
            ? 'Exotel rejected the gateway\'s credentials (HTTP 401): check EXOTEL_ACCOUNT_SID, EXOTEL_API_KEY and EXOTEL_API_TOKEN'
            : 'Exotel refused the gateway\'s account (HTTP 403 to a read): check that the account is active and allows this host\'s IP';
        options.logger?.error({ upstreamStatus: status, endpoint, exotelBaseUrl: options.baseUrl }, refused);
      } else if (status >= 200 && status < 300 && refused) {
        refused = undefined;
        options.logger?.info({ endpoint }, 'Exotel accepts the gateway\'s credentials again');
      }
    },
    reachable: () => failuresInARow < failuresToMark,
    problem() {
      if (refused) return refused;
      if (failuresInARow >= failuresToMark) return `Exotel is unreachable: the last ${failuresInARow} requests got no answer`;
      return undefined;
    },
  };
}
