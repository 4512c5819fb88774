import { loadConfig } from "../common/config.js";
import { createLogger, forService } from "../common/obs/logger.js";
import { startApp } from "./app.js";

// Bounded so an orchestrator's SIGKILL never has to cut us off mid-shutdown.
const SHUTDOWN_TIMEOUT_MS = 20_000;

const config = loadConfig(process.env, process.argv.slice(2));
const root = createLogger(config.logLevel);
const log = forService(root, "converger");
const app = await startApp(config, root).catch((error: unknown) => {
  log.fatal({ err: error }, "start failed");
  process.exit(1);
});

const lines: string[] = [];
const host = hostForUrl(config.host);
const secure = config.tls ? "s" : "";
if (app.ports.gateway !== undefined) lines.push(`gateway http${secure}://${host}:${app.ports.gateway}`);
if (app.ports.edge !== undefined) lines.push(`edge ws${secure}://${host}:${app.ports.edge}`);
if (app.ports.grpc !== undefined) lines.push(`grpc ${host}:${app.ports.grpc}`);
// The operator console: sign in there with the admin token.
if (app.ports.gateway !== undefined) lines.push(`console http${secure}://${host}:${app.ports.gateway}/admin/`);
if (config.adminTokenGenerated && config.services.includes("gateway")) lines.push(`admin token ${config.adminToken}`);
process.stdout.write(`${lines.join("\n")}\n`);
log.info({ services: config.services, ports: app.ports }, "ready");

// cert-manager and certbot renew the files in place and signal the process: no restart, no dropped socket.
process.on("SIGHUP", () => app.reloadTls());

let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down");
    setTimeout(() => process.exit(1), SHUTDOWN_TIMEOUT_MS).unref();
    void app.stop().then(() => process.exit(0));
  });
}

function hostForUrl(host: string): string {
  if (host === "0.0.0.0" || host === "::") return "127.0.0.1";
  return host.includes(":") ? `[${host}]` : host;
}
