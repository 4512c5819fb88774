import type { DescService } from "@bufbuild/protobuf";
import type { Transport } from "@connectrpc/connect";
import { AuthService } from "../gen/converger/v1/auth_pb.js";
import { ChannelsService } from "../gen/converger/v1/channels_pb.js";
import { ConversationsService, DirectoryService } from "../gen/converger/v1/conversations_pb.js";
import { DeliveryService } from "../gen/converger/v1/delivery_pb.js";
import { EventsService } from "../gen/converger/v1/events_pb.js";
import { RealtimeService } from "../gen/converger/v1/realtime_pb.js";
import { TenantsService } from "../gen/converger/v1/tenants_pb.js";
import { UploadsService } from "../gen/converger/v1/uploads_pb.js";
import { authRawRoutes } from "./auth/raw-routes.js";
import { authMigrations, createAuthModule } from "./auth/service.js";
import type { ServiceName } from "./common/config.js";
import type { MigrationSet, ModuleDeps, RawRoute, ServiceModule } from "./common/service.js";
import { conversationsMigrations, createConversationsModule } from "./conversations/service.js";
import { deliveryRawRoutes } from "./delivery/raw-routes.js";
import { createDeliveryModule, deliveryMigrations } from "./delivery/service.js";
import { createRealtimeModule } from "./realtime/service.js";
import { uploadsRawRoutes } from "./uploads/raw-routes.js";
import { createUploadsModule, type UploadsModule, uploadsMigrations } from "./uploads/service.js";

interface Registration {
  /** Proto services the module implements, known even where it runs remotely. */
  services: DescService[];
  /** Absent for services without tables (they need no database). */
  migrations?: MigrationSet;
  create: (deps: ModuleDeps) => ServiceModule;
  /**
   * Raw HTTP routes the gateway serves for this service, calling it through
   * `transport`; `local` is the module when this process hosts it (routes
   * that stream bytes to the service's storage need it).
   */
  rawRoutes?: (transport: Transport, local?: ServiceModule) => RawRoute[];
}

/** Every service folder, in the order their migrations must run. */
export const REGISTRY: Partial<Record<ServiceName, Registration>> = {
  conversations: {
    services: [TenantsService, ChannelsService, ConversationsService, EventsService, DirectoryService],
    migrations: conversationsMigrations,
    create: createConversationsModule,
  },
  auth: {
    services: [AuthService],
    migrations: authMigrations,
    create: createAuthModule,
    rawRoutes: authRawRoutes,
  },
  realtime: {
    services: [RealtimeService],
    create: createRealtimeModule,
  },
  delivery: {
    services: [DeliveryService],
    migrations: deliveryMigrations,
    create: createDeliveryModule,
    rawRoutes: deliveryRawRoutes,
  },
  uploads: {
    services: [UploadsService],
    migrations: uploadsMigrations,
    create: createUploadsModule,
    rawRoutes: (transport, local) => uploadsRawRoutes(transport, local as UploadsModule | undefined),
  },
};
