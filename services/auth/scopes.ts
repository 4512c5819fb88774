import { invalidField } from "../common/rpc/errors.js";

/** Every scope an OAuth client may hold (design.md §3). */
export const KNOWN_SCOPES = [
  "conversations:read",
  "conversations:write",
  "files:write",
  "deliveries:read",
  "channels:admin",
] as const;

export function checkScopes(scopes: string[]): string[] {
  const unique = [...new Set(scopes)];
  for (const [i, scope] of unique.entries()) {
    if (!(KNOWN_SCOPES as readonly string[]).includes(scope)) {
      throw invalidField(`scopes[${i}]`, `unknown scope "${scope}" (known: ${KNOWN_SCOPES.join(", ")})`);
    }
  }
  return unique;
}

/** The requested scope if it is within `granted` (all of it when none is asked), else undefined. */
export function narrowScope(granted: string[], requested: string): string | undefined {
  const asked = requested.split(" ").filter(Boolean);
  if (asked.length === 0) return granted.join(" ");
  return asked.every((s) => granted.includes(s)) ? [...new Set(asked)].join(" ") : undefined;
}
