import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, Transport } from "@connectrpc/connect";
import type { AccessOptions } from "./access/access.js";
import type { LimiterStore } from "./access/limiter-store.js";
import type { Config, ServiceName } from "./config.js";
import type { Pool } from "./db/pool.js";
import type { Bus } from "./events/bus.js";
import type { EventLog } from "./events/event-log.js";
import type { Logger } from "./obs/logger.js";

/** A raw HTTP route owned by a service (chunk bodies, webhooks, health, …). */
export interface RawRoute {
  method: string;
  /** Path template with `{param}` segments, as in google.api.http. */
  path: string;
  /** Largest request body accepted; larger ones answer 413. */
  bodyLimitBytes: number;
  handle: (ctx: RawContext) => Promise<void> | void;
}

export interface RawContext {
  req: import("node:http").IncomingMessage;
  res: import("node:http").ServerResponse;
  params: Record<string, string>;
  requestId: string;
  clientIp: string;
}

/** What one service folder contributes to a process. */
export interface ServiceModule {
  name: ServiceName;
  /** Proto services implemented, for the gateway's route table and proxies. */
  services: DescService[];
  routes: (router: ConnectRouter) => void;
  /** Work that needs the database before serving (e.g. the first signing key). */
  start?: () => Promise<void>;
  /** Engines this module depends on, checked by /readyz. */
  ready: () => Promise<void>;
  stop: () => Promise<void>;
}

/** What a service module gets from the process that hosts it. */
export interface ModuleDeps {
  /**
   * The service's own pool, set when it has tables (see requirePool). Its
   * search_path is the service's schema alone: bare names are its own tables,
   * and another service's tables are not reachable by name.
   */
  pool?: Pool;
  bus: Bus;
  /** The outbox's consumers' side: Kafka or in-process (event-log.ts). */
  eventLog: EventLog;
  log: Logger;
  config: Config;
  access: AccessOptions;
  /** How to reach a service: in-process when hosted here, gRPC otherwise. */
  transportFor: (name: ServiceName) => Transport;
  /** Rate-limit counters: shared through Redis when REDIS_URL is set, else in memory. */
  limiters: LimiterStore;
  /** The port `stream_url` names: the edge's bound one when it runs here (WS_PORT may be 0), else WS_PORT. */
  edgePort: () => number;
}

/** The pool of a module that owns tables (the host opens one for each such module it runs). */
export function requirePool(deps: ModuleDeps): Pool {
  if (!deps.pool) throw new Error("this service needs a database");
  return deps.pool;
}

/**
 * Migrations run before any module starts; each service owns its folder, and
 * they run in the service's schema (named after the owner), with their
 * bookkeeping in `<schema>.schema_migrations`.
 */
export interface MigrationSet {
  owner: ServiceName;
  dir: string;
}

/**
 * A service folder's public face (its index.ts): what the host needs to run
 * the service in this process or to reach it in another.
 */
export interface ServiceRegistration {
  name: ServiceName;
  /** Proto services the module implements, known even where it runs remotely. */
  services: DescService[];
  /** Absent for services without tables (they need no database). */
  migrations?: MigrationSet;
  create: (deps: ModuleDeps) => ServiceModule;
  /**
   * Raw HTTP routes the gateway serves for this service, calling it through
   * `transport` only (in this process or another). `config` is the
   * gateway's (its internal token, for one); it is absent where only the
   * routes' paths are wanted, and routes that need it fail when called.
   */
  rawRoutes?: (transport: Transport, config?: Config) => RawRoute[];
}
