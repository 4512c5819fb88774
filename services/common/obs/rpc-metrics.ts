import { ConnectError, type Interceptor } from "@connectrpc/connect";
import { Counter, Histogram } from "prom-client";
import { codeName } from "../rpc/errors.js";
import { DURATION_BUCKETS, metrics } from "./metrics.js";

const rpcRequestsTotal = new Counter({
  name: "converger_rpc_requests_total",
  help: "RPCs handled by this process, by service, method and Connect code.",
  labelNames: ["service", "method", "code"] as const,
  registers: [metrics],
});

const rpcDuration = new Histogram({
  name: "converger_rpc_duration_seconds",
  help: "Time to a handled RPC's response (for streams: until the stream opened).",
  labelNames: ["service", "method"] as const,
  buckets: DURATION_BUCKETS,
  registers: [metrics],
});

/**
 * Counts and times every RPC it wraps, refusals of the access checks
 * included. Labels come from the method descriptor, never from the wire.
 */
export const rpcMetricsInterceptor: Interceptor = (next) => async (req) => {
  const started = performance.now();
  const service = req.service.name;
  const method = req.method.name;
  let code = "ok";
  try {
    return await next(req);
  } catch (error) {
    code = codeName(ConnectError.from(error).code);
    throw error;
  } finally {
    rpcRequestsTotal.inc({ service, method, code });
    rpcDuration.observe({ service, method }, (performance.now() - started) / 1000);
  }
};
