import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { UploadsService, type WriteChunkRequest } from "../gen/converger/v1/uploads_pb.js";
import { createDirectTransport } from "../services/host/direct-transport.js";

const UPLOAD_ID = "7d0e4d4c-1f63-4b53-8f7d-3f3b1c1f0a11";

describe("the in-process transport, streaming", () => {
  it("hands a client stream to its handler message by message, as the caller produces them", async () => {
    let handlerSaw: () => void = () => undefined;
    const sawFirst = new Promise<void>((resolve) => {
      handlerSaw = resolve;
    });
    const transport = createDirectTransport((router) => {
      router.service(UploadsService, {
        async writeChunk(requests: AsyncIterable<WriteChunkRequest>) {
          const cases: string[] = [];
          for await (const request of requests) {
            cases.push(request.part.case ?? "");
            handlerSaw();
          }
          return { chunksReceived: [cases.length] };
        },
      });
    });
    // The second message waits for the handler to have seen the first: a transport gathering
    // the whole stream before calling the handler never answers.
    async function* messages() {
      yield { part: { case: "target" as const, value: { uploadId: UPLOAD_ID, chunkNumber: 1 } } };
      await sawFirst;
      yield { part: { case: "data" as const, value: new Uint8Array(3) } };
    }
    const answer = await createClient(UploadsService, transport).writeChunk(messages());
    expect(answer.chunksReceived).toEqual([2]);
  });

  it("runs a client-streaming handler inside the interceptors, which see its failure, and the caller gets its code", async () => {
    const seen: Code[] = [];
    const observe: Interceptor = (next) => async (req) => {
      try {
        return await next(req);
      } catch (error) {
        seen.push(ConnectError.from(error).code);
        throw error;
      }
    };
    const transport = createDirectTransport((router) => {
      router.service(
        UploadsService,
        {
          async writeChunk(requests: AsyncIterable<WriteChunkRequest>) {
            for await (const _ of requests) throw new ConnectError("chunk too long", Code.InvalidArgument);
            return {};
          },
        },
        { interceptors: [observe] },
      );
    });
    async function* messages() {
      yield { part: { case: "data" as const, value: new Uint8Array(1) } };
    }
    const call = createClient(UploadsService, transport).writeChunk(messages());
    await expect(call).rejects.toMatchObject({ code: Code.InvalidArgument, rawMessage: "chunk too long" });
    expect(seen).toEqual([Code.InvalidArgument]);
  });

  it("streams a server stream as it is read and tells its handler when the caller gives up", async () => {
    let aborted: () => void = () => undefined;
    const handlerAborted = new Promise<void>((resolve) => {
      aborted = resolve;
    });
    const transport = createDirectTransport((router) => {
      router.service(UploadsService, {
        async *readFile(_req, ctx) {
          ctx.signal.addEventListener("abort", () => aborted(), { once: true });
          yield { part: { case: "opened", value: {} } };
          // Never ends by itself: only the caller's abort stops it.
          for (;;) {
            yield { part: { case: "data", value: new Uint8Array(1) } };
            await new Promise((resolve) => setImmediate(resolve));
          }
        },
      });
    });
    const abort = new AbortController();
    const parts = createClient(UploadsService, transport)
      .readFile({ fileId: UPLOAD_ID }, { signal: abort.signal })
      [Symbol.asyncIterator]();
    expect((await parts.next()).value?.part.case).toBe("opened");
    expect((await parts.next()).value?.part.case).toBe("data");
    abort.abort();
    await handlerAborted;
  });
});
