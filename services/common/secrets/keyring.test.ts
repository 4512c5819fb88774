import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createLogger } from "../obs/logger.js";
import { createKeyring, SealedValueError, UnknownKeyError } from "./keyring.js";
import { loadKeyring } from "./load.js";

const K1 = randomBytes(32);
const K2 = randomBytes(32);
const ROW = "conversations.channels:tenant-a:channel-1";
const OTHER_ROW = "conversations.channels:tenant-a:channel-2";
const log = createLogger("silent");
const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function sealedOnce() {
  const ring = createKeyring(new Map([["k1", K1]]), "k1");
  const { dataKey, wrapped } = ring.createDataKey(ROW);
  return { ring, wrapped, sealed: dataKey.seal("secret", Buffer.from("cvs_the-secret")) };
}

describe("keyring", () => {
  it("opens what it sealed, and seals the same value differently each time", () => {
    const { ring, wrapped, sealed } = sealedOnce();
    expect(ring.openDataKey(wrapped, ROW).open("secret", sealed).toString()).toBe("cvs_the-secret");
    expect(sealed.includes(Buffer.from("cvs_the-secret"))).toBe(false);
    expect(ring.openDataKey(wrapped, ROW).seal("secret", Buffer.from("cvs_the-secret"))).not.toEqual(sealed);
  });

  it("refuses a tampered ciphertext, a tampered wrapped key and a truncated value", () => {
    const { ring, wrapped, sealed } = sealedOnce();
    const flipped = Buffer.from(sealed);
    flipped[flipped.length - 1] = (flipped[flipped.length - 1] as number) ^ 1;
    expect(() => ring.openDataKey(wrapped, ROW).open("secret", flipped)).toThrow(SealedValueError);
    const badWrap = Buffer.from(wrapped);
    badWrap[badWrap.length - 1] = (badWrap[badWrap.length - 1] as number) ^ 1;
    expect(() => ring.openDataKey(badWrap, ROW)).toThrow(SealedValueError);
    expect(() => ring.openDataKey(wrapped, ROW).open("secret", sealed.subarray(0, 10))).toThrow(SealedValueError);
  });

  it("refuses a value moved to another row or another field, and a wrapped key moved to another row", () => {
    const { ring, wrapped, sealed } = sealedOnce();
    const other = ring.createDataKey(OTHER_ROW);
    expect(() => other.dataKey.open("secret", sealed)).toThrow(SealedValueError);
    expect(() => ring.openDataKey(wrapped, OTHER_ROW)).toThrow(SealedValueError);
    expect(() => ring.openDataKey(wrapped, ROW).open("config.app_secret", sealed)).toThrow(SealedValueError);
  });

  it("fails closed on an unknown key id, naming it, and on a kid swapped in the header", () => {
    const { wrapped, sealed } = sealedOnce();
    const without = createKeyring(new Map([["k2", K2]]), "k2");
    expect(() => without.openDataKey(wrapped, ROW)).toThrow(UnknownKeyError);
    expect(() => without.openDataKey(wrapped, ROW)).toThrow(/key-encryption key "k1", which is not in the keyring/);
    expect(() => without.rewrap(wrapped, ROW)).toThrow(UnknownKeyError);
    // Same key material under another name: the kid is authenticated with the wrapping.
    const renamed = createKeyring(new Map([["k9", K1]]), "k9");
    const swapped = Buffer.concat([Buffer.from([1, 2]), Buffer.from("k9"), wrapped.subarray(4)]);
    expect(() => renamed.openDataKey(swapped, ROW).open("secret", sealed)).toThrow(SealedValueError);
  });

  it("re-wraps a data key under the active key without touching what it sealed", () => {
    const { wrapped, sealed } = sealedOnce();
    const both = createKeyring(
      new Map([
        ["k1", K1],
        ["k2", K2],
      ]),
      "k2",
    );
    const rewrapped = both.rewrap(wrapped, ROW);
    expect(both.kidOf(rewrapped)).toBe("k2");
    const onlyNew = createKeyring(new Map([["k2", K2]]), "k2");
    expect(onlyNew.openDataKey(rewrapped, ROW).open("secret", sealed).toString()).toBe("cvs_the-secret");
  });
});

describe("loadKeyring", () => {
  const base = { keyEncryptionKeys: [] as string[], keyEncryptionKeyId: "", dataDir: "" };
  const dataDir = () => {
    const dir = mkdtempSync(join(tmpdir(), "converger-keyring-"));
    dirs.push(dir);
    return dir;
  };

  it("generates one key under DATA_DIR (0600) on first start and reads it back after", () => {
    const dir = dataDir();
    const first = loadKeyring({ ...base, dataDir: dir }, log);
    const file = join(dir, "keys", "kek");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(Buffer.from(readFileSync(file, "utf8"), "base64")).toHaveLength(32);
    const { dataKey, wrapped } = first.createDataKey(ROW);
    const sealed = dataKey.seal("secret", Buffer.from("x"));
    const again = loadKeyring({ ...base, dataDir: dir }, log);
    expect(again.activeKid).toBe("default");
    expect(again.openDataKey(wrapped, ROW).open("secret", sealed).toString()).toBe("x");
  });

  it("takes KEY_ENCRYPTION_KEYS with the active KEY_ENCRYPTION_KEY_ID, and KEY_ENCRYPTION_KEY as 'default'", () => {
    const keys = [`k1:${K1.toString("base64")}`, `k2:${K2.toString("base64")}`];
    const ring = loadKeyring(
      { ...base, keyEncryptionKeys: keys, keyEncryptionKeyId: "k2", keyEncryptionKey: K1.toString("base64") },
      log,
    );
    expect(ring.activeKid).toBe("k2");
    expect(["k1", "k2", "default"].every((kid) => ring.has(kid))).toBe(true);
    expect(loadKeyring({ ...base, keyEncryptionKeys: [keys[0] as string] }, log).activeKid).toBe("k1");
  });

  it.each([
    [{ keyEncryptionKeys: ["k1:AAAA"] }, /exactly 32 bytes/],
    [{ keyEncryptionKeys: [`k1:${K1.toString("base64")}`, `k2:${K2.toString("base64")}`] }, /KEY_ENCRYPTION_KEY_ID/],
    [{ keyEncryptionKeys: [`k1:${K1.toString("base64")}`], keyEncryptionKeyId: "k3" }, /"k3" is not one of/],
    [{ keyEncryptionKeys: [`k1:${K1.toString("base64")}`, `k1:${K2.toString("base64")}`] }, /names "k1" twice/],
    [{ keyEncryptionKeys: ["no-colon"] }, /kid:base64/],
    [{ keyEncryptionKeys: [`bad id!:${K1.toString("base64")}`] }, /must match/],
  ])("refuses a bad keyring configuration %#", (config, message) => {
    expect(() => loadKeyring({ ...base, dataDir: dataDir(), ...config }, log)).toThrow(message);
  });
});
