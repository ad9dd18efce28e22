/** The gateway's version from package.json, read once (GatewayInfo.version). */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

/** package.json's version; "unknown" when it cannot be found (never a reason to fail a query). */
export function gatewayVersion(): string {
  if (cached !== undefined) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  // src/graphql (tsx) or dist/…/graphql (build): package.json is a few levels up.
  for (let level = 0; level < 5; level += 1) {
    dir = dirname(dir);
    const file = join(dir, 'package.json');
    if (!existsSync(file)) continue;
    try {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'exotel-graphql-gateway' && typeof pkg.version === 'string') return (cached = pkg.version);
    } catch {
      // A broken package.json is not this function's problem; keep looking, then give up.
    }
  }
  return (cached = 'unknown');
}
