import { describe, expect, it } from 'vitest';
import { createAuthenticator, requireWrite } from '../../src/auth.js';
import { GatewayError } from '../../src/errors.js';

const keys = [
  { name: 'backend', secret: 'backend-secret-0123456789', scopes: 'read+write' as const },
  { name: 'dashboard', secret: 'dashboard-secret-0123456789', scopes: 'read' as const },
];

const codeOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return e instanceof GatewayError ? e.code : 'not a GatewayError';
  }
  return 'no error';
};

describe('client authentication', () => {
  const auth = createAuthenticator(keys);

  it('knows each key by its Bearer secret', () => {
    expect(auth.authenticate('Bearer backend-secret-0123456789')).toEqual({ name: 'backend', scopes: 'read+write' });
    expect(auth.authenticate('bearer dashboard-secret-0123456789')).toEqual({ name: 'dashboard', scopes: 'read' });
  });

  it('rejects a missing, malformed or wrong key with UNAUTHENTICATED and does not echo it', () => {
    for (const value of [undefined, '', 'backend-secret-0123456789', 'Basic abc', 'Bearer backend-secret-012345678', 'Bearer x y']) {
      expect(codeOf(() => auth.authenticate(value))).toBe('UNAUTHENTICATED');
    }
    try {
      auth.authenticate('Bearer guessed-secret-canary');
    } catch (e) {
      expect((e as Error).message).not.toContain('guessed-secret-canary');
    }
  });

  it('lets everyone in when no keys are configured', () => {
    const open = createAuthenticator([]);
    expect(open.open).toBe(true);
    expect(open.authenticate(undefined).scopes).toBe('read+write');
  });

  it('forbids mutations to read keys', () => {
    expect(codeOf(() => requireWrite({ name: 'dashboard', scopes: 'read' }))).toBe('FORBIDDEN');
    expect(codeOf(() => requireWrite(null))).toBe('FORBIDDEN');
    expect(codeOf(() => requireWrite({ name: 'backend', scopes: 'read+write' }))).toBe('no error');
  });
});
