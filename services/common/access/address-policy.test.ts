import { describe, expect, it } from "vitest";
import { canonicalHost, isNonPublicAddress, isNonPublicHostname } from "./address-policy.js";

describe("address policy", () => {
  it("reads every spelling of loopback as loopback", () => {
    for (const host of [
      "localhost.",
      "LOCALHOST",
      "a.localhost..",
      "2130706433",
      "0x7f.1",
      "0177.0.0.1",
      "127.1",
      "[::ffff:127.0.0.1]",
      "::ffff:7f00:1",
      "0:0:0:0:0:ffff:7f00:1",
      "[::1]",
    ]) {
      expect(isNonPublicHostname(host), host).toBe(true);
    }
  });

  it("canonicalizes hosts before judging them", () => {
    expect(canonicalHost("0x7f.1")).toBe("127.0.0.1");
    expect(canonicalHost("[::FFFF:7F00:1]")).toBe("127.0.0.1");
    expect(canonicalHost("Example.COM.")).toBe("example.com");
    expect(canonicalHost("fe80::1%eth0")).toBe("fe80::1");
  });

  it("refuses resolved IPv4-mapped private addresses and lets public ones pass", () => {
    expect(isNonPublicAddress("::ffff:10.0.0.1")).toBe(true);
    expect(isNonPublicAddress("::ffff:a9fe:a9fe")).toBe(true);
    expect(isNonPublicAddress("fec0::1")).toBe(true);
    expect(isNonPublicAddress("::ffff:93.184.216.34")).toBe(false);
    expect(isNonPublicHostname("example.com")).toBe(false);
    expect(isNonPublicHostname("93.184.216.34")).toBe(false);
  });
});
