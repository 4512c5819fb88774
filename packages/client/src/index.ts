// The package's public face: what `@converger/client` and /sdk/converger.js export.

export { Code, ConnectError } from "@connectrpc/connect";
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
