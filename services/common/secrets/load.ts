import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config.js";
import type { Logger } from "../obs/logger.js";
import { createKeyring, DEFAULT_KEY_ID, type Keyring } from "./keyring.js";

type KeyringConfig = Pick<Config, "keyEncryptionKeys" | "keyEncryptionKeyId" | "keyEncryptionKey" | "dataDir">;

/**
 * The key-encryption keys: KEY_ENCRYPTION_KEYS (`kid:base64,…`) with
 * KEY_ENCRYPTION_KEY_ID naming the active one. The single key of older
 * set-ups, KEY_ENCRYPTION_KEY, joins the ring as "default" (what the sealed
 * signing keys of that time need). With neither set, "default" is read from
 * DATA_DIR/keys/kek, generated there on first start (mode 0600), so the
 * embedded set-up needs nothing; every process sharing a database must hold
 * every key its rows name.
 */
export function loadKeyring(config: KeyringConfig, log: Logger): Keyring {
  const keys = new Map<string, Buffer>();
  for (const entry of config.keyEncryptionKeys) {
    const at = entry.indexOf(":");
    if (at <= 0) throw new Error('KEY_ENCRYPTION_KEYS entries must read "kid:base64"');
    const kid = entry.slice(0, at);
    if (keys.has(kid)) throw new Error(`KEY_ENCRYPTION_KEYS names "${kid}" twice`);
    keys.set(kid, Buffer.from(entry.slice(at + 1), "base64"));
  }
  if (config.keyEncryptionKey) {
    if (keys.has(DEFAULT_KEY_ID))
      throw new Error(`KEY_ENCRYPTION_KEY and KEY_ENCRYPTION_KEYS both name "${DEFAULT_KEY_ID}"`);
    keys.set(DEFAULT_KEY_ID, Buffer.from(config.keyEncryptionKey, "base64"));
  }
  if (keys.size === 0) keys.set(DEFAULT_KEY_ID, keyFromDataDir(config.dataDir, log));
  return createKeyring(keys, activeKid(config, keys));
}

function activeKid(config: KeyringConfig, keys: Map<string, Buffer>): string {
  if (config.keyEncryptionKeyId) return config.keyEncryptionKeyId;
  const listed = config.keyEncryptionKeys.length;
  if (listed === 0) return DEFAULT_KEY_ID;
  if (listed === 1 && keys.size === 1) return [...keys.keys()][0] as string;
  throw new Error("KEY_ENCRYPTION_KEY_ID must name the active key when several key-encryption keys are given");
}

function keyFromDataDir(dataDir: string, log: Logger): Buffer {
  const dir = join(dataDir, "keys");
  const file = join(dir, "kek");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  try {
    writeFileSync(file, randomBytes(32).toString("base64"), { mode: 0o600, flag: "wx" });
    chmodSync(file, 0o600);
    log.warn({ file }, "generated a key-encryption key; set KEY_ENCRYPTION_KEYS to share keys across processes");
  } catch (error) {
    // Already there (an earlier start, or another process that got there first): use it.
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  return Buffer.from(readFileSync(file, "utf8").trim(), "base64");
}
