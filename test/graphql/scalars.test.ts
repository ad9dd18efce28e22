import { Kind } from 'graphql';
import { describe, expect, it } from 'vitest';
import { DateTimeScalar } from '../../src/graphql/resolvers/scalars.js';

describe('DateTime', () => {
  it.each(['2026-11-20T10:00:00+05:30', '2026-11-20T04:30:00Z', '2026-11-20T04:30Z', '2026-11-20T04:30:00.123-03:00'])('accepts %s unchanged', (v) => {
    expect(DateTimeScalar.parseValue(v)).toBe(v);
    expect(DateTimeScalar.parseLiteral({ kind: Kind.STRING, value: v }, {})).toBe(v);
  });

  it.each(['2026-11-20 10:00:00', '2026-11-20T10:00:00', '2026-02-30T10:00:00Z', 'yesterday', '2026-11-20T10:00:00+25:00'])('rejects %s with BAD_USER_INPUT', (v) => {
    expect(() => DateTimeScalar.parseValue(v)).toThrow(expect.objectContaining({ extensions: { code: 'BAD_USER_INPUT' } }));
  });

  it('rejects a non-string literal and value', () => {
    expect(() => DateTimeScalar.parseLiteral({ kind: Kind.INT, value: '5' }, {})).toThrow(/DateTime/);
    expect(() => DateTimeScalar.parseValue(5)).toThrow(/DateTime/);
  });
});
