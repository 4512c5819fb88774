import { describe, expect, it } from "vitest";
import { createLogger } from "./logger.js";

function capture() {
  const lines: string[] = [];
  const log = createLogger("debug", { write: (line: string) => void lines.push(line) });
  return { log, text: () => lines.join("") };
}

describe("the logger's redaction policy", () => {
  it("drops credential-named keys at any depth, in child bindings and in error properties", () => {
    const { log, text } = capture();
    const error = Object.assign(new Error("send failed"), { config: { app_secret: "S-app-secret" } });
    log
      .child({ service: "t", "x-api-key": "S-binding-key" })
      .debug({ a: { b: { c: { d: { clientSecret: "S-client", refresh_token: "S-refresh" } } } }, err: error }, "x");
    expect(text()).not.toMatch(/S-app-secret|S-binding-key|S-client|S-refresh/);
    expect(text()).toContain('"service":"t"');
  });

  it("keeps only harmless headers of a header map, since any other may be a configured secret", () => {
    const { log, text } = capture();
    log.info(
      { req: { headers: { "content-type": "application/json", "x-custom-auth": "S-custom", cookie: "S-cookie" } } },
      "request",
    );
    log.info({ headers: new Headers({ authorization: "Bearer S-bearer", "x-hub-signature-256": "sha256=S-sig" }) });
    expect(text()).toContain('"content-type":"application/json"');
    expect(text()).not.toMatch(/S-custom|S-cookie|S-bearer|S-sig/);
  });

  it("scrubs credentials out of URLs, form bodies, quoted JSON, messages, stacks and causes", () => {
    const { log, text } = capture();
    const cause = new Error('provider said {"access_token":"S-quoted"} for Bearer S-scheme');
    log.error(
      {
        err: new Error("GET https://graph.example/v18.0/me?access_token=S-query&fields=id failed", { cause }),
        url: new URL("https://u:S-password@example.com/x?hub.verify_token=S-verify"),
        body: "grant_type=client_credentials&client_secret=S-form",
        telegram: "https://api.telegram.org/bot123456:S-bot/sendMessage",
      },
      "minted cvg_S0123456789abcdef, cva_S-session-secret and eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.S-signature",
    );
    expect(text()).not.toMatch(
      /S-query|S-quoted|S-scheme|S-password|S-verify|S-form|S-bot|S0123456789|S-session|S-signature/,
    );
    expect(text()).toContain("fields=id");
    expect(text()).toContain("caused by");
  });
});
