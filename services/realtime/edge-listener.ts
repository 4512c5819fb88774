import uWS from "uWebSockets.js";
import type { TlsFiles } from "../common/tls.js";

/** The edge's listening port, in clear text (`ws`) or TLS (`wss`). */
export interface EdgeListener {
  port: number;
  /**
   * Publishes to every app that may hold sockets: the listening one and those
   * drained by a reload. Returns how many sockets it was sent to.
   */
  publish(topic: string, message: string): number;
  /**
   * Serves new connections with the certificate files as they are now; open
   * sockets stay on the certificate they were made with. Throws, keeping the
   * current certificate, when the files cannot be used or the port not shared.
   */
  reloadTls(): void;
  stopListening(): void;
}

interface EdgeApp {
  app: uWS.TemplatedApp;
  sockets: number;
}

/**
 * uWebSockets.js cannot swap the certificate of a listening SSLApp (its SNI
 * table only helps clients that send a server name, and IP-literal clients do
 * not). A reload therefore builds a second SSLApp with the same routes and
 * lets it take over the port: uSockets listens with SO_REUSEPORT, so the new
 * listen socket opens before the old one closes and no connection attempt
 * finds the port shut. The old app keeps serving its open sockets until they
 * end; publishes reach every app that still has sockets.
 */
export function listenEdge<S>(options: {
  host: string;
  port: number;
  tls?: TlsFiles;
  wsPath: string;
  behavior: uWS.WebSocketBehavior<S>;
  /** Registers the plain HTTP routes on each app the listener builds. */
  routes(app: uWS.TemplatedApp): void;
}): EdgeListener {
  const apps = new Set<EdgeApp>();

  function build(): EdgeApp {
    const files = options.tls;
    const app = files ? uWS.SSLApp({ cert_file_name: files.certFile, key_file_name: files.keyFile }) : uWS.App();
    const entry: EdgeApp = { app, sockets: 0 };
    const { behavior } = options;
    app.ws<S>(options.wsPath, {
      ...behavior,
      open: (ws) => {
        entry.sockets++;
        behavior.open?.(ws);
      },
      close: (ws, code, message) => {
        entry.sockets--;
        behavior.close?.(ws, code, message);
        if (entry.sockets === 0 && entry !== current) apps.delete(entry);
      },
    });
    options.routes(app);
    return entry;
  }

  function listen(entry: EdgeApp, port: number): uWS.us_listen_socket | false {
    let token: uWS.us_listen_socket | false = false;
    // uWS calls back before listen() returns.
    entry.app.listen(options.host, port, (t) => {
      token = t;
    });
    return token;
  }

  let current = build();
  let listenSocket = listen(current, options.port);
  if (!listenSocket) throw new Error(`cannot listen on WS_PORT ${options.port}`);
  apps.add(current);
  const port = uWS.us_socket_local_port(listenSocket);

  return {
    port,
    publish(topic, message) {
      let recipients = 0;
      for (const entry of apps) {
        recipients += entry.app.numSubscribers(topic);
        entry.app.publish(topic, message, false);
      }
      return recipients;
    },
    reloadTls() {
      if (!options.tls || !listenSocket) return;
      const next = build();
      // Fails on a port bound as 0 (Linux shares only explicitly bound ports): the old listener stays.
      const token = listen(next, port);
      if (!token) throw new Error(`cannot open a second listen socket on WS_PORT ${port} for the new certificate`);
      uWS.us_listen_socket_close(listenSocket as uWS.us_listen_socket);
      const previous = current;
      current = next;
      listenSocket = token;
      apps.add(next);
      if (previous.sockets === 0) apps.delete(previous);
    },
    stopListening() {
      if (listenSocket) uWS.us_listen_socket_close(listenSocket);
      listenSocket = false;
    },
  };
}
