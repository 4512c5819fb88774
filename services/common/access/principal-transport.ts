import { type ConnectRouter, createRouterTransport, type Interceptor, type Transport } from "@connectrpc/connect";
import { validateMessage } from "../rpc/validation.js";
import { kPrincipal, type Principal } from "./context.js";

/**
 * Serves handlers in memory (createRouterTransport) as if the access
 * interceptor had let `principal` through: the principal lands in the
 * context and the request is validated against its rules, as in production,
 * but nothing is authenticated or rate limited. For handler tests: every
 * transport of one `routes` shares the handlers' (fake) state.
 */
export function createPrincipalTransports(
  routes: (router: ConnectRouter) => void,
): (principal: Principal) => Transport {
  return (principal) => createRouterTransport(routes, { router: { interceptors: [actAs(principal)] } });
}

function actAs(principal: Principal): Interceptor {
  return (next) => async (req) => {
    req.contextValues.set(kPrincipal, principal);
    if (!req.stream) validateMessage(req.method.input, req.message);
    return next(req);
  };
}
