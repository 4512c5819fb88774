import type { DescService } from "@bufbuild/protobuf";
import { type ConnectRouter, createClient, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AuthService } from "../../gen/converger/v1/auth_pb.js";
import {
  type AccessOptions,
  type AuthFailure,
  createAuthenticator,
  type OperatorAction,
} from "../common/access/access.js";
import { createAdminSessionsClient } from "../common/access/admin-sessions-client.js";
import { createAddressMatcher } from "../common/access/cidr.js";
import { createDirectoryClient } from "../common/access/directory-client.js";
import { internalHeaders } from "../common/access/internal.js";
import { createMemoryLimiterStore, createRedisLimiterStore } from "../common/access/limiter-store.js";
import { createRateLimits, type RateLimits } from "../common/access/rate-limits.js";
import { createTokenVerifier, SIGNING_KEYS_TOPIC } from "../common/access/token-verifier.js";
import { type Config, type ServiceName, streamUrlOf } from "../common/config.js";
import type { Pool } from "../common/db/pool.js";
import { type Bus, createLocalBus } from "../common/events/bus.js";
import { createInProcessLog, type EventLog } from "../common/events/event-log.js";
import { createLogger, forService, type Logger } from "../common/obs/logger.js";
import type { ServiceModule } from "../common/service.js";
import { readCaFile, readTlsFiles } from "../common/tls.js";
import { consoleRoutes } from "../console/index.js";
import { createGatewayHandler, createInternalHandler, opsRoutes, proxyRoutes } from "../gateway/index.js";
import { startEdge } from "../realtime/index.js";
import { type EmbeddedDatabase, startEmbeddedPostgres } from "./db/embedded.js";
import { migrate } from "./db/migrate.js";
import { openServicePools } from "./db/pools.js";
import { createDirectTransport } from "./direct-transport.js";
import { createKafkaLog } from "./kafka-log.js";
import { listenHttp1And2, listenHttp2 } from "./listen.js";
import { createRedisBus } from "./redis-bus.js";
import { REGISTRY } from "./registry.js";
import { createTlsReloader } from "./tls-reload.js";
import { upstreamFailures } from "./upstream-failures.js";

export interface App {
  config: Config;
  log: Logger;
  bus: Bus;
  eventLog: EventLog;
  modules: ServiceModule[];
  /** Bound ports (useful when the config asked for port 0). */
  ports: { gateway?: number; grpc?: number; edge?: number };
  databaseUrl?: string | undefined;
  /** Each hosted service's own pool, confined to its schema (none for services without tables). */
  pools: ReadonlyMap<ServiceName, Pool>;
  /**
   * Re-reads TLS_CERT_FILE / TLS_KEY_FILE (SIGHUP): new connections on every
   * listener get the new certificate, open ones carry on. A bad file is logged
   * and the current certificate kept.
   */
  reloadTls(): void;
  stop(): Promise<void>;
}

// Audit writes are fire-and-forget; under a flood of bad credentials we drop
// rather than queue without bound (and say so in the log).
const MAX_AUDIT_IN_FLIGHT = 100;
// gRPC's own default receive limit; calls between our services stay far below it.
const INTERNAL_BODY_LIMIT_BYTES = 4 * 1024 * 1024;

/**
 * Starts the services this process hosts (config.services): database and
 * migrations, service modules, then the listeners. Services hosted elsewhere
 * are reached over gRPC; the same code runs either way.
 */
