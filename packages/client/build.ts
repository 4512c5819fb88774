// Builds dist/: index.js (ESM for bundlers and Node, npm dependencies left to
// the integrator's install), converger.js (one minified module for browsers,
// served by the gateway at /sdk/converger.js) and the declarations.
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = fileURLToPath(new URL(".", import.meta.url));
const common = {
  absWorkingDir: root,
  entryPoints: ["src/index.ts"] as string[],
  bundle: true,
  format: "esm",
  target: "es2022",
  platform: "neutral",
  logLevel: "warning",
} as const;

rmSync(new URL("dist", import.meta.url), { recursive: true, force: true });
await Promise.all([
  // The generated code is bundled (it is not a package); npm dependencies stay imports.
  build({ ...common, outfile: "dist/index.js", packages: "external" }),
  build({ ...common, outfile: "dist/converger.js", platform: "browser", minify: true, legalComments: "none" }),
]);
execFileSync(process.execPath, [fileURLToPath(import.meta.resolve("typescript/bin/tsc")), "-p", "tsconfig.json"], {
  cwd: root,
  stdio: "inherit",
});
