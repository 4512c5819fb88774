/**
 * Above this a Blob is not read into memory to hash it: WebCrypto has no
 * incremental digest, so hashing means holding every byte at once. Such a
 * file is declared without `sha256` (the API makes it optional) unless the
 * caller passes one; the server still checks the merged size and stores the
 * SHA-256 of what it merged, which the resolved File carries.
 */
const HASH_IN_MEMORY_MAX_BYTES = 64 * 1024 * 1024;

/** What the chunks are cut from: bytes already in memory, or a Blob read slice by slice. */
export type UploadBytes = Blob | Uint8Array;

export function byteLength(data: UploadBytes): number {
  return data instanceof Uint8Array ? data.byteLength : data.size;
}

/**
 * Bytes `start` to `end` (exclusive), without copying: a view of an array or
 * a lazy Blob slice. fetch sends no view of a SharedArrayBuffer, so that
 * one alone is copied.
 */
export function sliceOf(data: UploadBytes, start: number, end: number): Uint8Array<ArrayBuffer> | Blob {
  if (!(data instanceof Uint8Array)) return data.slice(start, end);
  const view = data.subarray(start, end);
  return view.buffer instanceof ArrayBuffer ? (view as Uint8Array<ArrayBuffer>) : new Uint8Array(view);
}

/**
 * The bytes to send and their hex SHA-256 when it can be had cheaply. A Blob
 * small enough to hash is read once and its bytes are then sent from memory,
 * so no byte is read twice; a larger one stays a Blob and goes unhashed.
 */
export async function prepareSource(data: UploadBytes): Promise<{ bytes: UploadBytes; sha256: string | undefined }> {
  if (data instanceof Uint8Array) return { bytes: data, sha256: await sha256Hex(data) };
  if (data.size > HASH_IN_MEMORY_MAX_BYTES) return { bytes: data, sha256: undefined };
  const bytes = new Uint8Array(await data.arrayBuffer());
  return { bytes, sha256: await sha256Hex(bytes) };
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await globalThis.crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A File's own name and type when the data is one (browsers' `<input type=file>`, Node 20's `File`). */
export function describedBy(data: UploadBytes): { name: string | undefined; type: string | undefined } {
  if (data instanceof Uint8Array) return { name: undefined, type: undefined };
  const name = "name" in data && typeof data.name === "string" && data.name !== "" ? data.name : undefined;
  return { name, type: data.type || undefined };
}
