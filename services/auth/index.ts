import { AuthService } from "../../gen/converger/v1/auth_pb.js";
import type { ServiceRegistration } from "../common/service.js";
import { authRawRoutes } from "./raw-routes.js";
import { authMigrations, createAuthModule } from "./service.js";

/** OAuth clients, access, refresh and client tokens, signing keys and the audit of failures. */
export const auth: ServiceRegistration = {
  name: "auth",
  services: [AuthService],
  migrations: authMigrations,
  create: createAuthModule,
  rawRoutes: authRawRoutes,
};
