import { brotliCompressSync, constants, createBrotliCompress, createGzip, deflateSync, gzipSync } from "node:zlib";

/** Bytes that expand to `expandedBytes` of zeros, compressed without ever holding the expansion. */
export function bomb(encoding: "gzip" | "br", expandedBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const gzip =
      encoding === "gzip"
        ? createGzip({ level: 9 })
        : createBrotliCompress({ params: { [constants.BROTLI_PARAM_QUALITY]: 5 } });
    const parts: Buffer[] = [];
    gzip.on("data", (chunk: Buffer) => parts.push(chunk));
    gzip.on("end", () => resolve(Buffer.concat(parts)));
    gzip.on("error", reject);
    const mib = Buffer.alloc(1 << 20);
    for (let left = expandedBytes; left > 0; left -= mib.length) gzip.write(mib);
    gzip.end();
  });
}

/** A body in `encoding`, validly compressed or not. */
export function encodeBody(body: Uint8Array, encoding: string, valid: boolean): Uint8Array {
  if (!valid) return Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0]), Buffer.from(body)]);
  if (encoding === "gzip") return gzipSync(body);
  if (encoding === "br") return brotliCompressSync(body);
  if (encoding === "deflate") return deflateSync(body);
  return body;
}

/** The 5-byte envelope of Connect streaming and gRPC-Web messages (flag 1 = compressed). */
export function envelope(payload: Uint8Array, compressed: boolean, declaredLength = payload.length): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(compressed ? 1 : 0, 0);
  head.writeUInt32BE(declaredLength >>> 0, 1);
  return Buffer.concat([head, Buffer.from(payload)]);
}
