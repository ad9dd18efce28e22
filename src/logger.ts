/**
 * Structured logging (pino). Redaction is configured here once so that no Authorization header,
 * Exotel token, client key or webhook token ever reaches a log line, whoever logs what.
 */
import { pino, type Logger, type DestinationStream } from 'pino';
import { scrub } from './scrub.js';

export type { Logger };

/** Paths pino censors wherever they appear in a logged object. */
export const REDACT_PATHS = [
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
  'apiToken',
  '*.apiToken',
  'apiKey',
  '*.apiKey',
  'token',
  '*.token',
  'secret',
  '*.secret',
  'webhookSecret',
  '*.webhookSecret',
  'password',
  '*.password',
  'connectionParams',
  '*.connectionParams',
];

export interface LoggerOptions {
  level?: string;
  /** Where lines go; tests pass a stream to capture them. Default: stdout. */
  destination?: DestinationStream;
  /** Known secret values scrubbed from any message string as a last line of defence. */
  secrets?: string[];
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const secrets = (options.secrets ?? []).filter((s) => s.length >= 6);
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: 'exotel-graphql-gateway' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
      // `hooks: undefined` would replace pino's default hooks object and crash pino, so the key is set only with secrets.
      ...(secrets.length === 0 ? {} : { hooks: scrubHooks(secrets) }),
      serializers: { err: pino.stdSerializers.err },
    },
    // stdout, written asynchronously: lines that pile up while a write is in flight go out together, so a
    // busy gateway pays one write per batch, not per line (the access log is a line per request). pino
    // flushes what is pending synchronously when the process exits.
    options.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

/** Belt and braces: a secret interpolated into a message string is scrubbed too. */
function scrubHooks(secrets: string[]): NonNullable<LoggerOptions_['hooks']> {
  return {
    logMethod(args, method) {
      method.apply(this, args.map((a) => (typeof a === 'string' ? scrub(a, secrets) : a)) as Parameters<typeof method>);
    },
  };
}
type LoggerOptions_ = NonNullable<Parameters<typeof pino>[0]>;


/**
 * A child for lines whose fields are fixed and secret-free by construction (the access log: request id,
 * method, route label, status, duration). It skips the path redaction, which costs several times the rest
 * of writing a line, once per HTTP request. The scrub hooks still apply to it.
 */
export function fixedFieldsLogger(logger: Logger, bindings: Record<string, string>): Logger {
  return logger.child(bindings, { redact: [] });
}
