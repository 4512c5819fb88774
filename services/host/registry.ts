import { auth } from "../auth/index.js";
import type { ServiceName } from "../common/config.js";
import type { ServiceRegistration } from "../common/service.js";
import { conversations } from "../conversations/index.js";
import { delivery } from "../delivery/index.js";
import { realtime } from "../realtime/index.js";
import { uploads } from "../uploads/index.js";

/** Every service with a module, in the order their migrations must run (the gateway is the host's listener). */
export const REGISTRY: Partial<Record<ServiceName, ServiceRegistration>> = Object.fromEntries(
  [conversations, auth, realtime, delivery, uploads].map((registration) => [registration.name, registration]),
);
