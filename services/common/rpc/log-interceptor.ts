import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "../obs/logger.js";
import { traceIdOf } from "../obs/trace.js";
import { connectErrorFromPg } from "./errors.js";

/**
 * Outermost server interceptor of every service: turns infrastructure errors
 * into API errors (connectErrorFromPg) and logs the ones the caller cannot
 * act on, with the original cause, which never reaches the response.
 */
export function createErrorInterceptor(log: Logger): Interceptor {
  return (next) => async (req) => {
    try {
      return await next(req);
    } catch (error) {
      const mapped = error instanceof ConnectError ? error : connectErrorFromPg(error);
      if (mapped.code === Code.Internal || mapped.code === Code.Unknown || mapped.code === Code.Unavailable) {
        log.error(
          {
            err: mapped.cause ?? error,
            rpc: req.method.name,
            request_id: req.header.get("x-request-id"),
            trace_id: traceIdOf(req.header.get("traceparent")),
          },
          "rpc failed",
        );
      }
      throw mapped;
    }
  };
}
