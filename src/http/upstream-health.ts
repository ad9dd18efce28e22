/**
 * Whether Exotel is reachable, for /readyz (design §4: "storage and upstream reachable"), judged from the
 * requests the gateway makes anyway: probing would spend the account's 200/min budget. Exotel counts as
 * unreachable after `failuresToMark` attempts in a row got no HTTP answer at all (connection refused or
 * reset, DNS, timeout), and reachable again at the first answer of any status. With no traffic it stays as
 * it was, reachable at start.
 */
import type { UpstreamRequestEvent } from '../exotel/types.js';

export const UPSTREAM_HEALTH_DEFAULTS = Object.freeze({ failuresToMark: 3 });

export interface UpstreamHealth {
  observe(event: Pick<UpstreamRequestEvent, 'status'>): void;
  reachable(): boolean;
}

export function createUpstreamHealth(failuresToMark: number = UPSTREAM_HEALTH_DEFAULTS.failuresToMark): UpstreamHealth {
  let failuresInARow = 0;
  return {
    observe({ status }) {
      failuresInARow = typeof status === 'number' ? 0 : failuresInARow + 1;
    },
    reachable: () => failuresInARow < failuresToMark,
  };
}
