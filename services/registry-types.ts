import type { Transport } from "@connectrpc/connect";
import type { AccessOptions } from "./common/access.js";
import type { Bus } from "./common/bus.js";
import type { Config, ServiceName } from "./common/config.js";
import type { Pool } from "./common/db/pool.js";
import type { Logger } from "./common/logger.js";

/** What a service module gets from the process that hosts it. */
export interface ModuleDeps {
  pool: Pool;
  bus: Bus;
  log: Logger;
  config: Config;
  access: AccessOptions;
  /** How to reach a service: in-process when hosted here, gRPC otherwise. */
  transportFor: (name: ServiceName) => import("@connectrpc/connect").Transport;
}

export type { Transport };
