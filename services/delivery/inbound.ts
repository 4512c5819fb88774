import type { JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ActivityType } from "../../gen/converger/v1/conversations_pb.js";
import type { ReceiveInboundRequest, ReceiveInboundResponse } from "../../gen/converger/v1/delivery_pb.js";
import {
  adapterOf,
  type ChannelAdapter,
  InboundError,
  type InboundMessage,
  verifyHubSignature,
} from "../channel-adapters/index.js";
import type { RateLimits } from "../common/access/rate-limits.js";
import type { Bus } from "../common/events/bus.js";
import { conflict, notFound } from "../common/rpc/errors.js";
import type { ChannelInfo, DeliveryDirectory } from "./directory.js";
import { inboundTotal } from "./metrics.js";
import { publishDelivery } from "./rows.js";
import type { DeliveryStore } from "./store/deliveries.js";

export interface InboundDeps {
  directory: DeliveryDirectory;
  deliveries: DeliveryStore;
  bus: Bus;
  /** Wrong signatures count as failed authentications of the sender's address. */
  rateLimits: RateLimits;
}

/** The channel an inbound request names, if it exists and takes requests. */
export async function inboundChannel(deps: InboundDeps, channelId: string) {
  const channel = await deps.directory.channel(channelId);
  if (!channel) throw notFound("channel");
  if (!channel.tenantActive) throw new ConnectError("tenant is inactive", Code.PermissionDenied);
  if (!channel.active) throw conflict("channel is inactive");
  const adapter = adapterOf(channel.type);
  if (!adapter) throw notFound("channel");
  return { channel, adapter };
}

/**
 * design.md §3 inbound: signature over the raw bytes first (nothing is read
 * before it checks out), then the adapter's parse, then each message stored
 * once per provider message id and each status callback applied. Answers once
 * all of it is committed; delivery and fan-out follow through outbox and bus.
 */
export async function receiveInbound(
  deps: InboundDeps,
  req: ReceiveInboundRequest,
  clientIp: string,
): Promise<ReceiveInboundResponse> {
  // Inbound is not limited per address (providers share a few), but guessing a channel's signature is:
  // per channel and address, so one tenant's wrong app_secret never locks Meta out for everyone.
  const failureKey = `inbound:${req.channelId}@${clientIp}`;
  deps.rateLimits.refuseBlocked(failureKey);
  const { channel, adapter } = await inboundChannel(deps, req.channelId);
  const body = Buffer.from(req.body);
  const key = adapter.inboundSigningKey?.(channel) ?? channel.secret;
  if (!verifyHubSignature(body, key, req.headers["x-hub-signature-256"])) {
    inboundTotal.inc({ channel_type: channel.type, outcome: "bad_signature" });
    await deps.rateLimits.recordAuthFailure(failureKey);
    throw new ConnectError("X-Hub-Signature-256 is missing or does not match", Code.Unauthenticated);
  }
  const batch = parse(adapter, channel, body, req.headers);
  const response: ReceiveInboundResponse = {
    $typeName: "converger.v1.ReceiveInboundResponse",
    activityIds: [],
    duplicates: 0,
    statuses: 0,
  };
  for (const message of batch.messages) {
    const stored = await store(deps, channel, message);
    response.activityIds.push(stored.activity?.id ?? "");
    if (stored.replayed) response.duplicates++;
  }
  for (const status of batch.statuses) {
    const updated = await deps.deliveries.applyProviderStatus(
      channel.id,
      status.providerMessageId,
      status.status,
      status.error,
    );
    if (!updated) continue;
    response.statuses++;
    publishDelivery(deps.bus, updated);
  }
  inboundTotal.inc({ channel_type: channel.type, outcome: "ok" });
  return response;
}

function parse(adapter: ChannelAdapter, channel: ChannelInfo, body: Buffer, headers: Record<string, string>) {
  try {
    return adapter.parseInbound({ body, headers }, channel);
  } catch (error) {
    inboundTotal.inc({ channel_type: channel.type, outcome: "unparseable" });
    if (error instanceof InboundError) throw new ConnectError(error.message, Code.InvalidArgument);
    throw error;
  }
}

function store(deps: InboundDeps, channel: ChannelInfo, message: InboundMessage) {
  return deps.directory.client.postChannelActivity(
    {
      channelId: channel.id,
      externalId: message.externalId,
      messageId: message.messageId,
      from: { id: message.from.id, name: message.from.name ?? "" },
      type: message.type === "event" ? ActivityType.EVENT : ActivityType.MESSAGE,
      text: message.text ?? "",
      attachments: (message.attachments ?? []).map(linkAttachment),
      metadata: message.metadata ?? {},
    },
    { headers: deps.directory.headers },
  );
}

/** Provider attachments are links (url, type, name); anything else about them stays in metadata. */
function linkAttachment(a: JsonObject) {
  const text = (v: unknown) => (typeof v === "string" ? v : "");
  return { url: text(a.url), contentType: text(a.content_type), name: text(a.name) };
}
