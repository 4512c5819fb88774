import { createHmac } from "node:crypto";

/** Header carrying the internal token on calls between our services. */
export const INTERNAL_HEADER = "x-converger-internal";

/**
 * The shared secret services present to each other: INTERNAL_TOKEN, or one
 * derived from ADMIN_TOKEN so that processes sharing an admin token agree.
 */
export function internalTokenFrom(env: string | undefined, adminToken: string): string {
  return env || createHmac("sha256", adminToken).update("converger-internal").digest("base64url");
}

export function internalHeaders(token: string): Headers {
  return new Headers({ [INTERNAL_HEADER]: token });
}
