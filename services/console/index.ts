// The operator console's public face: its raw routes, which the host adds to the gateway.
export { consoleRoutes } from "./routes.js";
