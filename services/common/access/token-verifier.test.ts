import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createTokenVerifier, TOKEN_AUDIENCE } from "./token-verifier.js";

const ISSUER = "http://issuer.test";

async function setup() {
  const { publicKey, privateKey } = await generateKeyPair("ES256");
  let keys: JWK[] = [{ ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256" }];
  const fetchKeys = vi.fn(async () => keys);
  const verifier = createTokenVerifier({ issuer: ISSUER, fetchKeys });
  const sign = (lifetimeSeconds: number) =>
    new SignJWT({ token_use: "access", tenant_id: "t1" })
      .setProtectedHeader({ alg: "ES256", kid: "k1" })
      .setIssuer(ISSUER)
      .setAudience(TOKEN_AUDIENCE)
      .setSubject("s")
      .setIssuedAt()
      .setNotBefore("0s")
      .setExpirationTime(`${lifetimeSeconds}s`)
      .setJti("j")
      .sign(privateKey);
  return { verifier, sign, fetchKeys, dropKeys: () => (keys = []) };
}

afterEach(() => vi.useRealTimers());

describe("token verifier cache", () => {
  it("never trusts a cached token past its exp", async () => {
    const { verifier, sign } = await setup();
    const token = await sign(40);
    await verifier.verify(token);
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 80_000 });
    await expect(verifier.verify(token)).rejects.toThrow(/expired/);
  });

  it("forgets cached tokens when their key leaves the key set", async () => {
    const { verifier, sign, dropKeys } = await setup();
    const token = await sign(600);
    await verifier.verify(token);
    dropKeys();
    verifier.forget();
    await expect(verifier.verify(token)).rejects.toThrow(/unknown signing key/);
  });

  it("does not reload keys for every unknown kid", async () => {
    const { verifier, sign, fetchKeys } = await setup();
    await verifier.verify(await sign(600));
    const forged = (await sign(600)).replace(
      /^[^.]+/,
      Buffer.from(JSON.stringify({ alg: "ES256", kid: "nope" })).toString("base64url"),
    );
    for (let i = 0; i < 20; i++) await expect(verifier.verify(forged)).rejects.toThrow();
    expect(fetchKeys).toHaveBeenCalledTimes(1);
  });
});
