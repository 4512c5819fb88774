import WebSocket from "ws";

// biome-ignore lint/suspicious/noExplicitAny: frames are arbitrary JSON that tests pick apart
export type Frame = Record<string, any>;

export interface TestSocket {
  ws: WebSocket;
  frames: Frame[];
  /** Resolves with the first frame (received so far or later) that matches. */
  next(match: (frame: Frame) => boolean, timeoutMs?: number): Promise<Frame>;
  /** Waits until `count` frames match. */
  collect(match: (frame: Frame) => boolean, count: number, timeoutMs?: number): Promise<Frame[]>;
  send(frame: unknown): void;
  closed: Promise<{ code: number; reason: string }>;
}

/** Opens a socket and resolves once it is open, or rejects with the HTTP status of a refused upgrade. */
export function openSocket(
  url: string,
  options: { protocols?: string[]; origin?: string; headers?: Record<string, string> } = {},
): Promise<TestSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options.protocols ?? [], {
      ...(options.origin ? { origin: options.origin } : {}),
      headers: options.headers,
    });
    const frames: Frame[] = [];
    const waiters = new Set<() => void>();
    ws.on("message", (data) => {
      frames.push(JSON.parse(data.toString()));
      for (const wake of waiters) wake();
    });
    let closedWith: { code: number; reason: string } | undefined;
    const closed = new Promise<{ code: number; reason: string }>((done) =>
      ws.on("close", (code, reason) => {
        closedWith = { code, reason: reason.toString() };
        done(closedWith);
        for (const wake of waiters) wake();
      }),
    );
    ws.on("unexpected-response", (_req, res) =>
      reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode })),
    );
    ws.on("error", (error) => reject(error));
    ws.on("open", () => {
      const collect = (match: (f: Frame) => boolean, count: number, timeoutMs = 5000) =>
        new Promise<Frame[]>((done, fail) => {
          const check = () => {
            const found = frames.filter(match);
            if (found.length >= count) {
              waiters.delete(check);
              clearTimeout(timer);
              done(found.slice(0, count));
            } else if (closedWith) {
              // No frame comes after the close: say so now, with its code, rather than time out.
              waiters.delete(check);
              clearTimeout(timer);
              const { code, reason } = closedWith;
              fail(
                new Error(
                  `socket closed (${code} ${reason}) with ${found.length} of ${count} frames; got ${JSON.stringify(frames.slice(-5))}`,
                ),
              );
            }
          };
          const timer = setTimeout(() => {
            waiters.delete(check);
            fail(new Error(`timed out waiting for ${count} frames; got ${JSON.stringify(frames.slice(-5))}`));
          }, timeoutMs);
          waiters.add(check);
          check();
        });
      resolve({
        ws,
        frames,
        collect,
        next: async (match, timeoutMs) => (await collect(match, 1, timeoutMs))[0] as Frame,
        send: (frame) => ws.send(typeof frame === "string" ? frame : JSON.stringify(frame)),
        closed,
      });
    });
  });
}
