import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { createLogger } from "../../services/common/obs/logger.js";
import type { Keyring } from "../../services/common/secrets/keyring.js";
import { loadKeyring } from "../../services/common/secrets/load.js";
import type { TestApp } from "./app.js";

/** The app's keyring, loaded as an insider with its configuration and DATA_DIR would. */
function keyringOf(t: TestApp): Keyring {
  return loadKeyring(t.app.config, createLogger("silent"));
}

/**
 * A channel row as PostgreSQL holds it, opened the way the format says
 * (design.md §8): the row's data key wrapped with `conversations.channels:
 * <tenant>:<id>` as additional data, each field sealed with `<row>\0<field>`.
 */
export async function openStoredChannel(t: TestApp, id: string, sealedConfigFields: string[] = []) {
  const { rows } = await t.db.query("SELECT * FROM conversations.channels WHERE id = $1", [id]);
  const row = rows[0];
  const key = keyringOf(t).openDataKey(row.data_key, `conversations.channels:${row.tenant_id}:${row.id}`);
  const config: JsonObject = { ...row.config };
  for (const field of sealedConfigFields) {
    const sealed = Buffer.from(String(row.config[field]), "base64");
    config[field] = JSON.parse(key.open(`config.${field}`, sealed).toString("utf8")) as JsonValue;
  }
  return { row, secret: key.open("secret", row.secret_sealed).toString("utf8"), config };
}
