// Auth throughput. (1) Token verification on one core: the shared verifier
// (ES256, key set cached) in a tight loop, in this process. (2) /auth/token
// issuance over HTTP against the product (child process, bench/server.ts).
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { createTokenVerifier, TOKEN_AUDIENCE } from "../services/common/access/token-verifier.js";
import { Client, createTenant, fmt, options, percentiles } from "./lib.js";
import { startServer } from "./server.js";

const opts = options("auth", { seconds: 5, clients: 16, verifications: 2_000_000 });
const GOAL_VERIFY_PER_S = 20_000;

// (1) Verification on one core, no I/O once the key set is loaded: distinct
// tokens (every one a full ES256 verification) and the same token again (the
// verified-token cache, the common case of a client reusing its token).
const ISSUER = "http://bench.invalid";
const { publicKey, privateKey } = await generateKeyPair("ES256");
const jwk = { ...(await exportJWK(publicKey)), kid: "bench", alg: "ES256" };
const DISTINCT_TOKENS = 2000;
const tokens = await Promise.all(
  Array.from({ length: DISTINCT_TOKENS }, () =>
    new SignJWT({ token_use: "access", tenant_id: crypto.randomUUID(), scope: "conversations:read" })
      .setProtectedHeader({ alg: "ES256", kid: "bench" })
      .setIssuer(ISSUER)
      .setAudience(TOKEN_AUDIENCE)
      .setSubject("cvc_bench")
      .setIssuedAt()
      .setNotBefore("0s")
      .setExpirationTime("15m")
      .setJti(crypto.randomUUID())
      .sign(privateKey),
  ),
);

async function verifyRate(cacheSize: number, pick: (i: number) => string): Promise<number> {
  const verifier = createTokenVerifier({ issuer: ISSUER, fetchKeys: async () => [jwk], cacheSize });
  await verifier.verify(pick(0)); // loads the key set
  const deadline = performance.now() + opts.seconds * 1000;
  const start = performance.now();
  let done = 0;
  while (done < opts.verifications && performance.now() < deadline) {
    // A few in flight, as concurrent requests would have.
    await Promise.all([0, 1, 2, 3].map((k) => verifier.verify(pick(done + k))));
    done += 4;
  }
  return done / ((performance.now() - start) / 1000);
}

const uncached = await verifyRate(0, (i) => tokens[i % DISTINCT_TOKENS] as string);
const cached = await verifyRate(10_000, (i) => tokens[i % 100] as string);
console.log(`\nverify, ES256, every token new (1 core): ${fmt(uncached, 10, 0)} tokens/s`);
console.log(`verify, ES256, tokens seen before (1 core): ${fmt(cached, 10, 0)} tokens/s`);
console.log(`goal ≥ ${GOAL_VERIFY_PER_S}/s with key cache: ${cached >= GOAL_VERIFY_PER_S ? "met" : "NOT met"}`);

// (2) Issuance over HTTP: N clients POST /auth/token (client_credentials) for T seconds.
const server = await startServer("services/host/main.ts");
try {
  const client = new Client(server.url, opts.clients);
  const { headers } = await createTenant(client, server);
  const oauth = await client.json<{ client_id: string; client_secret: string }>(
    "POST",
    "/v1/oauth-clients",
    201,
    headers,
    {
      name: "bench",
      scopes: ["conversations:read"],
    },
  );
  const form = new URLSearchParams({
    grant_type: "client_credentials",
    client_id: oauth.client_id,
    client_secret: oauth.client_secret,
  }).toString();
  const formHeaders = {
    "content-type": "application/x-www-form-urlencoded",
    "content-length": Buffer.byteLength(form),
  };
  const latencies: number[] = [];
  let errors = 0;
  const deadline = performance.now() + opts.seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: opts.clients }, async () => {
      for (let i = 0; i < 1_000_000 && performance.now() < deadline; i++) {
        const t0 = performance.now();
        const res = await client.send("POST", "/auth/token", formHeaders, form);
        if (res.status === 200) latencies.push(performance.now() - t0);
        else errors++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const p = percentiles(latencies);
  console.log(
    `issue (/auth/token, ${opts.clients} clients): ${fmt(latencies.length / elapsed, 10, 0)} tokens/s` +
      `  p50 ${fmt(p.p50, 0)} ms  p99 ${fmt(p.p99, 0)} ms  errors ${errors}`,
  );
} finally {
  await server.stop();
}
