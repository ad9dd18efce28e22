/**
 * The one exhaustiveness check, for switches over closed unions: a new member breaks the build, not
 * production. Imports nothing, so the Exotel types (and the simulator through them) can use it too.
 */
export function assertNever(value: never, what = 'value'): never {
  const shown: unknown = value;
  throw new Error(`unexpected ${what}: ${typeof shown === 'object' && shown !== null ? JSON.stringify(shown) : String(shown)}`);
}