export async function startApp(config: Config, root: Logger = createLogger(config.logLevel)): Promise<App> {
  const log = forService(root, "app");
  const cleanups: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const cleanup of cleanups.reverse()) {
      await cleanup().catch((error) => log.error({ err: error }, "shutdown step failed"));
    }
  };
  try {
    // First, so that a bad certificate ends the start before a database is opened.
    const tls = config.tls ? readTlsFiles(config.tls) : undefined;
    const ca = config.tlsCaFile ? readCaFile(config.tlsCaFile) : undefined;
    const tlsListeners = createTlsReloader(config, log);
    const hosted = config.services.filter((name) => name !== "gateway" && REGISTRY[name]);
    const owners = hosted.filter((name) => REGISTRY[name]?.migrations);
    const { pools, databaseUrl } = owners.length > 0 ? await openDatabase(config, owners, log, cleanups) : {};
    for (const [name, pool] of pools ?? []) await migrate(pool, name, REGISTRY[name]!.migrations!.dir, log);

    const bus = config.redisUrl
      ? await createRedisBus(config.redisUrl, forService(root, "bus"))
      : createLocalBus((error) => log.error({ err: error }, "bus subscriber failed"));
    cleanups.push(() => bus.close());
    const limiters = config.redisUrl
      ? createRedisLimiterStore(config.redisUrl, forService(root, "limits"))
      : createMemoryLimiterStore();
    cleanups.push(() => limiters.close());
    const eventLog = createEventLog(config, hosted, forService(root, "events"));
    // Closed after the modules stopped (cleanups run in reverse).
    cleanups.push(() => eventLog.close());
    const modules: ServiceModule[] = [];
    const ports: App["ports"] = {};
    const localRoutes = (router: ConnectRouter) => {
      for (const m of modules) m.routes(router);
    };
    const transportFor = transports(config, hosted, createDirectTransport(localRoutes), ca, log);
    const rateLimits = createRateLimits(limiters, config.rateLimits, forService(root, "limits"));
    const access = accessOptions(config, bus, transportFor, rateLimits, log);
    const authenticate = createAuthenticator(access);
    for (const name of hosted) {
      const pool = pools?.get(name);
      const edgePort = () => ports.edge ?? config.wsPort;
      const shared = { bus, eventLog, log: root, config, access, transportFor, limiters, edgePort };
      modules.push(REGISTRY[name]!.create(pool === undefined ? shared : { ...shared, pool }));
    }
    cleanups.push(async () => {
      for (const m of modules) await m.stop();
    });
    for (const m of modules) await m.start?.();

    let listening = false;
    if (modules.length > 0) {
      const grpc = await listenHttp2(
        createInternalHandler({
          routes: localRoutes,
          trustedProxies: config.trustedProxies,
          bodyLimitBytes: INTERNAL_BODY_LIMIT_BYTES,
          authenticate,
          log: forService(root, "grpc"),
        }),
        config.host,
        config.grpcPort,
        tls,
      );
      cleanups.push(() => grpc.close());
      if (grpc.setTls) tlsListeners.add("grpc", grpc.setTls);
      ports.grpc = grpc.port;
    }
    if (config.services.includes("realtime")) {
      const edge = await startEdge({
        config,
        access,
        bus,
        conversationsTransport: transportFor("conversations"),
        log: forService(root, "realtime"),
      });
      cleanups.push(() => edge.close());
      ports.edge = edge.port;
      // uWS reads the files itself (it takes paths); readTlsFiles has checked them just before.
      if (tls) tlsListeners.add("edge", () => edge.reloadTls());
    }
    if (config.services.includes("gateway")) {
      const services: { desc: DescService; transport: Transport }[] = [];
      const remote: typeof services = [];
      const rawRoutes = [
        ...consoleRoutes({
          authTransport: transportFor("auth"),
          sessions: access.adminSessions,
          publicOrigin: access.publicOrigin,
          streamUrl: () => streamUrlOf(config, ports.edge ?? config.wsPort),
          secure: tls !== undefined,
        }),
        ...opsRoutes({
          modules,
          bus,
          isListening: () => listening,
          metricsAllowed: createAddressMatcher(config.adminAllowedIps),
        }),
      ];
      for (const [name, registration] of Object.entries(REGISTRY)) {
        const transport = transportFor(name as ServiceName);
        const entries = registration.services.map((desc) => ({ desc, transport }));
        services.push(...entries);
        if (!hosted.includes(name as ServiceName)) remote.push(...entries);
        rawRoutes.push(...(registration.rawRoutes?.(transport, config) ?? []));
      }
      const handler = createGatewayHandler({
        services,
        routes: (router) => {
          localRoutes(router);
          proxyRoutes(router, remote);
        },
        rawRoutes,
        trustedProxies: config.trustedProxies,
        jsonBodyLimitBytes: config.jsonBodyLimitBytes,
        authenticate,
        corsOrigins: config.corsOrigins,
        adminAllowed: createAddressMatcher(config.adminAllowedIps),
        strictTransportSecurity: tls !== undefined,
        log: forService(root, "gateway"),
      });
      const gateway = await listenHttp1And2(handler, config.host, config.port, tls);
      cleanups.push(() => gateway.close());
      if (gateway.setTls) tlsListeners.add("gateway", gateway.setTls);
      ports.gateway = gateway.port;
    }
    listening = true;
    const reloadTls = () => tlsListeners.reload();
    const servicePools = pools ?? new Map();
    return { config, log: root, bus, eventLog, modules, ports, databaseUrl, pools: servicePools, reloadTls, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Kafka when KAFKA_BROKERS is set; otherwise the outbox feeds consumers in this
 * process, which therefore must host the writer (conversations) too.
 */
function createEventLog(config: Config, hosted: ServiceName[], log: Logger): EventLog {
  if (config.kafkaBrokers.length > 0) {
    return createKafkaLog({
      brokers: config.kafkaBrokers,
      clientId: `converger-${hosted.join("-") || "gateway"}`,
      idempotent: config.kafkaIdempotent,
      partitions: config.kafkaPartitions,
      sessionTimeoutMs: config.kafkaSessionTimeoutMs,
      retryBaseMs: config.processingRetryBaseMs,
      log,
    });
  }
  if (hosted.includes("delivery") && !hosted.includes("conversations")) {
    throw new Error("the delivery service needs KAFKA_BROKERS unless it runs with the conversations service");
  }
  return createInProcessLog({ retryBaseMs: config.processingRetryBaseMs, log });
}

/** The database, and one pool per service with tables (owners), each in its own schema. */
async function openDatabase(config: Config, owners: ServiceName[], log: Logger, cleanups: (() => Promise<void>)[]) {
  let embedded: EmbeddedDatabase | undefined;
  if (!config.databaseUrl) {
    embedded = await startEmbeddedPostgres(config.dataDir, log);
    const db = embedded;
    cleanups.push(() => db.stop());
  }
  const databaseUrl = (config.databaseUrl ?? embedded?.url) as string;
  // pg attaches the whole client to these errors: log what an operator needs, not the object graph.
  const pools = openServicePools(databaseUrl, owners, (error) =>
    log.warn({ code: (error as { code?: string }).code, reason: error.message }, "idle database connection lost"),
  );
  cleanups.push(async () => {
    await Promise.all([...pools.values()].map((pool) => pool.end()));
  });
  return { pools, databaseUrl };
}

/**
 * In-process for hosted services, gRPC to `<NAME>_GRPC_URL` (or GRPC_UPSTREAM) otherwise;
 * https upstreams are verified against TLS_CA_FILE when set, else the system CAs.
 */
function transports(config: Config, hosted: ServiceName[], local: Transport, ca: Buffer | undefined, log: Logger) {
  const remote = new Map<ServiceName, Transport>();
  return (name: ServiceName): Transport => {
    if (hosted.includes(name)) return local;
    let transport = remote.get(name);
    if (!transport) {
      const baseUrl = config.upstreams[name] ?? `http://127.0.0.1:${config.grpcPort}`;
      if (config.tls && baseUrl.startsWith("http:")) log.warn({ service: name, baseUrl }, "upstream in clear text");
      transport = createGrpcTransport({
        baseUrl,
        interceptors: [upstreamFailures(name, log)],
        ...(ca ? { nodeOptions: { ca } } : {}),
      });
      remote.set(name, transport);
    }
    return transport;
  };
}

/** Credentials and tokens are checked the same way in every service of the process. */
function accessOptions(
  config: Config,
  bus: Bus,
  transportFor: (name: ServiceName) => Transport,
  rateLimits: RateLimits,
  log: Logger,
): AccessOptions {
  const auth = createClient(AuthService, transportFor("auth"));
  const headers = internalHeaders(config.internalToken);
  let inFlight = 0;
  const audit = (failure: AuthFailure) => {
    if (inFlight >= MAX_AUDIT_IN_FLIGHT)
      return log.warn({ kind: failure.kind }, "audit backlog full; failure not recorded");
    inFlight++;
    auth
      .recordAuthFailure(failure, { headers })
      .catch((error: unknown) => log.warn({ err: error }, "audit record failed"))
      .finally(() => inFlight--);
  };
  let actionsInFlight = 0;
  const auditAction = (action: OperatorAction) => {
    if (actionsInFlight >= MAX_AUDIT_IN_FLIGHT)
      return log.warn({ action: action.action }, "audit backlog full; operator action not recorded");
    actionsInFlight++;
    auth
      .recordOperatorAction(action, { headers })
      .catch((error: unknown) => log.warn({ err: error }, "audit record failed"))
      .finally(() => actionsInFlight--);
  };
  const verifier = createTokenVerifier({
    issuer: config.publicUrl,
    fetchKeys: async () => (await auth.getJwks({})).keys as never,
  });
  bus.subscribe(SIGNING_KEYS_TOPIC, () => verifier.forget());
  return {
    adminToken: config.adminToken,
    adminAllowedIps: config.adminAllowedIps,
    internalToken: config.internalToken,
    directory: createDirectoryClient(transportFor("conversations"), config.internalToken, bus),
    verifier,
    audit,
    auditAction,
    adminSessions: createAdminSessionsClient(transportFor("auth"), config.internalToken),
    publicOrigin: new URL(config.publicUrl).origin,
    rateLimits,
  };
}
