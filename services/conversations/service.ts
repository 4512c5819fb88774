import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { AuthService } from "../../gen/converger/v1/auth_pb.js";
import { ChannelsService } from "../../gen/converger/v1/channels_pb.js";
import { ConversationsService, DirectoryService } from "../../gen/converger/v1/conversations_pb.js";
import { EventsService } from "../../gen/converger/v1/events_pb.js";
import { ActivityFrameSchema } from "../../gen/converger/v1/frames_pb.js";
import { TenantsService } from "../../gen/converger/v1/tenants_pb.js";
import { UploadsService } from "../../gen/converger/v1/uploads_pb.js";
import { createAccessInterceptor } from "../common/access/access.js";
import { announceDirectoryChange } from "../common/access/directory-client.js";
import { internalHeaders } from "../common/access/internal.js";
import { conversationTopic } from "../common/events/bus.js";
import { createOutboxRelay } from "../common/events/outbox-relay.js";
import { forService } from "../common/obs/logger.js";
import { createErrorInterceptor } from "../common/rpc/log-interceptor.js";
import { loadKeyring } from "../common/secrets/load.js";
import { type MigrationSet, type ModuleDeps, requirePool, type ServiceModule } from "../common/service.js";
import { createActivityWriter } from "./activity-writer.js";
import { createChannelHealth } from "./channel-health.js";
import { channelsImpl, sealedSecretsImpl } from "./handlers/channels.js";
import { conversationsImpl } from "./handlers/conversations.js";
import { directoryImpl } from "./handlers/directory.js";
import { eventsImpl } from "./handlers/events.js";
import { outboxImpl } from "./handlers/outbox.js";
import { tenantsImpl } from "./handlers/tenants.js";
import { createActivityStore } from "./store/activities.js";
import {
  checkChannelKeys,
  createChannelSealer,
  rewrapChannels,
  sealPlaintextChannels,
} from "./store/channel-sealing.js";
import { createChannelStore } from "./store/channels.js";
import { createConversationStore } from "./store/conversations.js";
import { createDirectoryStore } from "./store/directory.js";
import { createEventStore } from "./store/events.js";
import { activityMessage } from "./store/rows.js";
import { createTenantStore } from "./store/tenants.js";

export const conversationsMigrations: MigrationSet = {
  owner: "conversations",
  dir: fileURLToPath(new URL("./migrations", import.meta.url)),
};

/** Tenants, channels, conversations, activities and the event feed, with their outbox. */
export function createConversationsModule(deps: ModuleDeps) {
  const { bus, config } = deps;
  const pool = requirePool(deps);
  const log = forService(deps.log, "conversations");
  const tenants = createTenantStore(pool);
  const relay = createOutboxRelay({
    pool,
    table: "outbox",
    outbox: "conversations",
    log,
    eventLog: deps.eventLog,
    retentionHours: config.outboxRetentionHours,
    async onPrune() {
      await pool.query("DELETE FROM idempotency_keys WHERE expires_at < now()");
    },
  });
  const writer = createActivityWriter({
    pool,
    idempotencyTtlHours: config.idempotencyTtlHours,
    render: activityMessage,
    onError: (error) => log.error({ err: error }, "post-commit push failed; the activities are stored"),
    onCommitted(written) {
      for (const { row, activity } of written) {
        bus.publish(conversationTopic(row.conversation_id), create(ActivityFrameSchema, { activity }));
      }
      relay.wake();
    },
  });
  const interceptors = [createErrorInterceptor(log), createAccessInterceptor(deps.access)];
  const files = createClient(UploadsService, deps.transportFor("uploads"));
  const channelHealth = createChannelHealth(deps.transportFor("delivery"), config.internalToken, log);
  const internal = internalHeaders(config.internalToken);
  const keyring = loadKeyring(config, log);
  const sealer = createChannelSealer(keyring);
  const auth = createClient(AuthService, deps.transportFor("auth"));

  const module: ServiceModule & { relay: typeof relay } = {
    name: "conversations",
    services: [TenantsService, ChannelsService, ConversationsService, EventsService, DirectoryService],
    relay,
    routes(router) {
      const changed = () => announceDirectoryChange(bus);
      const conversations = createConversationStore(pool);
      router.service(TenantsService, tenantsImpl({ tenants, onCredentialsChange: changed }), { interceptors });
      router.service(
        DirectoryService,
        directoryImpl({ directory: createDirectoryStore(pool, sealer), conversations, writer }),
        {
          interceptors,
        },
      );
      router.service(
        ChannelsService,
        {
          ...channelsImpl({
            channels: createChannelStore(pool, sealer),
            configPolicy: { allowPrivate: config.webhookAllowPrivate },
            onChannelChange: changed,
            health: channelHealth,
          }),
          ...sealedSecretsImpl({
            activeKeyId: keyring.activeKid,
            async rewrapChannels() {
              const counts = await rewrapChannels(pool, keyring);
              log.info({ ...counts, active_key_id: keyring.activeKid }, "channel data keys re-wrapped");
              return counts;
            },
            rewrapSigningKeys: () => auth.rewrapSigningKeys({}, { headers: internal }),
          }),
        },
        { interceptors },
      );
      router.service(
        ConversationsService,
        {
          ...conversationsImpl({
            conversations,
            activities: createActivityStore(pool),
            writer,
            bus,
            async describeFiles(tenantId, fileIds, conversationId) {
              const request = { tenantId, fileIds, conversationId: conversationId ?? "" };
              return (await files.describeFiles(request, { headers: internal })).files;
            },
            publicUrl: config.publicUrl,
          }),
          ...outboxImpl(pool),
        },
        { interceptors },
      );
      router.service(EventsService, eventsImpl({ events: createEventStore(pool), bus, onOutboxWrite: relay.wake }), {
        interceptors,
      });
    },
    // Once every module hosted here exists, so in-process log consumers see the first relayed rows.
    async start() {
      // Before anything is written: a keyring lacking a key some row needs is refused whole.
      await checkChannelKeys(pool, keyring);
      const sealed = await sealPlaintextChannels(pool, sealer);
      if (sealed > 0) log.info({ channels: sealed }, "sealed channel secrets stored in clear by an earlier version");
      relay.start();
    },
    async ready() {
      await pool.query("SELECT 1");
    },
    async stop() {
      await relay.stop();
    },
  };
  return module;
}
