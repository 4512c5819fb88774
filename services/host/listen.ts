import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { createServer as createTlsServer } from "node:tls";
import type { TlsMaterial } from "../common/tls.js";

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;
type Http2Handler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;

export interface Listener {
  port: number;
  /** Present on TLS listeners: new connections get this certificate, open ones keep theirs. */
  setTls?(material: TlsMaterial): void;
  close(): Promise<void>;
}

/**
 * One port for HTTP/1.1 (REST, Connect, gRPC-Web) and HTTP/2 (gRPC, Connect).
 * In clear text the first bytes of a connection tell which (every HTTP/2
 * connection opens with "PRI * HTTP/2.0"); with TLS, ALPN does. A client
 * speaking plain HTTP to the TLS port fails the handshake and is dropped.
 */
export async function listenHttp1And2(
  handler: Handler,
  host: string,
  port: number,
  tls?: TlsMaterial,
): Promise<Listener> {
  const h1 = http.createServer({ keepAliveTimeout: 65_000 }, handler);
  const h2 = http2.createServer({}, handler as unknown as Http2Handler);
  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
  };
  let server: net.Server;
  let setTls: ((material: TlsMaterial) => void) | undefined;
  if (tls) {
    const secure = createTlsServer({ ...tls, ALPNProtocols: ["h2", "http/1.1"] }, (socket) =>
      (socket.alpnProtocol === "h2" ? h2 : h1).emit("connection", socket),
    );
    // The TCP sockets under the TLS ones: ending them at close ends both.
    secure.on("connection", track);
    setTls = (material) => secure.setSecureContext(material);
    server = secure;
  } else {
    server = net.createServer((socket) => {
      track(socket);
      socket.once("data", (first: Buffer) => {
        socket.pause();
        socket.unshift(first);
        (first.subarray(0, 3).toString("latin1") === "PRI" ? h2 : h1).emit("connection", socket);
        process.nextTick(() => socket.resume());
      });
    });
  }
  await listen(server, host, port);
  return {
    port: (server.address() as net.AddressInfo).port,
    ...(setTls ? { setTls } : {}),
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      h1.closeIdleConnections();
      for (const socket of sockets) socket.end();
      setTimeout(() => {
        for (const socket of sockets) socket.destroy();
      }, 2000).unref();
      await closed;
    },
  };
}

/** HTTP/2 only (cleartext, or TLS with TLS files): the internal gRPC port between split services. */
export async function listenHttp2(handler: Handler, host: string, port: number, tls?: TlsMaterial): Promise<Listener> {
  const h2Handler = handler as unknown as Http2Handler;
  const secure = tls ? http2.createSecureServer({ ...tls }, h2Handler) : undefined;
  const server = secure ?? http2.createServer({}, h2Handler);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => {
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
  });
  await listen(server, host, port);
  return {
    port: (server.address() as net.AddressInfo).port,
    ...(secure ? { setTls: (material: TlsMaterial) => secure.setSecureContext(material) } : {}),
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const session of sessions) session.close();
      setTimeout(() => {
        for (const session of sessions) session.destroy();
      }, 2000).unref();
      await closed;
    },
  };
}

function listen(server: net.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
}
