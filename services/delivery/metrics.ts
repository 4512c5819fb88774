import { Counter } from "prom-client";
import { metrics } from "../common/obs/metrics.js";

export const deliveriesTotal = new Counter({
  name: "converger_deliveries_total",
  help: "Delivery tries by channel type and outcome (delivered, retry, failed).",
  labelNames: ["channel_type", "outcome"] as const,
  registers: [metrics],
});

/** Alert on any increase: an event of the log was not processed and waits in the dead-letter store. */
export const processingDeadLettersTotal = new Counter({
  name: "converger_processing_dead_letters_total",
  help: "Log events a consumer gave up on after its retries (dead-lettered).",
  labelNames: ["consumer", "topic"] as const,
  registers: [metrics],
});

export const inboundTotal = new Counter({
  name: "converger_inbound_requests_total",
  help: "Inbound webhook requests by channel type and outcome.",
  labelNames: ["channel_type", "outcome"] as const,
  registers: [metrics],
});
