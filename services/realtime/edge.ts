import type uWS from "uWebSockets.js";
import { create } from "@bufbuild/protobuf";
import { type Client, createClient, type Transport } from "@connectrpc/connect";
import { ConversationsService } from "../../gen/converger/v1/conversations_pb.js";
import { ConnectionEstablishedFrameSchema } from "../../gen/converger/v1/frames_pb.js";
import type { AccessOptions } from "../common/access/access.js";
import { clientAddress, createAddressMatcher } from "../common/access/cidr.js";
import { CLIENT_IP_HEADER } from "../common/access/context.js";
import type { Config } from "../common/config.js";
import { type Bus, type BusFrame, tenantTopic } from "../common/events/bus.js";
import type { Logger } from "../common/obs/logger.js";
import { authenticateEdge, tokenOf, UpgradeError, userKeyOf } from "./edge-auth.js";
import { listenEdge } from "./edge-listener.js";
import { edgeOpsRoutes } from "./edge-routes.js";
import { createExpiryWheel, type ExpiryWheel } from "./expiry-wheel.js";
import { CLOSE, encodeServerFrame, type ServerFrame } from "./frames.js";
import { countClose, markIfLeftBehind, reportEdge, wsFramesTotal } from "./metrics.js";
import { handleFrame } from "./session-frames.js";
import { newSocketState, type SocketState, without } from "./socket-state.js";
import { openConversationStream } from "./stream.js";
import { createTopicBridge } from "./topic-bridge.js";

const MAX_FRAME_BYTES = 64 * 1024;
// Past this much unsent data a consumer is too slow: it is closed and resumes by watermark.
const MAX_BACKPRESSURE_BYTES = 1024 * 1024;
const IDLE_TIMEOUT_S = 60;

export type EdgeSocket = uWS.WebSocket<SocketState>;

export interface EdgeContext {
  conversations: Client<typeof ConversationsService>;
  access: AccessOptions;
  config: Config;
  log: Logger;
  send(ws: EdgeSocket, frame: ServerFrame): boolean;
  /** Sends a frame already encoded (one from the bus, or from the stream). */
  sendEncoded(ws: EdgeSocket, frame: BusFrame): boolean;
  /** Joins a topic's live feed; `at` is where the socket stands in a conversation's seqs. */
  join(ws: EdgeSocket, topic: string, at?: bigint): void;
  leave(ws: EdgeSocket, topic: string): void;
  headersFor(state: SocketState): Headers;
  /** Closes sockets whose token expired (4408) unless a fresh token moved their expiry. */
  expiries: ExpiryWheel<EdgeSocket>;
  /** Streams a conversation to the socket from `watermark` (see stream.ts), as the socket's user. */
  stream(ws: EdgeSocket, conversationId: string, watermark: string | undefined): Promise<void>;
}

/**
 * The WebSocket edge (design.md §4) on uWebSockets.js: authenticates at
 * upgrade (a bad token never gets a socket), streams conversations with
 * gap-free resume, accepts publishes with durable acks, and fans live frames
 * out through uWS pub/sub fed by the bus.
 */
