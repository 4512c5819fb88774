import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

const ALGORITHM = "aes-256-gcm";
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const FORMAT = 1;
const KEY_ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
/** The id the single key of KEY_ENCRYPTION_KEY / DATA_DIR/keys/kek takes in the ring. */
export const DEFAULT_KEY_ID = "default";

/** A sealed value names a key-encryption key this process does not hold: nothing is opened. */
export class UnknownKeyError extends Error {
  constructor(readonly kid: string) {
    super(`sealed with key-encryption key "${kid}", which is not in the keyring (KEY_ENCRYPTION_KEYS)`);
  }
}

/** Rows whose data keys name key-encryption keys this process lacks: a rewrap or a start refuses them all. */
export class MissingKeysError extends Error {
  constructor(
    what: string,
    readonly missing: ReadonlyMap<string, number>,
  ) {
    const named = [...missing].map(([kid, rows]) => `${rows} ${what} under "${kid}"`).join(", ");
    super(
      `sealed with key-encryption keys not in the keyring: ${named}; ` +
        "add them back to KEY_ENCRYPTION_KEYS (and re-wrap before removing them)",
    );
  }
}

/** The key ids among `kids` the keyring lacks, with how often each was named. */
export function countMissing(keyring: Keyring, kids: Iterable<string>): Map<string, number> {
  const missing = new Map<string, number>();
  for (const kid of kids) if (!keyring.has(kid)) missing.set(kid, (missing.get(kid) ?? 0) + 1);
  return missing;
}

/** A sealed value that does not open: tampered, truncated, or moved to another row or field. */
export class SealedValueError extends Error {}

/** One row's data key: seals each field with the row and the field's name as additional data. */
export interface DataKey {
  seal(field: string, plain: Buffer): Buffer;
  open(field: string, sealed: Buffer): Buffer;
}

/**
 * Envelope encryption: each row has its own AES-256-GCM data key, stored
 * wrapped by a key-encryption key named by its id. Re-wrapping a row changes
 * only its wrapped data key, never the data sealed under it. `row` names the
 * row (table, tenant, id) and is authenticated with the wrapping and every
 * field, so a sealed value or a wrapped key copied to another row does not open.
 */
export interface Keyring {
  readonly activeKid: string;
  has(kid: string): boolean;
  /** A fresh data key for `row`, and its wrapping under the active key (store both). */
  createDataKey(row: string): { dataKey: DataKey; wrapped: Buffer };
  openDataKey(wrapped: Buffer, row: string): DataKey;
  /** The key-encryption key a wrapped data key names. */
  kidOf(wrapped: Buffer): string;
  /** The same data key wrapped under the active key. */
  rewrap(wrapped: Buffer, row: string): Buffer;
  /** Opens the format before the keyring: iv ‖ tag ‖ data under the default key, no data key. */
  openLegacy(sealed: Buffer): Buffer;
}

export function createKeyring(keys: ReadonlyMap<string, Buffer>, activeKid: string): Keyring {
  const active = keys.get(activeKid);
  if (!active) throw new Error(`KEY_ENCRYPTION_KEY_ID "${activeKid}" is not one of the keys given`);
  for (const [kid, key] of keys) {
    if (!KEY_ID_PATTERN.test(kid)) throw new Error(`key id "${kid}" must match ${KEY_ID_PATTERN}`);
    if (key.length !== KEY_BYTES) throw new Error(`key "${kid}" must be the base64 of exactly ${KEY_BYTES} bytes`);
  }
  const kekOf = (kid: string) => {
    const key = keys.get(kid);
    if (!key) throw new UnknownKeyError(kid);
    return key;
  };
  const wrap = (dataKey: Buffer, kid: string, row: string) => {
    const header = wrapHeader(kid);
    return Buffer.concat([header, encrypt(kekOf(kid), dataKey, Buffer.concat([header, Buffer.from(row)]))]);
  };
  const unwrap = (wrapped: Buffer, row: string) => {
    const kid = kidOf(wrapped);
    const header = wrapped.subarray(0, 2 + Buffer.byteLength(kid));
    const key = decrypt(kekOf(kid), wrapped.subarray(header.length), Buffer.concat([header, Buffer.from(row)]));
    if (key.length !== KEY_BYTES) throw new SealedValueError("a wrapped data key has the wrong length");
    return key;
  };
  return {
    activeKid,
    has: (kid) => keys.has(kid),
    createDataKey(row) {
      const key = randomBytes(KEY_BYTES);
      return { dataKey: dataKeyOf(key, row), wrapped: wrap(key, activeKid, row) };
    },
    openDataKey: (wrapped, row) => dataKeyOf(unwrap(wrapped, row), row),
    kidOf,
    rewrap: (wrapped, row) => wrap(unwrap(wrapped, row), activeKid, row),
    openLegacy: (sealed) => decrypt(kekOf(DEFAULT_KEY_ID), sealed, Buffer.alloc(0)),
  };
}

// format ‖ kid length ‖ kid, authenticated with the wrapping so the named kid cannot be swapped.
function wrapHeader(kid: string): Buffer {
  const id = Buffer.from(kid);
  return Buffer.concat([Buffer.from([FORMAT, id.length]), id]);
}

function kidOf(wrapped: Buffer): string {
  if (wrapped.length < 2 || wrapped[0] !== FORMAT) throw new SealedValueError("not a wrapped data key");
  const length = wrapped[1] as number;
  if (wrapped.length < 2 + length + IV_BYTES + TAG_BYTES) throw new SealedValueError("a wrapped data key is truncated");
  return wrapped.subarray(2, 2 + length).toString();
}

function dataKeyOf(key: Buffer, row: string): DataKey {
  const aad = (field: string) => Buffer.from(`${row}\u0000${field}`);
  return {
    seal: (field, plain) => Buffer.concat([Buffer.from([FORMAT]), encrypt(key, plain, aad(field))]),
    open(field, sealed) {
      if (sealed[0] !== FORMAT) throw new SealedValueError(`${field} is not a sealed value`);
      return decrypt(key, sealed.subarray(1), aad(field));
    },
  };
}

/** iv ‖ tag ‖ ciphertext */
function encrypt(key: Buffer, plain: Buffer, aad: Buffer): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv(ALGORITHM, key, iv).setAAD(aad);
  const data = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), data]);
}

function decrypt(key: Buffer, sealed: Buffer, aad: Buffer): Buffer {
  if (sealed.length < IV_BYTES + TAG_BYTES) throw new SealedValueError("a sealed value is truncated");
  try {
    const decipher = createDecipheriv(ALGORITHM, key, sealed.subarray(0, IV_BYTES)).setAAD(aad);
    decipher.setAuthTag(sealed.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
    return Buffer.concat([decipher.update(sealed.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
  } catch {
    // GCM says only that it does not authenticate; which of tampering or a move it was cannot be told.
    throw new SealedValueError("a sealed value does not open: tampered with, or moved from another row or field");
  }
}
