import { UploadsService } from "../../gen/converger/v1/uploads_pb.js";
import type { ServiceRegistration } from "../common/service.js";
import { uploadsRawRoutes } from "./raw-routes.js";
import { createUploadsModule, uploadsMigrations } from "./service.js";

/** Chunked and tus uploads, their merge, and file downloads. */
export const uploads: ServiceRegistration = {
  name: "uploads",
  services: [UploadsService],
  migrations: uploadsMigrations,
  create: createUploadsModule,
  rawRoutes: uploadsRawRoutes,
};
