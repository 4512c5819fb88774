import http from "node:http";
import type { AddressInfo } from "node:net";
import type { JsonObject } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import {
  type AdapterChannel,
  type ChannelAdapter,
  type DeliverInput,
  DeliveryError,
  InboundError,
  type InboundRequest,
} from "./adapter.js";
import { instagram } from "./channels/instagram.js";
import { messenger } from "./channels/messenger.js";
import { telegram } from "./channels/telegram.js";
import { whatsappInfobip } from "./channels/whatsapp-infobip.js";
import { whatsappMeta } from "./channels/whatsapp-meta.js";
import { createOutboundHttp, OutboundRefused } from "./http-out.js";

interface Recorded {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: unknown;
}

interface Answer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

interface FakeProvider {
  baseUrl: string;
  requests: Recorded[];
}

const servers: http.Server[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

/** A loopback server recording each request and answering like the provider. */
async function fakeProvider(answer: (req: Recorded) => Answer): Promise<FakeProvider> {
  const requests: Recorded[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      const recorded = {
        method: req.method ?? "",
        path: req.url ?? "",
        headers: req.headers,
        body: text ? JSON.parse(text) : undefined,
      };
      requests.push(recorded);
      const { status, body, headers } = answer(recorded);
      res.writeHead(status, { "content-type": "application/json", ...headers });
      res.end(body === undefined ? "" : JSON.stringify(body));
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { baseUrl: `http://127.0.0.1:${port}`, requests };
}

function channelOf(type: string, config: JsonObject): AdapterChannel {
  return { id: "ch_1", tenantId: "t_1", type, config, secret: "channel-secret" };
}

function deliverInput(
  channel: AdapterChannel,
  // A present but undefined externalId stands for a conversation without a recipient.
  overrides: { externalId?: string | undefined; text?: string; type?: string } = {},
): DeliverInput {
  const externalId = "externalId" in overrides ? overrides.externalId : "15551234567";
  return {
    deliveryId: "dlv_0001",
    activity: {
      id: "act_1",
      conversation_id: "conv_1",
      seq: "7",
      type: overrides.type ?? "message",
      text: overrides.text ?? "Hello there",
      from: { id: "agent", name: "Agent" },
    },
    channel,
    ...(externalId === undefined ? {} : { externalId }),
    http: createOutboundHttp({ allowPrivate: true }),
  };
}

function inbound(body: unknown): InboundRequest {
  return { body: Buffer.from(typeof body === "string" ? body : JSON.stringify(body)), headers: {} };
}

async function deliveryError(adapter: ChannelAdapter, input: DeliverInput): Promise<DeliveryError> {
  const error = await adapter.deliver(input).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DeliveryError);
  return error as DeliveryError;
}

const metaError = (code: number, message: string) => ({
  error: { message, type: "OAuthException", code, fbtrace_id: "AbC123" },
});

describe("whatsapp_meta", () => {
  const config = (baseUrl: string): JsonObject => ({
    phone_number_id: "106540352242922",
    access_token: "EAAG-token",
    verify_token: "verify-me",
    app_secret: "app-secret",
    base_url: `${baseUrl}/v18.0`,
  });

  it("sends a text message through the Graph API and returns the wamid", async () => {
    const meta = await fakeProvider(() => ({
      status: 200,
      body: {
        messaging_product: "whatsapp",
        contacts: [{ input: "15551234567", wa_id: "15551234567" }],
        messages: [{ id: "wamid.HBgLMTU1NTEyMzQ1NjcVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA" }],
      },
    }));
    const result = await whatsappMeta.deliver(deliverInput(channelOf("whatsapp_meta", config(meta.baseUrl))));
    expect(result).toEqual({ providerMessageId: "wamid.HBgLMTU1NTEyMzQ1NjcVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA" });
    expect(meta.requests).toHaveLength(1);
    const [req] = meta.requests;
    expect(req?.method).toBe("POST");
    expect(req?.path).toBe("/v18.0/106540352242922/messages");
    expect(req?.headers.authorization).toBe("Bearer EAAG-token");
    expect(req?.headers["content-type"]).toBe("application/json");
    expect(req?.body).toEqual({
      messaging_product: "whatsapp",
      recipient_type: "individual",
      to: "15551234567",
      type: "text",
      text: { preview_url: false, body: "Hello there" },
    });
  });

  it("encodes the phone number id as one path segment", async () => {
    const meta = await fakeProvider(() => ({ status: 200, body: { messages: [{ id: "wamid.1" }] } }));
    const channel = channelOf("whatsapp_meta", { ...config(meta.baseUrl), phone_number_id: "1/../../me?x=1" });
    await whatsappMeta.deliver(deliverInput(channel));
    expect(meta.requests[0]?.path).toBe("/v18.0/1%2F..%2F..%2Fme%3Fx%3D1/messages");
  });

  it("makes a 400 with Meta's error body permanent, with Meta's message and code", async () => {
    const meta = await fakeProvider(() => ({
      status: 400,
      body: metaError(131030, "(#131030) Recipient phone number not in allowed list"),
    }));
    const error = await deliveryError(whatsappMeta, deliverInput(channelOf("whatsapp_meta", config(meta.baseUrl))));
    expect(error.permanent).toBe(true);
    expect(error.message).toContain("HTTP 400");
    expect(error.message).toContain("Recipient phone number not in allowed list");
    expect(error.message).toContain("131030");
  });

  it("drops U+0000 from a provider's error text, which is stored as last_error", async () => {
    const meta = await fakeProvider(() => ({ status: 400, body: metaError(100, "bad\u0000 param") }));
    const error = await deliveryError(whatsappMeta, deliverInput(channelOf("whatsapp_meta", config(meta.baseUrl))));
    expect(error.message).toContain("bad param");
  });

  it("retries 500, 429 and Meta's throttling codes even when answered with 400", async () => {
    for (const answer of [
      { status: 500, body: metaError(131000, "Something went wrong") },
      { status: 429, body: metaError(4, "(#4) Application request limit reached") },
      { status: 400, body: metaError(130429, "(#130429) Rate limit hit") },
      { status: 400, body: { error: { message: "Please retry", code: 1, is_transient: true } } },
      { status: 502, body: "<html>Bad gateway</html>" },
    ]) {
      const meta = await fakeProvider(() => answer);
      const error = await deliveryError(whatsappMeta, deliverInput(channelOf("whatsapp_meta", config(meta.baseUrl))));
      expect(error.permanent, JSON.stringify(answer)).toBe(false);
    }
  });

  it("refuses permanently without a recipient, and sends nothing for events or blank text", async () => {
    const meta = await fakeProvider(() => ({ status: 200, body: {} }));
    const channel = channelOf("whatsapp_meta", config(meta.baseUrl));
    const error = await deliveryError(whatsappMeta, deliverInput(channel, { externalId: undefined }));
    expect(error.permanent).toBe(true);
    expect(error.message).toBe("conversation has no WhatsApp recipient");
    expect(await whatsappMeta.deliver(deliverInput(channel, { type: "event", text: "" }))).toEqual({});
    expect(await whatsappMeta.deliver(deliverInput(channel, { text: "  " }))).toEqual({});
    expect(meta.requests).toHaveLength(0);
  });

  const channel = channelOf("whatsapp_meta", config("https://graph.example"));
  const webhook = (value: Record<string, unknown>, field = "messages", phoneNumberId = "106540352242922") => ({
    object: "whatsapp_business_account",
    entry: [
      {
        id: "102290129340398",
        changes: [
          {
            field,
            value: {
              messaging_product: "whatsapp",
              metadata: { display_phone_number: "15550783881", phone_number_id: phoneNumberId },
              ...value,
            },
          },
        ],
      },
    ],
  });

  it("parses text and media messages with the sender's profile name", () => {
    const batch = whatsappMeta.parseInbound(
      inbound(
        webhook({
          contacts: [{ profile: { name: "Sheena Nelson" }, wa_id: "16505551234" }],
          messages: [
            { from: "16505551234", id: "wamid.AAA", timestamp: "1749416383", type: "text", text: { body: "Hi!" } },
            {
              from: "16505551234",
              id: "wamid.BBB",
              timestamp: "1749416390",
              type: "image",
              image: { caption: "look", mime_type: "image/jpeg", sha256: "abc", id: "1003383421387256" },
            },
          ],
        }),
      ),
      channel,
    );
    expect(batch.statuses).toEqual([]);
    expect(batch.messages).toEqual([
      {
        externalId: "16505551234",
        messageId: "wamid.AAA",
        from: { id: "16505551234", name: "Sheena Nelson" },
        type: "message",
        text: "Hi!",
      },
      {
        externalId: "16505551234",
        messageId: "wamid.BBB",
        from: { id: "16505551234", name: "Sheena Nelson" },
        type: "message",
        text: "",
        metadata: {
          whatsapp_type: "image",
          image: { caption: "look", mime_type: "image/jpeg", sha256: "abc", id: "1003383421387256" },
        },
      },
    ]);
  });

  it("parses statuses, failures with their error", () => {
    const batch = whatsappMeta.parseInbound(
      inbound(
        webhook({
          statuses: [
            { id: "wamid.S1", status: "delivered", timestamp: "1749416400", recipient_id: "16505551234" },
            { id: "wamid.S2", status: "read", timestamp: "1749416401", recipient_id: "16505551234" },
            {
              id: "wamid.S3",
              status: "failed",
              timestamp: "1749416402",
              recipient_id: "16505551234",
              errors: [{ code: 131047, title: "Re-engagement message", message: "Re-engagement message" }],
            },
          ],
        }),
      ),
      channel,
    );
    expect(batch.messages).toEqual([]);
    expect(batch.statuses).toEqual([
      { providerMessageId: "wamid.S1", status: "delivered" },
      { providerMessageId: "wamid.S2", status: "read" },
      { providerMessageId: "wamid.S3", status: "failed", error: "Re-engagement message (code 131047)" },
    ]);
  });

  it("skips other fields and other phone numbers", () => {
    const other = webhook(
      { messages: [{ from: "1", id: "wamid.X", type: "text", text: { body: "x" } }] },
      "messages",
      "999",
    );
    const empty = { messages: [], statuses: [] };
    expect(whatsappMeta.parseInbound(inbound(other), channel)).toEqual(empty);
    expect(
      whatsappMeta.parseInbound(inbound(webhook({ event: "APPROVED" }, "message_template_status_update")), channel),
    ).toEqual(empty);
  });

  it("refuses payloads that are not Meta's webhook shape", () => {
    for (const body of [
      "not json",
      [],
      { object: "page", entry: [] },
      { object: "whatsapp_business_account" },
      { object: "whatsapp_business_account", entry: [{ id: "1", changes: "x" }] },
      webhook({ messages: [{ from: "16505551234", type: "text", text: { body: "no id" } }] }),
      webhook({ messages: [{ from: "16505551234", id: "wamid.1", type: "text", text: {} }] }),
      webhook({ messages: [{ from: 16505551234, id: "wamid.1", type: "text", text: { body: "x" } }] }),
      webhook({ statuses: [{ status: "read" }] }),
      webhook({ messages: "nope" }),
      // U+0000 in a status error, which reaches the deliveries table without an RPC check, or in a key.
      webhook({
        statuses: [{ id: "wamid.S3", status: "failed", recipient_id: "1", errors: [{ code: 1, title: "x\u0000" }] }],
      }),
      webhook({ messages: [{ from: "1", id: "wamid.1", type: "text", text: { body: "x" }, "k\u0000": 1 }] }),
      { ...webhook({}), entry: [{ id: "1", changes: [{ field: "messages", value: { messages: [] } }] }] },
    ]) {
      expect(() => whatsappMeta.parseInbound(inbound(body), channel), JSON.stringify(body)).toThrow(InboundError);
    }
  });

  it("answers the hub challenge only for the right verify token", () => {
    const query = (token: string, mode = "subscribe") =>
      new URLSearchParams({ "hub.mode": mode, "hub.verify_token": token, "hub.challenge": "1158201444" });
    expect(whatsappMeta.answerChallenge?.(query("verify-me"), channel)).toBe("1158201444");
    expect(whatsappMeta.answerChallenge?.(query("verify-mf"), channel)).toBeUndefined();
    expect(whatsappMeta.answerChallenge?.(query("verify-me-too"), channel)).toBeUndefined();
    expect(whatsappMeta.answerChallenge?.(query(""), channel)).toBeUndefined();
    expect(whatsappMeta.answerChallenge?.(query("verify-me", "unsubscribe"), channel)).toBeUndefined();
    expect(whatsappMeta.answerChallenge?.(new URLSearchParams({ "hub.mode": "subscribe" }), channel)).toBeUndefined();
  });

  it("verifies inbound signatures with the app secret", () => {
    expect(whatsappMeta.inboundSigningKey?.(channel)).toBe("app-secret");
  });
});

describe("whatsapp_infobip", () => {
  const config = (baseUrl: string): JsonObject => ({ base_url: baseUrl, api_key: "ib-key", sender: "447860099299" });

  it("sends a text message with our delivery id and returns Infobip's message id", async () => {
    const infobip = await fakeProvider((req) => ({
      status: 200,
      body: {
        to: "15551234567",
        messageCount: 1,
        messageId: (req.body as { messageId: string }).messageId,
        status: {
          groupId: 1,
          groupName: "PENDING",
          id: 7,
          name: "PENDING_ENROUTE",
          description: "Message sent to next instance",
        },
      },
    }));
    const result = await whatsappInfobip.deliver(deliverInput(channelOf("whatsapp_infobip", config(infobip.baseUrl))));
    expect(result).toEqual({ providerMessageId: "dlv_0001" });
    const [req] = infobip.requests;
    expect(req?.method).toBe("POST");
    expect(req?.path).toBe("/whatsapp/1/message/text");
    expect(req?.headers.authorization).toBe("App ib-key");
    expect(req?.body).toEqual({
      from: "447860099299",
      to: "15551234567",
      messageId: "dlv_0001",
      content: { text: "Hello there" },
    });
  });

  it("classifies errors: 4xx permanent with Infobip's text, 5xx and 429 retryable", async () => {
    const unauthorized = await fakeProvider(() => ({
      status: 401,
      body: { requestError: { serviceException: { messageId: "UNAUTHORIZED", text: "Invalid login details" } } },
    }));
    const error = await deliveryError(
      whatsappInfobip,
      deliverInput(channelOf("whatsapp_infobip", config(unauthorized.baseUrl))),
    );
    expect(error.permanent).toBe(true);
    expect(error.message).toContain("Invalid login details (UNAUTHORIZED)");
    for (const status of [500, 503, 429]) {
      const down = await fakeProvider(() => ({ status }));
      const retry = await deliveryError(
        whatsappInfobip,
        deliverInput(channelOf("whatsapp_infobip", config(down.baseUrl))),
      );
      expect(retry.permanent).toBe(false);
    }
    const none = await deliveryError(
      whatsappInfobip,
      deliverInput(channelOf("whatsapp_infobip", config(unauthorized.baseUrl)), { externalId: undefined }),
    );
    expect(none.permanent).toBe(true);
    expect(none.message).toBe("conversation has no WhatsApp recipient");
  });

  const channel = channelOf("whatsapp_infobip", config("https://api.example"));

  it("parses inbound messages", () => {
    const batch = whatsappInfobip.parseInbound(
      inbound({
        results: [
          {
            from: "385977666618",
            to: "447860099299",
            integrationType: "WHATSAPP",
            receivedAt: "2024-01-15T10:20:30.000+0000",
            messageId: "ABEGOFl3ZmYXAhAc-aUpOBQ5nnd7",
            pairedMessageId: null,
            callbackData: null,
            message: { type: "TEXT", text: "Hello from WhatsApp" },
            contact: { name: "Frank" },
            price: { pricePerMessage: 0, currency: "EUR" },
          },
          {
            from: "385977666618",
            to: "447860099299",
            integrationType: "WHATSAPP",
            receivedAt: "2024-01-15T10:21:00.000+0000",
            messageId: "ABEGOFl3ZmYXAhAc-aUpOBQ5nnd8",
            message: { type: "IMAGE", url: "https://example.com/img.jpg", caption: "pic" },
            contact: { name: "Frank" },
          },
        ],
        messageCount: 2,
        pendingMessageCount: 0,
      }),
      channel,
    );
    expect(batch.statuses).toEqual([]);
    expect(batch.messages).toEqual([
      {
        externalId: "385977666618",
        messageId: "ABEGOFl3ZmYXAhAc-aUpOBQ5nnd7",
        from: { id: "385977666618", name: "Frank" },
        type: "message",
        text: "Hello from WhatsApp",
      },
      {
        externalId: "385977666618",
        messageId: "ABEGOFl3ZmYXAhAc-aUpOBQ5nnd8",
        from: { id: "385977666618", name: "Frank" },
        type: "message",
        text: "",
        metadata: {
          whatsapp_type: "image",
          message: { type: "IMAGE", url: "https://example.com/img.jpg", caption: "pic" },
        },
      },
    ]);
  });

  it("parses delivery and seen reports", () => {
    const report = (messageId: string, groupName: string, extra: Record<string, unknown> = {}) => ({
      messageId,
      to: "385977666618",
      status: { groupId: 3, groupName, id: 5, name: `${groupName}_X`, description: `${groupName} description` },
      ...extra,
    });
    const batch = whatsappInfobip.parseInbound(
      inbound({
        results: [
          report("m1", "DELIVERED"),
          report("m2", "PENDING"),
          report("m3", "DELIVERED", { seenAt: "2024-01-15T10:25:00.000+0000" }),
          { messageId: "m4", to: "385977666618", seenAt: "2024-01-15T10:25:00.000+0000" },
          report("m5", "UNDELIVERABLE"),
          report("m6", "REJECTED"),
          report("m7", "EXPIRED"),
          report("m8", "SOMETHING_NEW"),
        ],
      }),
      channel,
    );
    expect(batch.messages).toEqual([]);
    expect(batch.statuses).toEqual([
      { providerMessageId: "m1", status: "delivered" },
      { providerMessageId: "m2", status: "sent" },
      { providerMessageId: "m3", status: "read" },
      { providerMessageId: "m4", status: "read" },
      { providerMessageId: "m5", status: "failed", error: "UNDELIVERABLE description" },
      { providerMessageId: "m6", status: "failed", error: "REJECTED description" },
      { providerMessageId: "m7", status: "failed", error: "EXPIRED description" },
    ]);
  });

  it("refuses unparseable payloads", () => {
    for (const body of [
      "{",
      { results: "x" },
      { messageCount: 1 },
      { results: [{ from: "1", to: "2" }] },
      { results: [{ from: "1", messageId: "m", message: { type: "TEXT" } }] },
      { results: [{ messageId: "m", message: { type: "TEXT", text: "no sender" } }] },
      { results: [{ messageId: "m", status: { name: "no group" } }] },
      { results: [{ status: { groupName: "DELIVERED" } }] },
    ]) {
      expect(() => whatsappInfobip.parseInbound(inbound(body), channel), JSON.stringify(body)).toThrow(InboundError);
    }
  });
});

describe("telegram", () => {
  const config = (baseUrl: string): JsonObject => ({ bot_token: "123456:ABC-def", base_url: baseUrl });

  it("calls sendMessage and returns the message id", async () => {
    const bot = await fakeProvider(() => ({
      status: 200,
      body: {
        ok: true,
        result: { message_id: 42, chat: { id: 987654321, type: "private" }, date: 1700000000, text: "Hello there" },
      },
    }));
    const result = await telegram.deliver(
      deliverInput(channelOf("telegram", config(bot.baseUrl)), { externalId: "987654321" }),
    );
    expect(result).toEqual({ providerMessageId: "42" });
    const [req] = bot.requests;
    expect(req?.method).toBe("POST");
    expect(req?.path).toBe("/bot123456%3AABC-def/sendMessage");
    expect(req?.body).toEqual({ chat_id: "987654321", text: "Hello there" });
  });

  it("makes 400/403/404 permanent and 429/500 retryable", async () => {
    for (const [status, permanent] of [
      [400, true],
      [403, true],
      [404, true],
      [429, false],
      [500, false],
    ] as const) {
      const bot = await fakeProvider(() => ({
        status,
        body: { ok: false, error_code: status, description: `Error ${status}: chat not found` },
      }));
      const error = await deliveryError(telegram, deliverInput(channelOf("telegram", config(bot.baseUrl))));
      expect(error.permanent, String(status)).toBe(permanent);
      expect(error.message).toContain(`Error ${status}: chat not found`);
    }
  });

  const channel = channelOf("telegram", config("https://api.example"));

  it("parses a message update", () => {
    const batch = telegram.parseInbound(
      inbound({
        update_id: 10000,
        message: {
          message_id: 1365,
          from: { id: 1111111, is_bot: false, first_name: "Ada", last_name: "Lovelace", username: "ada" },
          chat: { id: 1111111, type: "private", first_name: "Ada" },
          date: 1441645532,
          text: "/start hello",
        },
      }),
      channel,
    );
    expect(batch).toEqual({
      messages: [
        {
          externalId: "1111111",
          messageId: "1111111:1365",
          from: { id: "1111111", name: "Ada Lovelace" },
          type: "message",
          text: "/start hello",
        },
      ],
      statuses: [],
    });
  });

  it("acknowledges other update kinds without messages", () => {
    const edited = { update_id: 10001, edited_message: { message_id: 1, chat: { id: 1 }, text: "x" } };
    expect(telegram.parseInbound(inbound(edited), channel)).toEqual({ messages: [], statuses: [] });
  });

  it("refuses malformed updates", () => {
    const message = { message_id: 1, from: { id: 5, first_name: "A" }, chat: { id: 5, type: "private" }, text: "x" };
    for (const body of [
      "nope",
      { message },
      { update_id: 1, message: { ...message, chat: { id: "5" } } },
      { update_id: 1, message: { ...message, message_id: 1.5 } },
      { update_id: 1, message: { ...message, from: undefined } },
      { update_id: 1, message: { ...message, text: 7 } },
    ]) {
      expect(() => telegram.parseInbound(inbound(body), channel), JSON.stringify(body)).toThrow(InboundError);
    }
  });
});

describe("instagram", () => {
  const config = (baseUrl: string): JsonObject => ({
    instagram_account_id: "17841400000000000",
    access_token: "IGQ-token",
    base_url: `${baseUrl}/v18.0`,
  });

  it("sends through the Graph API and returns the message id", async () => {
    const graph = await fakeProvider(() => ({
      status: 200,
      body: { recipient_id: "5301234567", message_id: "aWdfZAG1fbWlk" },
    }));
    const result = await instagram.deliver(
      deliverInput(channelOf("instagram", config(graph.baseUrl)), { externalId: "5301234567" }),
    );
    expect(result).toEqual({ providerMessageId: "aWdfZAG1fbWlk" });
    const [req] = graph.requests;
    expect(req?.method).toBe("POST");
    expect(req?.path).toBe("/v18.0/17841400000000000/messages");
    expect(req?.headers.authorization).toBe("Bearer IGQ-token");
    expect(req?.body).toEqual({ recipient: { id: "5301234567" }, message: { text: "Hello there" } });
  });

  it("classifies Graph errors", async () => {
    const bad = await fakeProvider(() => ({ status: 400, body: metaError(100, "Invalid parameter") }));
    expect((await deliveryError(instagram, deliverInput(channelOf("instagram", config(bad.baseUrl))))).permanent).toBe(
      true,
    );
    const down = await fakeProvider(() => ({ status: 500, body: metaError(2, "Service temporarily unavailable") }));
    expect((await deliveryError(instagram, deliverInput(channelOf("instagram", config(down.baseUrl))))).permanent).toBe(
      false,
    );
  });

  const channel = channelOf("instagram", config("https://graph.example"));
  const webhook = (messaging: unknown[]) => ({
    object: "instagram",
    entry: [{ id: "17841400000000000", time: 1700000000000, messaging }],
  });

  it("parses messages and skips echoes of our own sends", () => {
    const batch = instagram.parseInbound(
      inbound(
        webhook([
          {
            sender: { id: "5301234567" },
            recipient: { id: "17841400000000000" },
            timestamp: 1700000000000,
            message: { mid: "aWdfZAG1fbWlkOjE", text: "hey" },
          },
          {
            sender: { id: "17841400000000000" },
            recipient: { id: "5301234567" },
            timestamp: 1700000000001,
            message: { mid: "aWdfZAG1fbWlkOjI", text: "our reply", is_echo: true },
          },
        ]),
      ),
      channel,
    );
    expect(batch).toEqual({
      messages: [
        {
          externalId: "5301234567",
          messageId: "aWdfZAG1fbWlkOjE",
          from: { id: "5301234567" },
          type: "message",
          text: "hey",
        },
      ],
      statuses: [],
    });
  });

  it("refuses malformed payloads", () => {
    for (const body of [
      { object: "page", entry: [] },
      { object: "instagram" },
      webhook([{ sender: { id: "1" }, message: { text: "no mid" } }]),
      webhook([{ message: { mid: "m", text: "no sender" } }]),
      webhook(["x"]),
    ]) {
      expect(() => instagram.parseInbound(inbound(body), channel), JSON.stringify(body)).toThrow(InboundError);
    }
  });
});

describe("messenger", () => {
  const config = (baseUrl: string): JsonObject => ({
    page_id: "110000000000001",
    page_access_token: "EAAP-page-token",
    app_secret: "messenger-app-secret",
    base_url: `${baseUrl}/v18.0`,
  });

  it("sends a RESPONSE message and returns the message id", async () => {
    const graph = await fakeProvider(() => ({
      status: 200,
      body: { recipient_id: "2400000000000001", message_id: "m_AbC" },
    }));
    const result = await messenger.deliver(
      deliverInput(channelOf("messenger", config(graph.baseUrl)), { externalId: "2400000000000001" }),
    );
    expect(result).toEqual({ providerMessageId: "m_AbC" });
    const [req] = graph.requests;
    expect(req?.method).toBe("POST");
    expect(req?.path).toBe("/v18.0/110000000000001/messages");
    expect(req?.headers.authorization).toBe("Bearer EAAP-page-token");
    expect(req?.body).toEqual({
      recipient: { id: "2400000000000001" },
      messaging_type: "RESPONSE",
      message: { text: "Hello there" },
    });
  });

  it("classifies Graph errors", async () => {
    const bad = await fakeProvider(() => ({
      status: 400,
      body: metaError(551, "This person isn't available right now."),
    }));
    const error = await deliveryError(messenger, deliverInput(channelOf("messenger", config(bad.baseUrl))));
    expect(error.permanent).toBe(true);
    expect(error.message).toContain("This person isn't available right now. (code 551)");
    const throttled = await fakeProvider(() => ({
      status: 400,
      body: metaError(613, "Calls to this api have exceeded the rate limit."),
    }));
    expect(
      (await deliveryError(messenger, deliverInput(channelOf("messenger", config(throttled.baseUrl))))).permanent,
    ).toBe(false);
  });

  const channel = channelOf("messenger", config("https://graph.example"));
  const entry = (id: string, messaging: unknown[]) => ({ id, time: 1700000000000, messaging });
  const user = { id: "2400000000000001" };
  const page = { id: "110000000000001" };

  it("parses messages and deliveries; skips echoes, watermark-only reads and other pages", () => {
    const batch = messenger.parseInbound(
      inbound({
        object: "page",
        entry: [
          entry("110000000000001", [
            { sender: user, recipient: page, timestamp: 1700000000000, message: { mid: "m_1", text: "hello" } },
            {
              sender: user,
              recipient: page,
              timestamp: 1700000000001,
              message: { mid: "m_2", attachments: [{ type: "image", payload: { url: "https://cdn.example/x.jpg" } }] },
            },
            {
              sender: page,
              recipient: user,
              timestamp: 1700000000002,
              message: { mid: "m_3", text: "echo", is_echo: true },
            },
            { sender: user, recipient: page, delivery: { mids: ["m_out1", "m_out2"], watermark: 1700000000003 } },
            { sender: user, recipient: page, read: { watermark: 1700000000004 } },
            { sender: user, recipient: page, postback: { title: "Start", payload: "START" } },
          ]),
          entry("999", [{ sender: user, recipient: { id: "999" }, message: { mid: "m_other", text: "not ours" } }]),
        ],
      }),
      channel,
    );
    expect(batch.messages).toEqual([
      { externalId: user.id, messageId: "m_1", from: { id: user.id }, type: "message", text: "hello" },
      {
        externalId: user.id,
        messageId: "m_2",
        from: { id: user.id },
        type: "message",
        text: "",
        metadata: { provider_attachments: [{ type: "image", payload: { url: "https://cdn.example/x.jpg" } }] },
      },
    ]);
    expect(batch.statuses).toEqual([
      { providerMessageId: "m_out1", status: "delivered" },
      { providerMessageId: "m_out2", status: "delivered" },
    ]);
  });

  it("refuses malformed payloads", () => {
    for (const body of [
      "",
      { object: "instagram", entry: [] },
      { object: "page", entry: {} },
      { object: "page", entry: [entry("110000000000001", [{ sender: user, delivery: { mids: [1] } }])] },
      { object: "page", entry: [entry("110000000000001", [{ sender: user, message: { mid: "m", text: 5 } }])] },
      { object: "page", entry: [{ time: 1, messaging: [] }] },
    ]) {
      expect(() => messenger.parseInbound(inbound(body), channel), JSON.stringify(body)).toThrow(InboundError);
    }
  });

  it("verifies signatures with the app secret, else the channel secret", () => {
    expect(messenger.inboundSigningKey?.(channel)).toBe("messenger-app-secret");
    const { app_secret: _, ...withoutAppSecret } = channel.config;
    expect(messenger.inboundSigningKey?.({ ...channel, config: withoutAppSecret })).toBe("channel-secret");
  });
});

describe("createOutboundHttp", () => {
  it("refuses private and non-http targets without sending anything", async () => {
    const target = await fakeProvider(() => ({ status: 200, body: {} }));
    const guarded = createOutboundHttp({ allowPrivate: false });
    for (const url of [
      `${target.baseUrl}/`,
      "http://localhost/",
      "http://0x7f000001/",
      `http://localhost.:${new URL(target.baseUrl).port}/`,
      `http://Sub.LocalHost../`,
      `http://127.1:${new URL(target.baseUrl).port}/`,
      `http://[::ffff:127.0.0.1]:${new URL(target.baseUrl).port}/`,
      `http://[::ffff:7f00:1]:${new URL(target.baseUrl).port}/`,
      "http://[::1]/",
      "http://169.254.169.254/latest/meta-data/",
      "file:///etc/passwd",
    ]) {
      await expect(guarded.request(url, { method: "GET" }), url).rejects.toBeInstanceOf(OutboundRefused);
    }
    expect(target.requests).toHaveLength(0);
  });

  it("does not follow redirects", async () => {
    const target = await fakeProvider(() => ({ status: 302, headers: { location: "/elsewhere" } }));
    const res = await createOutboundHttp({ allowPrivate: true }).request(`${target.baseUrl}/start`, { method: "GET" });
    expect(res.status).toBe(302);
    expect(res.headers.location).toBe("/elsewhere");
    expect(target.requests.map((r) => r.path)).toEqual(["/start"]);
  });
});
