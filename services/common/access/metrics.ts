import { Counter } from "prom-client";
import { metrics } from "../obs/metrics.js";

type LimitPolicy = "credential" | "tenant" | "ip" | "auth_failures";

export const rateLimitRejectionsTotal = new Counter({
  name: "converger_rate_limit_rejections_total",
  help: "Calls refused with 429 by a rate limit, by the policy that refused them.",
  labelNames: ["policy"] as const,
  registers: [metrics],
});
for (const policy of ["credential", "tenant", "ip", "auth_failures"] satisfies LimitPolicy[]) {
  rateLimitRejectionsTotal.inc({ policy }, 0);
}
