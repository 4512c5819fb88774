import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import WebSocket, { WebSocketServer } from "ws";

// biome-ignore lint/suspicious/noExplicitAny: frames are arbitrary JSON that tests pick apart
type Frame = Record<string, any>;

export interface ProxiedSocket {
  client: WebSocket;
  upstream: WebSocket;
}

/** Return false to hold a frame back (it never reaches the other side). */
export interface ProxyHooks {
  toClient?(frame: Frame, socket: ProxiedSocket): boolean;
  toServer?(frame: Frame, socket: ProxiedSocket): boolean;
}

// Codes a peer may not send in a close frame: the proxy cuts the socket instead.
const UNSENDABLE = new Set([1005, 1006, 1015]);

/**
 * A WebSocket proxy in front of the real edge: every client socket gets its
 * own upstream socket with the same path, query and subprotocols, and a
 * refused upgrade is refused with the edge's status. The hooks see each frame,
 * so a test can lose an ack or close a socket at an exact point of the protocol.
 */
export async function startEdgeProxy(edgeUrl: string, hooks: ProxyHooks = {}) {
  const sockets: ProxiedSocket[] = [];
  const wss = new WebSocketServer({
    noServer: true,
    handleProtocols: (_offered, req: IncomingMessage & { upstreamProtocol?: string }) => req.upstreamProtocol ?? false,
  });
  const server = createServer();
  server.on("upgrade", (req: IncomingMessage & { upstreamProtocol?: string }, socket, head) => {
    const offered = (req.headers["sec-websocket-protocol"] ?? "")
      .split(",")
      .map((p) => p.trim())
      .filter(Boolean);
    const upstream = new WebSocket(new URL(req.url ?? "/", edgeUrl), offered);
    upstream.once("unexpected-response", (_req, res) => {
      socket.end(`HTTP/1.1 ${res.statusCode} ${res.statusMessage}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    });
    upstream.once("error", () => socket.destroy());
    upstream.once("open", () => {
      req.upstreamProtocol = upstream.protocol;
      wss.handleUpgrade(req, socket, head, (client) => relay({ client, upstream }));
    });
  });
  function relay(pair: ProxiedSocket) {
    sockets.push(pair);
    const { client, upstream } = pair;
    const pass = (from: WebSocket, to: WebSocket, hook: ProxyHooks["toClient"]) =>
      from.on("message", (data, isBinary) => {
        if (hook && !isBinary && !hook(JSON.parse(data.toString()), pair)) return;
        if (to.readyState === WebSocket.OPEN) to.send(data, { binary: isBinary });
      });
    pass(upstream, client, hooks.toClient);
    pass(client, upstream, hooks.toServer);
    const mirror = (from: WebSocket, to: WebSocket) =>
      from.on("close", (code, reason) => {
        if (to.readyState !== WebSocket.OPEN) return to.terminate();
        if (UNSENDABLE.has(code)) to.terminate();
        else to.close(code, reason);
      });
    mirror(upstream, client);
    mirror(client, upstream);
  }
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}/ws`,
    sockets,
    /** Closes every open client socket with `code`, as the edge would. */
    closeAll(code: number, reason = "") {
      for (const { client } of sockets) if (client.readyState === WebSocket.OPEN) client.close(code, reason);
    },
    async stop() {
      for (const { client, upstream } of sockets) {
        client.terminate();
        upstream.terminate();
      }
      wss.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
