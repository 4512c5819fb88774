import { BlockList, isIPv4, isIPv6 } from "node:net";

/** Matches addresses against CIDRs or single addresses, IPv4 and IPv6 alike. */
export function createAddressMatcher(entries: string[]): (address: string) => boolean {
  const list = new BlockList();
  for (const entry of entries) {
    const [ip, bits] = entry.split("/");
    const type = isIPv6(ip ?? "") ? "ipv6" : "ipv4";
    if (!ip || !(isIPv4(ip) || isIPv6(ip))) throw new Error(`not an IP address or CIDR: "${entry}"`);
    if (bits === undefined) list.addAddress(ip, type);
    else list.addSubnet(ip, Number(bits), type);
  }
  return (raw) => {
    const address = normalizeAddress(raw);
    if (isIPv4(address)) return list.check(address, "ipv4");
    if (isIPv6(address)) return list.check(address, "ipv6");
    return false;
  };
}

/** "::ffff:127.0.0.1" (IPv4 on a dual-stack socket) → "127.0.0.1". */
export function normalizeAddress(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped?.[1] ?? address;
}

/**
 * The caller's address: walk X-Forwarded-For from the right while the hop is
 * a trusted proxy; the first untrusted hop is the client.
 */
export function clientAddress(
  socketAddress: string,
  forwardedFor: string | undefined,
  isTrustedProxy: (address: string) => boolean,
): string {
  let client = normalizeAddress(socketAddress);
  if (!forwardedFor || !isTrustedProxy(client)) return client;
  const hops = forwardedFor
    .split(",")
    .map((h) => h.trim())
    .filter(Boolean);
  while (hops.length > 0 && isTrustedProxy(client)) {
    client = normalizeAddress(hops.pop() as string);
  }
  return client;
}
