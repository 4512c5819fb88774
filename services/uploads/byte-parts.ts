import { Readable } from "node:stream";
import { Code, ConnectError } from "@connectrpc/connect";

/**
 * Bytes per message of the streaming RPCs: far below gRPC's 4 MiB receive
 * limit, and about what a socket or a file read hands over at a time anyway,
 * so splitting rarely copies or waits.
 */
const PART_BYTES = 256 * 1024;

/** The bytes of `source` in order, in views of at most PART_BYTES (never copied, never gathered). */
export async function* partsOf(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    for (let at = 0; at < chunk.length; at += PART_BYTES) yield chunk.subarray(at, at + PART_BYTES);
  }
}

interface Parted {
  part: { case: string | undefined; value?: unknown };
}

/**
 * Splits a stream of one `head` message then `data` ones into the head and a
 * byte stream of the data, read from the messages only as it is consumed.
 */
export async function headAndBody<Head>(
  messages: AsyncIterable<Parted>,
  head: string,
): Promise<{ head: Head; body: Readable }> {
  const it = messages[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done || first.value.part.case !== head) {
    throw new ConnectError(`the first message must be the ${head}`, Code.InvalidArgument);
  }
  async function* data() {
    for (let next = await it.next(); !next.done; next = await it.next()) {
      const { part } = next.value;
      if (part.case !== "data" || !(part.value instanceof Uint8Array)) {
        throw new ConnectError(`only the first message may be the ${head}`, Code.InvalidArgument);
      }
      yield Buffer.from(part.value.buffer, part.value.byteOffset, part.value.byteLength);
    }
  }
  return { head: first.value.part.value as Head, body: Readable.from(data(), { objectMode: false }) };
}

/** Bytes chunk `n` of an upload must have: its chunk size, the last one the rest; invalid_argument out of range. */
export function chunkBytes(upload: { size: bigint; chunkSize: bigint; totalChunks: number }, n: number): bigint {
  const total = upload.totalChunks;
  if (!Number.isInteger(n) || n < 1 || n > total) {
    throw new ConnectError(`chunk_number: must be between 1 and ${total}`, Code.InvalidArgument);
  }
  return n < total ? upload.chunkSize : upload.size - upload.chunkSize * BigInt(total - 1);
}
