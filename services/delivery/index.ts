import { DeliveryService } from "../../gen/converger/v1/delivery_pb.js";
import type { ServiceRegistration } from "../common/service.js";
import { deliveryRawRoutes } from "./raw-routes.js";
import { createDeliveryModule, deliveryMigrations } from "./service.js";

/** Routing activities to channels with tracked, retried delivery, and signed inbound webhooks. */
export const delivery: ServiceRegistration = {
  name: "delivery",
  services: [DeliveryService],
  migrations: deliveryMigrations,
  create: createDeliveryModule,
  rawRoutes: deliveryRawRoutes,
};
