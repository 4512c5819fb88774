import { describe, expect, it } from "vitest";
import { clientAddress, createAddressMatcher, normalizeAddress } from "./cidr.js";

describe("address matching", () => {
  const loopback = createAddressMatcher(["127.0.0.1/32", "::1/128"]);

  it("matches IPv4, IPv6 and IPv4-mapped IPv6 addresses", () => {
    expect(loopback("127.0.0.1")).toBe(true);
    expect(loopback("::ffff:127.0.0.1")).toBe(true);
    expect(loopback("::1")).toBe(true);
    expect(loopback("127.0.0.2")).toBe(false);
    expect(loopback("not an address")).toBe(false);
  });

  it("spells an address one way whichever listener wrote it", () => {
    expect(normalizeAddress("0000:0000:0000:0000:0000:ffff:7f00:0001")).toBe("127.0.0.1");
    expect(normalizeAddress("::ffff:7f00:1")).toBe("127.0.0.1");
    expect(normalizeAddress("2001:0DB8:0000:0000:0000:0000:0000:0001")).toBe("2001:db8::1");
    expect(normalizeAddress("203.0.113.9")).toBe("203.0.113.9");
  });

  it("rejects a malformed CIDR at start-up", () => {
    expect(() => createAddressMatcher(["10.0.0.0/8", "nonsense"])).toThrow(/nonsense/);
  });

  it("walks X-Forwarded-For only through trusted proxies", () => {
    const proxies = createAddressMatcher(["10.0.0.0/8"]);
    expect(clientAddress("203.0.113.9", "1.2.3.4", proxies)).toBe("203.0.113.9");
    expect(clientAddress("10.0.0.2", "1.2.3.4", proxies)).toBe("1.2.3.4");
    expect(clientAddress("10.0.0.2", "6.6.6.6, 1.2.3.4, 10.0.0.7", proxies)).toBe("1.2.3.4");
    expect(clientAddress("10.0.0.2", undefined, proxies)).toBe("10.0.0.2");
  });
});
