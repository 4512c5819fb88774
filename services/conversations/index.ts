import { ChannelsService } from "../../gen/converger/v1/channels_pb.js";
import { ConversationsService, DirectoryService } from "../../gen/converger/v1/conversations_pb.js";
import { EventsService } from "../../gen/converger/v1/events_pb.js";
import { TenantsService } from "../../gen/converger/v1/tenants_pb.js";
import type { ServiceRegistration } from "../common/service.js";
import { conversationsMigrations, createConversationsModule } from "./service.js";

/** Tenants, channels, conversations, activities, the event feed and the directory, with their outbox. */
export const conversations: ServiceRegistration = {
  name: "conversations",
  services: [TenantsService, ChannelsService, ConversationsService, EventsService, DirectoryService],
  migrations: conversationsMigrations,
  create: createConversationsModule,
};
