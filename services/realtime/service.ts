import { RealtimeService } from "../../gen/converger/v1/realtime_pb.js";
import { createAccessInterceptor } from "../common/access/access.js";
import { forService } from "../common/obs/logger.js";
import { createErrorInterceptor } from "../common/rpc/log-interceptor.js";
import type { ModuleDeps, ServiceModule } from "../common/service.js";
import { realtimeImpl } from "./subscribe-rpc.js";

/**
 * The realtime service's RPCs (the gRPC stream); the WebSocket edge itself is
 * a listener the process starts beside it (edge.ts). Needs no database.
 */
export function createRealtimeModule(deps: ModuleDeps): ServiceModule {
  const log = forService(deps.log, "realtime");
  const interceptors = [createErrorInterceptor(log), createAccessInterceptor(deps.access)];
  const impl = realtimeImpl({ conversationsTransport: deps.transportFor("conversations"), bus: deps.bus });
  return {
    name: "realtime",
    services: [RealtimeService],
    routes(router) {
      router.service(RealtimeService, impl, { interceptors });
    },
    async ready() {},
    async stop() {},
  };
}
