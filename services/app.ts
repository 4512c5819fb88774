import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { type Bus, createLocalBus } from "./common/bus.js";
import type { Config } from "./common/config.js";
import { type EmbeddedDatabase, startEmbeddedPostgres } from "./common/db/embedded.js";
import { migrate } from "./common/db/migrate.js";
import { createPool, type Pool } from "./common/db/pool.js";
import { createDirectTransport } from "./common/direct-transport.js";
import { createLogger, forService, type Logger } from "./common/logger.js";
import type { ServiceModule } from "./common/service.js";
import { type Listener, listenHttp1And2, listenHttp2 } from "./gateway/listen.js";
import { opsRoutes } from "./gateway/ops-routes.js";
import { proxyRoutes } from "./gateway/proxy.js";
import { createGatewayHandler, createInternalHandler } from "./gateway/server.js";
import { REGISTRY } from "./registry.js";

export interface App {
  config: Config;
  log: Logger;
  bus: Bus;
  modules: ServiceModule[];
  /** Bound ports (useful when the config asked for port 0). */
  ports: { gateway?: number; grpc?: number };
  databaseUrl?: string;
  stop(): Promise<void>;
}

/**
 * Starts the services this process hosts (config.services): database and
 * migrations, service modules, then the listeners. Services hosted elsewhere
 * are reached over gRPC; the same code runs either way.
 */
export async function startApp(config: Config, root: Logger = createLogger(config.logLevel)): Promise<App> {
  const log = forService(root, "app");
  const cleanups: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const cleanup of cleanups.reverse())
      await cleanup().catch((error) => log.error({ err: error }, "shutdown step failed"));
  };
  try {
    const hosted = config.services.filter((name) => name !== "gateway" && REGISTRY[name]);
    let pool: Pool | undefined;
    let databaseUrl: string | undefined;
    if (hosted.length > 0) {
      let embedded: EmbeddedDatabase | undefined;
      if (!config.databaseUrl) {
        embedded = await startEmbeddedPostgres(config.dataDir, log);
        cleanups.push(() => (embedded as EmbeddedDatabase).stop());
      }
      databaseUrl = config.databaseUrl ?? embedded?.url;
      const p = createPool(databaseUrl as string, (error) => log.warn({ err: error }, "idle database connection lost"));
      pool = p;
      cleanups.push(() => p.end());
      for (const name of hosted) await migrate(p, name, REGISTRY[name]!.migrations.dir, log);
    }
    const bus = createLocalBus((error) => log.error({ err: error }, "bus subscriber failed"));
    cleanups.push(() => bus.close());
    const modules = hosted.map((name) => REGISTRY[name]!.create({ pool: pool as Pool, bus, log: root, config }));
    cleanups.push(async () => {
      for (const m of modules) await m.stop();
    });
    const localRoutes = (router: ConnectRouter) => {
      for (const m of modules) m.routes(router);
    };

    const ports: App["ports"] = {};
    let listening = false;
    if (modules.length > 0) {
      const grpc = await listenHttp2(
        createInternalHandler(localRoutes, config.trustedProxies),
        config.host,
        config.grpcPort,
      );
      cleanups.push(() => grpc.close());
      ports.grpc = grpc.port;
    }
    if (config.services.includes("gateway")) {
      const gateway = await startGateway(config, forService(root, "gateway"), modules, localRoutes, () => listening);
      cleanups.push(() => gateway.close());
      ports.gateway = gateway.port;
    }
    listening = true;
    return { config, log: root, bus, modules, ports, databaseUrl, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function startGateway(
  config: Config,
  log: Logger,
  modules: ServiceModule[],
  localRoutes: (router: ConnectRouter) => void,
  isListening: () => boolean,
): Promise<Listener> {
  const services: { desc: DescService; transport: Transport }[] = [];
  const localTransport = createDirectTransport(localRoutes);
  for (const m of modules) for (const desc of m.services) services.push({ desc, transport: localTransport });
  const remote: { desc: DescService; transport: Transport }[] = [];
  for (const [name, baseUrl] of Object.entries(config.upstreams)) {
    const registration = REGISTRY[name as keyof typeof REGISTRY];
    if (!registration || !baseUrl) continue;
    const transport = createGrpcTransport({ baseUrl });
    for (const desc of registration.services) remote.push({ desc, transport });
  }
  services.push(...remote);
  const handler = createGatewayHandler({
    services,
    routes: (router) => {
      localRoutes(router);
      proxyRoutes(router, remote);
    },
    rawRoutes: [...opsRoutes({ modules, isListening }), ...modules.flatMap((m) => m.rawRoutes)],
    trustedProxies: config.trustedProxies,
    jsonBodyLimitBytes: config.jsonBodyLimitBytes,
    log,
  });
  return listenHttp1And2(handler, config.host, config.port);
}
