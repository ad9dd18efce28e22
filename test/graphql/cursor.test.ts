import { describe, expect, it } from 'vitest';
import { decodeCursor, encodeCursor, filterHash } from '../../src/graphql/cursor.js';

describe('call cursors', () => {
  const f = filterHash({ status: ['BUSY'] });

  it('round-trips item and page positions', () => {
    const item = { kind: 'item', filterHash: f, pageAfter: 'abc', pageSize: 40, offset: 7 } as const;
    expect(decodeCursor(encodeCursor(item), f)).toEqual(item);
    const first = { kind: 'item', filterHash: f, pageAfter: null, pageSize: 10, offset: 0 } as const;
    expect(decodeCursor(encodeCursor(first), f)).toEqual(first);
    const page = { kind: 'page', filterHash: f, nextAfter: 'MTc5NTU4' } as const;
    expect(decodeCursor(encodeCursor(page), f)).toEqual(page);
  });

  it('is opaque base64url', () => {
    expect(encodeCursor({ kind: 'page', filterHash: f, nextAfter: 'x' })).toMatch(/^[A-Za-z0-9_-]+$/);
  });

  it('hashes equal filters equally whatever their key order, and different filters differently', () => {
    expect(filterHash({ a: 1, b: [2] })).toBe(filterHash({ b: [2], a: 1 }));
    expect(filterHash({ status: ['BUSY'] })).not.toBe(filterHash({ status: ['FAILED'] }));
  });

  it('rejects a cursor of another filter', () => {
    const c = encodeCursor({ kind: 'page', filterHash: filterHash({}), nextAfter: 'x' });
    expect(() => decodeCursor(c, f)).toThrow(/different filter/);
  });

  it.each(['', 'not a cursor', Buffer.from('[]').toString('base64url'), Buffer.from('{"v":2,"f":"x"}').toString('base64url'), Buffer.from(`{"v":1,"f":"${f}","p":null,"s":10,"o":10}`).toString('base64url'), Buffer.from(`{"v":1,"f":"${f}","p":null,"s":500,"o":1}`).toString('base64url')])(
    'rejects the forged cursor %j with BAD_USER_INPUT',
    (value) => {
      expect(() => decodeCursor(value, f)).toThrow(expect.objectContaining({ code: 'BAD_USER_INPUT', field: 'after' }));
    },
  );
});
