import type { DescService } from "@bufbuild/protobuf";
import { ChannelsService } from "../gen/converger/v1/channels_pb.js";
import { ConversationsService } from "../gen/converger/v1/conversations_pb.js";
import { EventsService } from "../gen/converger/v1/events_pb.js";
import { TenantsService } from "../gen/converger/v1/tenants_pb.js";
import type { Bus } from "./common/bus.js";
import type { Config, ServiceName } from "./common/config.js";
import type { Pool } from "./common/db/pool.js";
import type { Logger } from "./common/logger.js";
import type { MigrationSet, ServiceModule } from "./common/service.js";
import { conversationsMigrations, createConversationsModule } from "./conversations/service.js";

export interface ModuleDeps {
  pool: Pool;
  bus: Bus;
  log: Logger;
  config: Config;
}

interface Registration {
  /** Proto services the module implements, known even where it runs remotely. */
  services: DescService[];
  migrations: MigrationSet;
  create: (deps: ModuleDeps) => ServiceModule;
}

/** Every service folder, in the order their migrations must run. */
export const REGISTRY: Partial<Record<ServiceName, Registration>> = {
  conversations: {
    services: [TenantsService, ChannelsService, ConversationsService, EventsService],
    migrations: conversationsMigrations,
    create: createConversationsModule,
  },
};
