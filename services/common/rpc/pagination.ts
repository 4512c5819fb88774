import { invalidField } from "./errors.js";

const DEFAULT_PAGE_SIZE = 50;

/** A page request after defaults: at most `limit` rows after `cursor`, or at `offset`. */
export interface Page {
  limit: number;
  after?: { sortKey: string; id: string };
  offset: number;
}

export function pageOf(req: { limit: number; cursor: string; offset?: number }, fallback = DEFAULT_PAGE_SIZE): Page {
  const page: Page = { limit: req.limit > 0 ? req.limit : fallback, offset: req.offset ?? 0 };
  if (req.cursor) {
    if (page.offset > 0) throw invalidField("cursor", "cannot be combined with offset");
    page.after = decodeCursor(req.cursor);
  }
  return page;
}

/**
 * Keyset cursors are opaque to clients: base64url of the row's sort key (a
 * PostgreSQL timestamp in text form, which keeps microseconds) and its id.
 */
function encodeCursor(sortKey: string, id: string): string {
  return Buffer.from(JSON.stringify([sortKey, id])).toString("base64url");
}

// The text form PostgreSQL gives a timestamptz (`2026-01-02 03:04:05.123456+00`), years 1000–9999.
const SORT_KEY = /^([1-9]\d{3})-(\d{2})-(\d{2}) ([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?[+-]\d{2}(:\d{2}){0,2}$/;
// Ids are UUIDs or `cvc_…` client ids: printable ASCII, never U+0000.
const ROW_ID = /^[\w-]{1,200}$/;

/**
 * A forged cursor reaches SQL as parameters: only the shapes encodeCursor
 * writes pass, so a bad date, a NUL or an out-of-range year is a 400, not a
 * 500 from PostgreSQL.
 */
function decodeCursor(cursor: string): { sortKey: string; id: string } {
  try {
    const [sortKey, id] = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as unknown[];
    if (typeof sortKey === "string" && typeof id === "string" && isSortKey(sortKey) && ROW_ID.test(id)) {
      return { sortKey, id };
    }
  } catch {
    // fall through to the error below
  }
  throw invalidField("cursor", "is not a cursor this API returned");
}

/** A timestamp text of SORT_KEY's shape naming a real calendar day (no February 31st). */
function isSortKey(text: string): boolean {
  const match = SORT_KEY.exec(text);
  if (!match) return false;
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const date = new Date(Date.UTC(year, month - 1, day));
  return date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}

/** Splits the `limit + 1` rows a query fetched into the page and the next cursor. */
export function pageResult<T extends { sort_key: string; id: string }>(rows: T[], page: Page) {
  const items = rows.slice(0, page.limit);
  const last = items[items.length - 1];
  const nextCursor = rows.length > page.limit && last ? encodeCursor(last.sort_key, last.id) : "";
  return { items, nextCursor };
}
