import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../common/obs/logger.js";

const IV_BYTES = 12;
const TAG_BYTES = 16;

/** AES-256-GCM under the key-encryption key: signing keys are stored encrypted. */
export interface KeyEncryption {
  encrypt(plain: Buffer): Buffer;
  decrypt(sealed: Buffer): Buffer;
}

/**
 * The key-encryption key comes from KEY_ENCRYPTION_KEY (base64 of 32 bytes);
 * without it one is generated once into DATA_DIR/keys/kek (mode 0600), which
 * suits the embedded single-node setup. Every process sharing a database
 * must share this key.
 */
export function loadKeyEncryption(env: string | undefined, dataDir: string, log: Logger): KeyEncryption {
  const key = env ? decodeKek(env) : kekFromDataDir(dataDir, log);
  return {
    encrypt(plain) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv("aes-256-gcm", key, iv);
      const data = Buffer.concat([cipher.update(plain), cipher.final()]);
      return Buffer.concat([iv, cipher.getAuthTag(), data]);
    },
    decrypt(sealed) {
      const decipher = createDecipheriv("aes-256-gcm", key, sealed.subarray(0, IV_BYTES));
      decipher.setAuthTag(sealed.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      return Buffer.concat([decipher.update(sealed.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
    },
  };
}

function decodeKek(value: string): Buffer {
  const key = Buffer.from(value, "base64");
  if (key.length !== 32) throw new Error("KEY_ENCRYPTION_KEY must be the base64 of exactly 32 bytes");
  return key;
}

function kekFromDataDir(dataDir: string, log: Logger): Buffer {
  const dir = join(dataDir, "keys");
  const file = join(dir, "kek");
  if (existsSync(file)) return decodeKek(readFileSync(file, "utf8").trim());
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const key = randomBytes(32);
  writeFileSync(file, key.toString("base64"), { mode: 0o600, flag: "wx" });
  chmodSync(file, 0o600);
  log.warn({ file }, "generated a key-encryption key; set KEY_ENCRYPTION_KEY to share one across processes");
  return key;
}
