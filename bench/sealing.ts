// What sealing costs on the hot paths, on one core, with a bounded loop:
// opening a channel record (what conversations pays when delivery's 2 s
// directory cache misses), sealing a new one, and the inbound HMAC check
// that every inbound request pays, for scale. Run: npx tsx bench/sealing.ts
import { createHmac, randomBytes } from "node:crypto";
import { verifyHubSignature } from "../services/channel-adapters/index.js";
import { createKeyring } from "../services/common/secrets/keyring.js";

const ITERATIONS = 20_000;
const keyring = createKeyring(new Map([["k1", randomBytes(32)]]), "k1");
const row = "conversations.channels:tenant:channel";
const fields = {
  secret: "cvs_x".repeat(10),
  "config.access_token": "EAAG".repeat(50),
  "config.app_secret": "as".repeat(16),
};

function measure(name: string, work: () => void): void {
  for (let i = 0; i < 1000; i++) work();
  const started = process.hrtime.bigint();
  for (let i = 0; i < ITERATIONS; i++) work();
  const micros = Number(process.hrtime.bigint() - started) / 1000 / ITERATIONS;
  console.log(`${name.padEnd(46)} ${micros.toFixed(2).padStart(8)} µs/op  ${Math.round(1e6 / micros)} ops/s`);
}

const { dataKey, wrapped } = keyring.createDataKey(row);
const sealed = Object.entries(fields).map(
  ([field, value]) => [field, dataKey.seal(field, Buffer.from(value))] as const,
);
measure("seal a channel (new data key + 3 fields)", () => {
  const fresh = keyring.createDataKey(row);
  for (const [field, value] of Object.entries(fields)) fresh.dataKey.seal(field, Buffer.from(value));
});
measure("open a channel record (unwrap + 3 fields)", () => {
  const key = keyring.openDataKey(wrapped, row);
  for (const [field, value] of sealed) key.open(field, value);
});
const body = Buffer.from(JSON.stringify({ external_id: "e", message_id: "m", text: "x".repeat(1000) }));
const signature = `sha256=${createHmac("sha256", fields.secret).update(body).digest("hex")}`;
measure("inbound HMAC-SHA256 check, 1 KiB body", () => {
  if (!verifyHubSignature(body, fields.secret, signature)) throw new Error("signature");
});
