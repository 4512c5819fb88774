/**
 * Whether a browser request comes from one of our own pages: its Origin
 * (sent on every POST and fetch) is PUBLIC_URL's, or this very host's. A
 * cookie rides along on cross-site requests too; the Origin does not lie.
 */
export function fromOwnOrigin(
  origin: string | null | undefined,
  host: string | null | undefined,
  publicOrigin: string,
): boolean {
  if (!origin) return false;
  if (origin === publicOrigin) return true;
  return typeof host === "string" && host !== "" && (origin === `http://${host}` || origin === `https://${host}`);
}
