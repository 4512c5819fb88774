// The operator console's public face: its raw routes, which the host adds to the gateway.
export { type ConsoleDeps, consoleRoutes } from "./routes.js";
