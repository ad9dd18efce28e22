/**
 * Whether Exotel can reach PUBLIC_URL at all. Exotel posts status callbacks and Passthru requests from the
 * internet, so a PUBLIC_URL on this machine or a private network (the `http://localhost:$PORT` default
 * included) loses every one of them without an error anywhere: said once at start, and by
 * `npm run webhook-urls`, before the URLs are pasted into a flow.
 */
import { BlockList, isIP } from 'node:net';

/** Addresses no one on the internet can reach (RFC 1918, RFC 4193, loopback, link-local, unspecified). */
const NOT_PUBLIC = new BlockList();
for (const [net, prefix] of [['0.0.0.0', 8], ['10.0.0.0', 8], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12], ['192.168.0.0', 16], ['100.64.0.0', 10]] as const) {
  NOT_PUBLIC.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10]] as const) NOT_PUBLIC.addSubnet(net, prefix, 'ipv6');

/** True for a host only this machine or its private network can resolve or route to. */
function isLocalHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const family = isIP(host);
  if (family) return NOT_PUBLIC.check(host, family === 4 ? 'ipv4' : 'ipv6');
  // localhost and single-label names (a compose service, a LAN host) are not resolvable from the internet.
  return host === 'localhost' || host.endsWith('.localhost') || !host.includes('.');
}

/**
 * Why Exotel at `exotelBaseUrl` cannot reach callbacks under `publicUrl`, or undefined when it may. An
 * Exotel that is itself local (the simulator, a test double) reaches local addresses, so nothing is said.
 */
export function unreachablePublicUrl(publicUrl: string, exotelBaseUrl: string): string | undefined {
  const exotelHost = new URL(exotelBaseUrl).hostname;
  if (isLocalHost(exotelHost) || !isLocalHost(new URL(publicUrl).hostname)) return undefined;
  return (
    `PUBLIC_URL is ${publicUrl}, which ${exotelHost} cannot reach: Exotel's status callbacks and Passthru requests ` +
    'will not arrive (calls still end, late, from call details). Set PUBLIC_URL to the address Exotel reaches this gateway at, ' +
    'e.g. https://gw.example.com'
  );
}
