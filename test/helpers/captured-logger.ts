/** The project's logger writing into memory, for tests that read back what was logged. */
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../src/logger.js';

export interface CapturedLogger {
  logger: Logger;
  /** Every line logged so far, parsed. */
  lines(): Array<Record<string, unknown>>;
}

export function capturedLogger(level = 'info'): CapturedLogger {
  const chunks: string[] = [];
  const logger = createLogger({ level, destination: new Writable({ write: (chunk, _enc, cb) => void (chunks.push(String(chunk)), cb()) }) });
  return {
    logger,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}
