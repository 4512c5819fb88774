import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "../common/obs/logger.js";

/**
 * A call that never reached the other service (connection refused or reset,
 * a certificate that does not verify) is `unavailable` to our callers, with a
 * message naming the service and nothing of the network or of TLS: that
 * detail is for the operator's log, not for an API client.
 */
export function upstreamFailures(service: string, log: Logger): Interceptor {
  return (next) => async (req) => {
    try {
      return await next(req);
    } catch (error) {
      const code = socketErrorCode(error);
      if (code === undefined) throw error;
      const reason = (error as ConnectError).rawMessage;
      log.warn({ upstream: service, code, reason }, "call to another service failed before it answered");
      throw new ConnectError(`the ${service} service is unavailable`, Code.Unavailable);
    }
  };
}

// Answers of the service itself carry no cause; failures of the socket carry Node's error, with its code.
function socketErrorCode(error: unknown): string | undefined {
  if (!(error instanceof ConnectError)) return undefined;
  const code = (error.cause as { code?: unknown } | undefined)?.code;
  return typeof code === "string" ? code : undefined;
}
