/**
 * The DateTime scalar: ISO-8601 instants with an offset (docs/schema-tour.md). Inputs without an offset are
 * rejected — a wall-clock time without a zone cannot be placed on the timeline — with BAD_USER_INPUT,
 * whether they come as a literal in the document or as a variable. Every output is in IST (+05:30),
 * the zone Exotel's own dates are in, so a client sees one convention everywhere.
 */
import { GraphQLError, GraphQLScalarType, Kind, type ValueNode } from 'graphql';
import { ErrorCode } from '../../errors.js';
import { InvalidDateTimeError, epochMsToIso, isoToEpochMs } from '../../exotel/dates.js';

const IST_SUFFIX = '+05:30';

function invalid(message: string, node?: ValueNode): GraphQLError {
  return new GraphQLError(`DateTime: ${message}`, { ...(node ? { nodes: node } : {}), extensions: { code: ErrorCode.BAD_USER_INPUT } });
}

/** Checks an incoming value and returns it unchanged (the offset the client chose is kept). */
function parse(value: unknown, node?: ValueNode): string {
  if (typeof value !== 'string') throw invalid('expected a string such as "2026-11-20T10:00:00+05:30"', node);
  try {
    isoToEpochMs(value);
  } catch (err) {
    if (err instanceof InvalidDateTimeError) throw invalid(err.message, node);
    throw err;
  }
  return value;
}

/** ISO-8601 date-time with offset, e.g. "2026-11-20T10:00:00+05:30". */
export const DateTimeScalar = new GraphQLScalarType<string, string>({
  name: 'DateTime',
  description: 'An instant as ISO-8601 with a UTC offset, e.g. `2026-11-20T10:00:00+05:30`.',
  serialize(value) {
    // Nearly every value is already IST (converted from Exotel's wall clock); others are converted here.
    if (typeof value === 'string') return value.endsWith(IST_SUFFIX) ? value : epochMsToIso(isoToEpochMs(value));
    if (value instanceof Date) return epochMsToIso(value.getTime());
    throw new GraphQLError('DateTime: cannot serialise a non-date value');
  },
  parseValue: (value) => parse(value),
  parseLiteral(ast) {
    if (ast.kind !== Kind.STRING) throw invalid('expected a string such as "2026-11-20T10:00:00+05:30"', ast);
    return parse(ast.value, ast);
  },
});
