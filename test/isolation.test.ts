import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, fixtures, startTestApp, type TestApp } from "./helpers/app.js";

let t: TestApp;
let mine: { key: string; channel: string; conversation: string; activity: string };
let theirs: { key: string; channel: string; conversation: string; activity: string };

async function tenantWithData(name: string) {
  const f = fixtures(t.baseUrl);
  const { key } = await f.tenant(name);
  const channel = (await f.channel(key)).id;
  const conversation = (await f.conversation(key, channel)).id;
  const activity = (await f.message(key, conversation, `${name} secret`)).body.id as string;
  await call(t.baseUrl, "POST", "/v1/events", {
    key,
    headers: { "X-Tenant-ID": (await tenantId(key)) as string },
    body: { message: `${name} event` },
  });
  return { key, channel, conversation, activity };
}

async function tenantId(key: string) {
  const res = await call(t.baseUrl, "GET", "/v1/channels", { key });
  return res.body.channels[0]?.tenant_id;
}

beforeAll(async () => {
  t = await startTestApp();
  mine = await tenantWithData("mine");
  theirs = await tenantWithData("theirs");
});
afterAll(() => t?.stop());

describe("tenant isolation", () => {
  it("answers 404 for the other tenant's objects through every route", async () => {
    const routes: [string, string, unknown?][] = [
      ["GET", `/v1/channels/${theirs.channel}`],
      ["PATCH", `/v1/channels/${theirs.channel}`, { name: "hijack" }],
      ["POST", `/v1/channels/${theirs.channel}/rotate-secret`],
      ["POST", "/v1/conversations", { channel_id: theirs.channel }],
      ["GET", `/v1/conversations/${theirs.conversation}`],
      ["POST", `/v1/conversations/${theirs.conversation}/close`],
      [
        "POST",
        `/v1/conversations/${theirs.conversation}/activities`,
        { type: "message", text: "x", from: { id: "u" } },
      ],
      ["POST", `/v1/conversations/${theirs.conversation}/activities`, { type: "typing", from: { id: "u" } }],
      ["GET", `/v1/conversations/${theirs.conversation}/activities`],
      ["GET", `/v1/conversations/${mine.conversation}/activities?watermark=${theirs.activity}`],
      ["POST", `/v1/conversations/${theirs.conversation}/read`, { user_id: "u" }],
    ];
    for (const [method, path, body] of routes) {
      const res = await call(t.baseUrl, method, path, { key: mine.key, body });
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(JSON.stringify(res.body)).not.toContain("theirs");
    }
  });

  it("lists only the caller's own channels, conversations and events", async () => {
    for (const path of ["/v1/channels", "/v1/conversations", "/v1/events"]) {
      const res = await call(t.baseUrl, "GET", path, { key: mine.key });
      expect(res.status).toBe(200);
      const text = JSON.stringify(res.body);
      expect(text).not.toContain(theirs.channel);
      expect(text).not.toContain(theirs.conversation);
      expect(text).not.toContain("theirs");
    }
  });

  it("leaves the other tenant's data untouched after the attempts", async () => {
    const res = await call(t.baseUrl, "GET", `/v1/conversations/${theirs.conversation}/activities`, {
      key: theirs.key,
    });
    expect(res.body.activities.map((a: { text: string }) => a.text)).toEqual(["theirs secret"]);
    const ch = await call(t.baseUrl, "GET", `/v1/channels/${theirs.channel}`, { key: theirs.key });
    expect(ch.body.name).not.toBe("hijack");
    const conv = await call(t.baseUrl, "GET", `/v1/conversations/${theirs.conversation}`, { key: theirs.key });
    expect(conv.body.status).toBe("active");
  });
});
