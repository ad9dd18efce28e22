/**
 * A failure that repeats for as long as something stays down — during a Redis outage every cache read fails,
 * and so does every webhook Exotel sends and retries — logged once per outage: the first failure at warn or
 * error, every further one at debug, until a success ends the outage. The next failure after that is a new
 * outage and is logged loudly again. Counting each failure is left to metrics.
 */
import type { Logger } from './logger.js';

/** The logger methods an outage log writes with; a pino logger fits. */
type OutageLogger = Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;

export interface OutageLogOptions {
  /** Level of the first failure of an outage. */
  level: 'warn' | 'error';
  /** What ends the outage, in words: the first line says "more are logged at debug until <until>". */
  until: string;
  /** Logged at info, with the outage's count of failures, when a success ends an outage; nothing when unset. */
  recoveredMessage?: string;
}

export interface OutageLog {
  /** One failure: logged at the outage level when it is the first since the last success, at debug otherwise. */
  failed(fields: Record<string, unknown>, message: string): void;
  /** One success: ends the outage, if there is one. Cheap enough for every request. */
  recovered(): void;
}

export function createOutageLog(logger: OutageLogger, options: OutageLogOptions): OutageLog {
  // Failures of the outage under way; 0 when there is none.
  let failures = 0;
  return {
    failed(fields, message) {
      failures += 1;
      if (failures > 1) logger.debug(fields, message);
      else logger[options.level](fields, `${message}; more are logged at debug until ${options.until}`);
    },
    recovered() {
      if (failures === 0) return;
      if (options.recoveredMessage) logger.info({ failures }, options.recoveredMessage);
      failures = 0;
    },
  };
}