export async function startEdge(options: {
  config: Config;
  access: AccessOptions;
  bus: Bus;
  conversationsTransport: Transport;
  log: Logger;
}) {
  const { config, access, log } = options;
  const bridge = createTopicBridge(options.bus, {
    publish: (topic, frame) => wsFramesTotal.inc(OUT, listener.publish(topic, JSON.stringify(frame))),
    interrupt: (topic) => resumeFollowers(topic),
  });
  // Open sockets per user and per tenant, for the caps (counted on this edge).
  const perUser = new Map<string, number>();
  const expiries = createExpiryWheel<EdgeSocket>((ws) => {
    const state = ws.getUserData();
    if (state.closed) return;
    if (state.expiresAt > Date.now()) expiries.schedule(ws, state.expiresAt);
    else ws.end(CLOSE.tokenExpired, "token expired");
  });
  const perTenant = new Map<string, number>();
  const sockets = new Set<EdgeSocket>();
  const isTrustedProxy = createAddressMatcher(config.trustedProxies);
  const metricsAllowed = createAddressMatcher(config.adminAllowedIps);
  // The same client address the gateway sees: X-Forwarded-For only from TRUSTED_PROXIES.
  const addressOf = (res: uWS.HttpResponse, req: uWS.HttpRequest) =>
    clientAddress(
      Buffer.from(res.getRemoteAddressAsText()).toString(),
      req.getHeader("x-forwarded-for") || undefined,
      isTrustedProxy,
    );
  const allowedOrigins = new Set([new URL(config.publicUrl).origin, ...config.wsAllowedOrigins]);
  let closing = false;
  let subscriptionCount = 0;
  const stopReporting = reportEdge({ connections: () => sockets.size, subscriptions: () => subscriptionCount });

  const ctx: EdgeContext = {
    conversations: createClient(ConversationsService, options.conversationsTransport),
    access,
    config,
    log,
    send(ws, frame) {
      return ctx.sendEncoded(ws, encodeServerFrame(frame));
    },
    sendEncoded(ws, frame) {
      const state = ws.getUserData();
      if (state.closed) return false;
      // 2 = dropped over maxBackpressure: uWS closes such a socket itself (later, as 1006).
      const sent = ws.send(JSON.stringify(frame), false) !== 2;
      if (sent) wsFramesTotal.inc(OUT);
      else state.backpressured = true;
      return sent;
    },
    join(ws, topic, at) {
      const state = ws.getUserData();
      if (state.closed || state.subscriptions.includes(topic)) return;
      const shared = bridge.retain(topic, at);
      state.subscriptions = [...state.subscriptions, shared];
      subscriptionCount++;
      ws.subscribe(shared);
    },
    leave(ws, topic) {
      const state = ws.getUserData();
      if (!state.subscriptions.includes(topic)) return;
      state.subscriptions = without(state.subscriptions, topic);
      subscriptionCount--;
      if (!state.closed) ws.unsubscribe(topic);
      bridge.release(topic);
    },
    headersFor(state) {
      return new Headers({ authorization: `Bearer ${state.token}`, [CLIENT_IP_HEADER]: state.ip });
    },
    stream(ws, conversationId, watermark) {
      const state = ws.getUserData();
      return openConversationStream({
        socket: {
          send: (frame) => ctx.sendEncoded(ws, frame),
          livePosition: (topic) => bridge.position(topic),
          join: (topic, at) => ctx.join(ws, topic, at),
          interruptLive: (topic) => bridge.interrupt(topic),
        },
        conversations: ctx.conversations,
        headers: ctx.headersFor(state),
        bus: options.bus,
        conversationId,
        tenantId: state.principal.tenantId,
        ...(watermark === undefined ? {} : { watermark }),
        established: true,
      });
    },
    expiries,
  };

  const behavior: uWS.WebSocketBehavior<SocketState> = {
    maxPayloadLength: MAX_FRAME_BYTES,
    maxBackpressure: MAX_BACKPRESSURE_BYTES,
    // Typed as a number in this build's .d.ts, read as a boolean by the addon.
    closeOnBackpressureLimit: true as unknown as number,
    idleTimeout: IDLE_TIMEOUT_S,
    sendPingsAutomatically: true,
    upgrade: async (res, req, context) => {
      let aborted = false;
      res.onAborted(() => {
        aborted = true;
      });
      // Everything from here runs inside the boundary: uWS drops the promise, so nothing may reject.
      try {
        const key = req.getHeader("sec-websocket-key");
        const extensions = req.getHeader("sec-websocket-extensions");
        const origin = req.getHeader("origin");
        const query = new URLSearchParams(req.getQuery() ?? "");
        const { token, protocol } = tokenOf(query, req.getHeader("sec-websocket-protocol"));
        const ip = addressOf(res, req);
        if (closing) throw new UpgradeError("503 Service Unavailable", "shutting down");
        if (origin && !allowedOrigins.has(origin)) throw new UpgradeError("403 Forbidden", "origin not allowed");
        // Bad tokens count as failed authentications of the address, as on the gateway.
        const failureKey = `ip:${ip}`;
        if (access.rateLimits.authBlockedMs(failureKey) > 0) {
          throw new UpgradeError("429 Too Many Requests", "too many failed authentications from here");
        }
        const { principal, expiresAt } = await authenticateEdge(token, access.verifier, access.directory).catch(
          async (error: unknown) => {
            if (error instanceof UpgradeError && error.status.startsWith("401")) {
              await access.rateLimits.recordAuthFailure(failureKey);
            }
            throw error;
          },
        );
        const state = newSocketState(principal, token as string, expiresAt, ip, query);
        const userKey = userKeyOf(principal);
        if ((perUser.get(userKey) ?? 0) >= config.wsMaxConnectionsPerUser) {
          throw new UpgradeError("429 Too Many Requests", "too many connections for this user");
        }
        if ((perTenant.get(principal.tenantId) ?? 0) >= config.wsMaxConnectionsPerTenant) {
          throw new UpgradeError("429 Too Many Requests", "too many connections for this tenant");
        }
        if (aborted) return;
        // Counted here, in the same turn as the checks: a burst of upgrades cannot all pass the cap
        // while each waits for its token check (close() gives the place back).
        count(perUser, userKey, 1);
        count(perTenant, state.principal.tenantId, 1);
        res.cork(() => res.upgrade(state, key, protocol, extensions, context));
      } catch (error) {
        if (!(error instanceof UpgradeError)) log.error({ err: error }, "upgrade failed");
        if (aborted) return;
        const status = error instanceof UpgradeError ? error.status : "500 Internal Server Error";
        const message = error instanceof UpgradeError ? error.message : "internal error";
        res.cork(() => res.writeStatus(status).end(message));
      }
    },
    open: (ws) => {
      const state = ws.getUserData();
      sockets.add(ws);
      expiries.schedule(ws, state.expiresAt);
      void openStreams(ws).catch((error) => {
        log.warn({ err: error }, "stream failed to open");
        if (!state.closed) ws.end(CLOSE.forbidden, "stream unavailable");
      });
    },
    subscription: (ws, _topic, newCount, oldCount) => {
      if (newCount < oldCount) markIfLeftBehind(ws, MAX_BACKPRESSURE_BYTES);
    },
    message: (ws, data, isBinary) => {
      wsFramesTotal.inc(IN);
      // `data` is only valid during this call: handleFrame parses it before its first await.
      handleFrame(ctx, ws, data, isBinary).catch((error: unknown) => log.error({ err: error }, "frame failed"));
    },
    close: (ws, code, message) => {
      const state = ws.getUserData();
      state.closed = true;
      countClose(code, message, state.backpressured);
      subscriptionCount -= state.subscriptions.length;
      sockets.delete(ws);
      expiries.cancel(ws);
      for (const topic of state.subscriptions) bridge.release(topic);
      count(perUser, userKeyOf(state.principal), -1);
      count(perTenant, state.principal.tenantId, -1);
    },
  };

  /** Live frames of `topic` were lost: its followers reconnect and resume by watermark. */
  function resumeFollowers(topic: string): void {
    for (const ws of sockets) {
      if (ws.getUserData().subscriptions.includes(topic))
        ws.end(CLOSE.goingAway, "live feed interrupted; resume by watermark");
    }
  }

  async function openStreams(ws: EdgeSocket): Promise<void> {
    const state = ws.getUserData();
    const { principal } = state;
    if (principal.kind === "end_user") return ctx.stream(ws, principal.conversationId, state.watermark);
    ctx.send(ws, create(ConnectionEstablishedFrameSchema, { tenantId: principal.tenantId, watermark: 0n }));
    if (state.feedTenant) ctx.join(ws, tenantTopic(state.feedTenant));
  }

  const listener = listenEdge({
    host: config.host,
    port: config.wsPort,
    ...(config.tls ? { tls: config.tls } : {}),
    wsPath: "/ws",
    behavior,
    routes: (app) =>
      edgeOpsRoutes(app, {
        closing: () => closing,
        sockets: () => sockets.size,
        clientIp: (res, req) => addressOf(res, req),
        metricsAllowed,
      }),
  });

  return {
    port: listener.port,
    /** New connections get the certificate files as they are now (see edge-listener.ts); throws on bad files. */
    reloadTls: () => listener.reloadTls(),
    /** Stops accepting, tells every client to reconnect elsewhere (1001), and returns once closed. */
    async close(): Promise<void> {
      closing = true;
      listener.stopListening();
      for (const ws of [...sockets]) ws.end(CLOSE.goingAway, "server going away");
      bridge.close();
      expiries.close();
      stopReporting();
    },
  };
}

const IN = { direction: "in" } as const;
const OUT = { direction: "out" } as const;

function count(counts: Map<string, number>, key: string, delta: number): void {
  const next = (counts.get(key) ?? 0) + delta;
  if (next > 0) counts.set(key, next);
  else counts.delete(key);
}
