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

/**
 * One spelling per address, so limits and allowlists key a client the same
 * way whichever listener saw it: IPv6 compressed and lowercased (uWS writes
 * `0000:…:0001`), IPv4 on a dual-stack socket (`::ffff:127.0.0.1`,
 * `::ffff:7f00:1`) as plain IPv4.
 */
export function normalizeAddress(address: string): string {
  let ip = address;
  if (isIPv6(ip)) ip = new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  const dotted = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (dotted) return dotted[1] as string;
  const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(ip);
  if (!hex) return ip;
  const [high, low] = [Number.parseInt(hex[1] as string, 16), Number.parseInt(hex[2] as string, 16)];
  return [high >> 8, high & 255, low >> 8, low & 255].join(".");
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
