/** The largest seq PostgreSQL's bigint (and proto's int64) holds. */
export const INT64_MAX = 9_223_372_036_854_775_807n;

/**
 * A non-negative decimal int64 (`"42"`), or undefined for anything else:
 * `0x10`, `12abc`, `1e3` and values past INT64_MAX would otherwise reach SQL
 * and fail there as a 500.
 */
export function parseSeq(text: string): bigint | undefined {
  if (!/^\d{1,19}$/.test(text)) return undefined;
  const value = BigInt(text);
  return value <= INT64_MAX ? value : undefined;
}
