import { createHmac, timingSafeEqual } from "node:crypto";

/** `sha256=<hex>` of X-Hub-Signature-256 (GitHub, Meta): HMAC-SHA256 of the raw body. */
export function hubSignature(body: Buffer, key: string): string {
  return `sha256=${createHmac("sha256", key).update(body).digest("hex")}`;
}

/**
 * Checks an X-Hub-Signature-256 header in constant time. Only `sha256=` with
 * 64 hex digits is accepted (no sha1, no odd or short hex).
 */
export function verifyHubSignature(body: Buffer, key: string, header: string | string[] | undefined): boolean {
  if (typeof header !== "string" || !key) return false;
  const match = /^sha256=([0-9a-fA-F]{64})$/.exec(header.trim());
  if (!match?.[1]) return false;
  const expected = createHmac("sha256", key).update(body).digest();
  return timingSafeEqual(expected, Buffer.from(match[1], "hex"));
}

/** `X-Converger-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">` on webhook deliveries. */
export function convergerSignature(body: string, secret: string, unixSeconds: number): string {
  const mac = createHmac("sha256", secret).update(`${unixSeconds}.${body}`).digest("hex");
  return `t=${unixSeconds},v1=${mac}`;
}
