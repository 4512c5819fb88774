// The package's public face: what `@converger/client` and /sdk/converger.js export.

export { Code, ConnectError } from "@connectrpc/connect";
// The enums of the messages (numbers on the wire and in the generated types), and the messages themselves.
export { type Channel, ChannelHealth, ChannelStatus, ChannelType } from "../../../gen/converger/v1/channels_pb.js";
export {
  type Activity,
  ActivityType,
  type Conversation,
  ConversationStatus,
} from "../../../gen/converger/v1/conversations_pb.js";
export {
  type Delivery,
  type DeliveryAttempt,
  DeliveryAttemptKind,
  DeliveryAttemptOutcome,
  DeliveryStatus,
} from "../../../gen/converger/v1/delivery_pb.js";
export type { Event } from "../../../gen/converger/v1/events_pb.js";
export { type Tenant, TenantStatus } from "../../../gen/converger/v1/tenants_pb.js";
export { type File, UploadState } from "../../../gen/converger/v1/uploads_pb.js";
export type { ClientContext } from "./context.js";
export { Converger, type ConvergerOptions } from "./converger.js";
export type { Credentials } from "./credentials.js";
export type { ConvergerFiles, UploadOptions, UploadProgress } from "./files.js";
export {
  type ConvergerStream,
  type SendInput,
  StreamError,
  type StreamEvents,
  type StreamOptions,
  type StreamState,
  type StreamStats,
} from "./stream.js";
