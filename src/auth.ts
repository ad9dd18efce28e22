/**
 * Client authentication (docs/security.md): `Authorization: Bearer <secret>` on HTTP, the same string in
 * graphql-ws `connectionParams.authorization`. Keys come from GATEWAY_API_KEYS; comparison is constant
 * time so response timing says nothing about how much of a guess was right.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { ApiKey, Scope } from './config.js';
import { ErrorCode, GatewayError } from './errors.js';

export interface Principal {
  /** The key's name (safe to log); `anonymous` when the gateway runs open. */
  name: string;
  scopes: Scope;
}

export interface Authenticator {
  /** True when no keys are configured and every caller is let in (simulator mode, or GATEWAY_ALLOW_OPEN). */
  readonly open: boolean;
  /** The caller behind an Authorization value, or a GatewayError UNAUTHENTICATED. */
  authenticate(authorization: string | undefined | null): Principal;
}

export const ANONYMOUS: Principal = { name: 'anonymous', scopes: 'read+write' };

// Hashing first makes every comparison the same length, so length leaks nothing either.
const digest = (value: string) => createHash('sha256').update(value).digest();

export function createAuthenticator(keys: readonly ApiKey[]): Authenticator {
  const entries = keys.map((k) => ({ principal: { name: k.name, scopes: k.scopes } satisfies Principal, hash: digest(k.secret) }));
  return {
    open: entries.length === 0,
    authenticate(authorization) {
      if (entries.length === 0) return ANONYMOUS;
      const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
      if (!match?.[1]) throw new GatewayError(ErrorCode.UNAUTHENTICATED, 'Missing or malformed Authorization header: expected "Bearer <api key>"');
      const presented = digest(match[1]);
      let found: Principal | undefined;
      // Compare against every key, without an early exit, so timing does not reveal which one matched.
      for (const entry of entries) if (timingSafeEqual(entry.hash, presented)) found ??= entry.principal;
      if (!found) {
        // A whole GATEWAY_API_KEYS entry sent by mistake: say what goes after Bearer (without echoing it).
        const hint = /^[^:]+:[^:]+:(read|read\+write)(:[\d.]+)?$/.test(match[1]) ? ': send only the secret part of name:secret:scopes after "Bearer"' : '';
        throw new GatewayError(ErrorCode.UNAUTHENTICATED, `Invalid API key${hint}`);
      }
      return found;
    },
  };
}

/** Throws FORBIDDEN unless `principal` may run mutations. */
export function requireWrite(principal: Principal | null | undefined): void {
  if (principal?.scopes !== 'read+write') {
    throw new GatewayError(ErrorCode.FORBIDDEN, `This API key${principal ? ` ("${principal.name}")` : ''} may only read; mutations need a read+write key`);
  }
}
