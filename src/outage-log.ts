/**
 * A failure that repeats for as long as something stays down — during a Redis outage every cache read fails,
 * and so does every webhook Exotel sends and retries — logged once per outage: the first failure at warn or
 * error, every further one at debug, until a success ends the outage. The next failure after that is a new
 * outage and is logged loudly again. Counting each failure is left to metrics.
 *
 * A failure that loses something (a request dropped, a take-back not kept) is logged the same way, with
 * each further one at info, so what was lost can still be found at the default level, and the outage's
 * count in one more line at the outage level when it ends.
 */
import type { Logger } from './logger.js';

/** The logger methods an outage log writes with; a pino logger fits. */
type OutageLogger = Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;

export interface OutageLogOptions {
  /** Level of the first failure of an outage. */
  level: 'warn' | 'error';
  /** What ends the outage, in words: the first line says "more are logged at debug until <until>". */
  until: string;
  /** Level of every further failure of an outage: debug (the default), or info when each is a loss to be found later. */
  repeatLevel?: 'debug' | 'info';
  /** Logged, with the outage's count of failures, when the outage ends; nothing when unset. */
  recoveredMessage?: string;
  /**
   * Level of that line. At info (the default) it ends every outage: the news is the recovery. At the
   * outage level the news is the count of what was lost, so an outage of one failure, which its first
   * line told all of, ends without it.
   */
  recoveredLevel?: 'info' | 'warn' | 'error';
}

export interface OutageLog {
  /** One failure: logged at the outage level when it is the first since the last success, at the repeat level otherwise. */
  failed(fields: Record<string, unknown>, message: string): void;
  /** Ends the outage, if there is one: a success, or its owner stopping. Cheap enough for every request. */
  recovered(): void;
}

export function createOutageLog(logger: OutageLogger, options: OutageLogOptions): OutageLog {
  const repeatLevel = options.repeatLevel ?? 'debug';
  const recoveredLevel = options.recoveredLevel ?? 'info';
  // Failures of the outage under way; 0 when there is none.
  let failures = 0;
  return {
    failed(fields, message) {
      failures += 1;
      if (failures > 1) logger[repeatLevel](fields, message);
      else logger[options.level](fields, `${message}; more are logged at ${repeatLevel} until ${options.until}`);
    },
    recovered() {
      if (failures === 0) return;
      if (options.recoveredMessage && (recoveredLevel === 'info' || failures > 1)) logger[recoveredLevel]({ failures }, options.recoveredMessage);
      failures = 0;
    },
  };
}
