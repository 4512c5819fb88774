import { BlockList, isIP } from "node:net";
import { normalizeAddress } from "./cidr.js";

// Loopback, private, link-local (cloud metadata lives at 169.254.169.254),
// carrier-grade NAT, multicast, reserved and their IPv6 equivalents.
const NON_PUBLIC = new BlockList();
for (const [net, bits] of [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["224.0.0.0", 4],
  ["240.0.0.0", 4],
] as const) {
  NON_PUBLIC.addSubnet(net, bits, "ipv4");
}
for (const [net, bits] of [
  ["::", 128],
  ["::1", 128],
  // Forms that carry an IPv4 address inside (IPv4-compatible, NAT64, 6to4): any of them may lead to a private one.
  ["::", 96],
  ["64:ff9b::", 96],
  ["::ffff:0:0:0", 96],
  ["64:ff9b:1::", 48],
  ["2002::", 16],
  ["fc00::", 7],
  ["fe80::", 10],
  // Deprecated site-local and the discard prefix: never a public webhook.
  ["fec0::", 10],
  ["100::", 64],
  ["ff00::", 8],
] as const) {
  NON_PUBLIC.addSubnet(net, bits, "ipv6");
}

const NON_PUBLIC_NAMES = /(^|\.)(localhost|internal|local)$|^metadata\.google\.internal$/;

/**
 * One spelling per host, so a guard cannot be walked around with another one:
 * lowercase, no brackets, no trailing dots (`localhost.` is `localhost`), no
 * IPv6 zone, numeric IPv4 forms (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`)
 * dotted as the WHATWG URL parser reads them, IPv4-mapped IPv6 as its IPv4.
 */
export function canonicalHost(raw: string): string {
  let host = stripDecorations(raw);
  const family = isIP(host);
  if (family !== 4) {
    try {
      host = stripDecorations(new URL(`http://${family === 6 ? `[${host}]` : host}/`).hostname);
    } catch {
      // Not a valid host at all: judged as spelled, the caller refuses the URL anyway.
    }
  }
  return normalizeAddress(host);
}

function stripDecorations(host: string): string {
  return host
    .trim()
    .toLowerCase()
    .replace(/^\[|\]$/g, "")
    .replace(/%.*$/, "")
    .replace(/\.+$/, "");
}

/** True when an address (or an IP-literal host) is not on the public internet. */
export function isNonPublicAddress(address: string): boolean {
  const ip = canonicalHost(address);
  const family = isIP(ip);
  if (family === 4) return NON_PUBLIC.check(ip, "ipv4");
  if (family === 6) return NON_PUBLIC.check(ip, "ipv6");
  return false;
}

/** Host names that always resolve inside the machine or cluster, in any spelling. */
export function isNonPublicHostname(host: string): boolean {
  const canonical = canonicalHost(host);
  return NON_PUBLIC_NAMES.test(canonical) || isNonPublicAddress(canonical);
}
