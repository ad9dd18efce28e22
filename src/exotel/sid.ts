/**
 * The one rule for what an Exotel Sid may look like, used by the client, the GraphQL validation, the
 * webhook routes and the simulator alike.
 *
 * Real Call and SMS Sids are 32 characters, usually lowercase hex, but often end in a letter that is not
 * hex (`…189g`, `…162m`, `…1a8u`: docs/exotel-fidelity.md), and Exotel promises no format.
 * So only what cannot be a Sid is refused: blanks, spaces, dots, commas (a comma would split a bulk
 * `Sid=a,b` filter), a leading "-" or "_", and anything over 128 characters.
 */
export const SID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

/** True when `value` could be an Exotel Sid (see SID_PATTERN). */
export function isExotelSid(value: unknown): value is string {
  return typeof value === 'string' && SID_PATTERN.test(value);
}
