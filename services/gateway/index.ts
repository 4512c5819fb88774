// The gateway's public face: the host builds its listeners from these.

export { opsRoutes } from "./ops-routes.js";
export { proxyRoutes } from "./proxy.js";
export { buildRouteTable, type RouteEntry, type RpcRoute } from "./route-table.js";
export { createGatewayHandler, createInternalHandler } from "./server.js";
