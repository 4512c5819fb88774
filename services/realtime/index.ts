import { RealtimeService } from "../../gen/converger/v1/realtime_pb.js";
import type { ServiceRegistration } from "../common/service.js";
import { createRealtimeModule } from "./service.js";

export { startEdge } from "./edge.js";

/** The live stream: its RPC here, the WebSocket edge a listener the host starts beside it (startEdge). */
export const realtime: ServiceRegistration = {
  name: "realtime",
  services: [RealtimeService],
  create: createRealtimeModule,
};
