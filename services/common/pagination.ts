import { invalidField } from "./errors.js";

export const DEFAULT_PAGE_SIZE = 50;

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
export function encodeCursor(sortKey: string, id: string): string {
  return Buffer.from(JSON.stringify([sortKey, id])).toString("base64url");
}

function decodeCursor(cursor: string): { sortKey: string; id: string } {
  try {
    const [sortKey, id] = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as unknown[];
    if (typeof sortKey === "string" && typeof id === "string" && !Number.isNaN(Date.parse(sortKey))) {
      return { sortKey, id };
    }
  } catch {
    // fall through to the error below
  }
  throw invalidField("cursor", "is not a cursor this API returned");
}

/** Splits the `limit + 1` rows a query fetched into the page and the next cursor. */
export function pageResult<T extends { sort_key: string; id: string }>(rows: T[], page: Page) {
  const items = rows.slice(0, page.limit);
  const last = items[items.length - 1];
  const nextCursor = rows.length > page.limit && last ? encodeCursor(last.sort_key, last.id) : "";
  return { items, nextCursor };
}
