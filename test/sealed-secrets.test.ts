import { createHmac, randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, call, fixtures, startTestApp, type TestApp } from "./helpers/app.js";
import { createTestDatabase } from "./helpers/database.js";
import { startHttpSink } from "./helpers/http-sink.js";
import { openStoredChannel } from "./helpers/sealed.js";

const sink = await startHttpSink();
const running: TestApp[] = [];
const dirs: string[] = [];
afterAll(async () => {
  for (const app of running) await app.stop().catch(() => undefined);
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  await sink.close();
});

/** A database and DATA_DIR that outlive the app processes started on them. */
async function deployment() {
  const dataDir = mkdtempSync(join(tmpdir(), "converger-sealed-"));
  dirs.push(dataDir);
  const env = { DATABASE_URL: await createTestDatabase(), DATA_DIR: dataDir, WEBHOOK_ALLOW_PRIVATE: "true" };
  return {
    dataDir,
    async start(extra: Record<string, string> = {}) {
      const t = await startTestApp({ ...env, ...extra });
      running.push(t);
      return t;
    },
  };
}

const newKey = () => randomBytes(32).toString("base64");
const sign = (body: string, secret: string) => `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
const rewrap = (t: TestApp) =>
  call(t.baseUrl, "POST", "/admin/v1/sealed-secrets/rewrap", { token: ADMIN_TOKEN, body: {} });

function inbound(t: TestApp, channelId: string, secret: string, messageId = randomUUID()) {
  const body = JSON.stringify({ external_id: "ext-1", message_id: messageId, from: { id: "u1" }, text: "hi" });
  const headers = { "content-type": "application/json", "x-hub-signature-256": sign(body, secret) };
  return call(t.baseUrl, "POST", `/v1/channels/${channelId}/inbound`, { body, headers });
}

/** Every stored column of the sealed rows, to show that a refused call wrote nothing. */
async function sealedState(t: TestApp) {
  const channels = await t.db.query(
    "SELECT id, data_key, secret_sealed, config FROM conversations.channels ORDER BY id",
  );
  const keys = await t.db.query("SELECT kid, data_key, private_jwk_enc FROM auth.signing_keys ORDER BY kid");
  return { channels: channels.rows, keys: keys.rows };
}

describe("key rotation", () => {
  it("re-wraps under a new key; with the old one removed everything still opens after a restart", async () => {
    const d = await deployment();
    let t = await d.start();
    const f = fixtures(t.baseUrl);
    const { key } = await f.tenant();
    const hook = await f.channel(key, "webhook", { url: sink.url, headers: { "X-Token": "hdr-rotation" } });
    const conversation = await f.conversation(key, hook.id);
    const minted = await call(t.baseUrl, "POST", "/v1/tokens", {
      token: hook.secret,
      body: { user: { id: "alice" }, conversation_id: conversation.id },
    });
    expect(minted.status).toBe(201);
    await t.stop();

    const oldKey = readFileSync(join(d.dataDir, "keys", "kek"), "utf8").trim();
    const k2 = newKey();
    t = await d.start({ KEY_ENCRYPTION_KEYS: `default:${oldKey},k2:${k2}`, KEY_ENCRYPTION_KEY_ID: "k2" });
    const first = await rewrap(t);
    expect(first.status).toBe(200);
    expect(first.body).toEqual({
      active_key_id: "k2",
      channels: { rewrapped: 1, already_active: 0 },
      signing_keys: { rewrapped: 1, already_active: 0 },
    });
    expect((await rewrap(t)).body).toMatchObject({
      channels: { rewrapped: 0, already_active: 1 },
      signing_keys: { rewrapped: 0, already_active: 1 },
    });
    await t.stop();

    rmSync(join(d.dataDir, "keys"), { recursive: true });
    t = await d.start({ KEY_ENCRYPTION_KEYS: `k2:${k2}` });
    // The old client token verifies, and the re-wrapped signing key signs new ones.
    const old = await call(t.baseUrl, "GET", `/v1/conversations/${conversation.id}`, { token: minted.body.token });
    expect(old.status).toBe(200);
    const again = await call(t.baseUrl, "POST", "/v1/tokens", { token: hook.secret, body: { user: { id: "bob" } } });
    expect(again.status).toBe(201);
    // Inbound HMAC with the channel secret, and a delivery carrying the sealed header.
    expect((await inbound(t, hook.id, hook.secret)).status).toBe(200);
    expect((await fixtures(t.baseUrl).message(key, conversation.id, "after rotation")).status).toBe(201);
    await expect
      .poll(() => sink.requests.find((r) => r.body.includes("after rotation"))?.headers["x-token"])
      .toBe("hdr-rotation");
  });

  it("refuses to start, naming the key, when a key is removed before the re-wrap, and writes nothing", async () => {
    const d = await deployment();
    let t = await d.start();
    const f = fixtures(t.baseUrl);
    await f.channel((await f.tenant()).key, "telegram", { bot_token: "123:removed-too-early" });
    const before = await sealedState(t);
    await t.stop();

    await expect(d.start({ KEY_ENCRYPTION_KEYS: `k2:${newKey()}` })).rejects.toThrow(
      /1 channels under "default".*add them back to KEY_ENCRYPTION_KEYS/,
    );
    t = await d.start();
    expect(await sealedState(t)).toEqual(before);
  });

  it("fails closed where a row names a key this process lacks: reads fail, the rewrap refuses and writes nothing", async () => {
    const k1 = newKey();
    const d = await deployment();
    const lacking = await d.start({ KEY_ENCRYPTION_KEYS: `k1:${k1}` });
    const holding = await d.start({ KEY_ENCRYPTION_KEYS: `k1:${k1},k2:${newKey()}`, KEY_ENCRYPTION_KEY_ID: "k2" });
    const f = fixtures(holding.baseUrl);
    const { key } = await f.tenant();
    const channel = await f.channel(key, "webhook", { url: sink.url });
    expect((await call(holding.baseUrl, "GET", `/v1/channels/${channel.id}`, { key })).status).toBe(200);
    expect((await call(lacking.baseUrl, "GET", `/v1/channels/${channel.id}`, { key })).status).toBe(500);
    expect((await inbound(lacking, channel.id, channel.secret)).status).not.toBe(200);

    const before = await sealedState(lacking);
    const refused = await rewrap(lacking);
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ code: "failed_precondition" });
    expect(refused.body.message).toMatch(/1 channels under "k2"/);
    expect(await sealedState(lacking)).toEqual(before);
  });
});

describe("sealed rows in the database", () => {
  it("refuses a sealed value moved to another row, and a tampered one", async () => {
    const t = await (await deployment()).start();
    const f = fixtures(t.baseUrl);
    const { key } = await f.tenant();
    const a = await f.channel(key, "webhook", { url: sink.url });
    const b = await f.channel(key, "webhook", { url: sink.url });
    await t.db.query(
      `UPDATE conversations.channels b SET data_key = a.data_key, secret_sealed = a.secret_sealed
       FROM conversations.channels a WHERE a.id = $1 AND b.id = $2`,
      [a.id, b.id],
    );
    const moved = await call(t.baseUrl, "GET", `/v1/channels/${b.id}`, { key });
    expect(moved.status).toBe(500);
    expect(JSON.stringify(moved.body)).not.toContain(a.secret);
    expect((await inbound(t, b.id, a.secret)).status).not.toBe(200);

    await t.db.query(
      "UPDATE conversations.channels SET secret_sealed = overlay(secret_sealed PLACING '\\x00'::bytea FROM 20) WHERE id = $1",
      [a.id],
    );
    expect((await call(t.baseUrl, "GET", `/v1/channels/${a.id}`, { key })).status).toBe(500);
    expect((await inbound(t, a.id, a.secret)).status).not.toBe(200);
  });

  it("seals at start the rows an older version stored in clear, once, and they keep working", async () => {
    const d = await deployment();
    let t = await d.start();
    const { id: tenantId, key } = await fixtures(t.baseUrl).tenant();
    const plain = {
      hook: { id: randomUUID(), secret: `cvs_${randomBytes(32).toString("base64url")}` },
      meta: { id: randomUUID(), secret: `cvs_${randomBytes(32).toString("base64url")}` },
    };
    const metaConfig = { phone_number_id: "1", access_token: "at-old", verify_token: "vt-old", app_secret: "as-old" };
    const insert = (id: string, type: string, config: object, secret: string) =>
      t.db.query(
        `INSERT INTO conversations.channels (id, tenant_id, name, type, config, secret, secret_hash)
         VALUES ($1, $2, 'old', $3, $4, $5, sha256(convert_to($5, 'UTF8')))`,
        [id, tenantId, type, config, secret],
      );
    await insert(plain.hook.id, "webhook", { url: sink.url, headers: { "X-Old": "hdr-old" } }, plain.hook.secret);
    await insert(plain.meta.id, "whatsapp_meta", metaConfig, plain.meta.secret);
    await t.stop();

    t = await d.start();
    const hook = await openStoredChannel(t, plain.hook.id, ["headers"]);
    const meta = await openStoredChannel(t, plain.meta.id, ["access_token", "verify_token", "app_secret"]);
    expect([hook.row.secret, meta.row.secret]).toEqual([null, null]);
    expect([hook.secret, meta.secret]).toEqual([plain.hook.secret, plain.meta.secret]);
    expect(hook.config).toEqual({ url: sink.url, headers: { "X-Old": "hdr-old" } });
    expect(meta.config).toEqual(metaConfig);
    for (const text of [plain.hook.secret, plain.meta.secret, "hdr-old", "at-old", "vt-old", "as-old"]) {
      expect(JSON.stringify([hook.row, meta.row])).not.toContain(text);
    }
    expect((await inbound(t, plain.hook.id, plain.hook.secret)).status).toBe(200);
    const challenge = `/v1/channels/${plain.meta.id}/inbound?hub.mode=subscribe&hub.verify_token=vt-old&hub.challenge=42`;
    expect((await call(t.baseUrl, "GET", challenge)).body).toBe(42);
    const mint = { token: plain.hook.secret, body: { user: { id: "carol" } } };
    expect((await call(t.baseUrl, "POST", "/v1/tokens", mint)).status).toBe(201);
    expect((await call(t.baseUrl, "GET", `/v1/channels/${plain.meta.id}`, { key })).body.config.app_secret).toBe(
      "[redacted]",
    );
    const sealed = await sealedState(t);
    await t.stop();
    t = await d.start();
    expect(await sealedState(t)).toEqual(sealed);
  });
});
