import { Gauge } from "prom-client";
import { metrics } from "../common/obs/metrics.js";

/** When each signing-key set's current key was created (ms), or undefined before one is known. */
const sources = new Set<() => number | undefined>();

// Registered by being made; read at scrape time by its collect().
new Gauge({
  name: "converger_signing_key_age_seconds",
  help: "Age of the key that signs new tokens; rotation keeps it near SIGNING_KEY_ROTATION_HOURS.",
  registers: [metrics],
  collect() {
    const created = [...sources].map((s) => s()).filter((ms): ms is number => ms !== undefined);
    if (created.length === 0) return this.reset();
    this.set(Math.max(0, (Date.now() - Math.min(...created)) / 1000));
  },
});

/** Reports a signing-key set in converger_signing_key_age_seconds until the returned function is called. */
export function reportSigningKey(createdAtMs: () => number | undefined): () => void {
  sources.add(createdAtMs);
  return () => void sources.delete(createdAtMs);
}
