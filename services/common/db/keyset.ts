import type { Page } from "../rpc/pagination.js";

/** What a newest-first list is ordered by: a timestamptz, and the row id to break ties. */
interface KeysetColumns {
  sortKey: string;
  id: string;
  idType: "uuid" | "text";
}

/**
 * The SQL of one page of a newest-first keyset list (see pageOf and
 * pageResult): `where` keeps the rows before the cursor, `orderAndLimit`
 * fetches `limit + 1` of them, the extra one telling whether a next page
 * exists. Its placeholders are numbered from `firstParam`: append `params`
 * to the query's own.
 */
export function keysetPage(page: Page, columns: KeysetColumns, firstParam: number) {
  const [after, id, limit, offset] = [0, 1, 2, 3].map((i) => `$${firstParam + i}`);
  const { sortKey, id: idColumn, idType } = columns;
  return {
    where: `(${after}::timestamptz IS NULL OR (${sortKey}, ${idColumn}) < (${after}::timestamptz, ${id}::${idType}))`,
    orderAndLimit: `ORDER BY ${sortKey} DESC, ${idColumn} DESC LIMIT ${limit} OFFSET ${offset}`,
    params: [page.after?.sortKey ?? null, page.after?.id ?? null, page.limit + 1, page.offset],
  };
}
