import { type Client, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { AuthService } from "../../../gen/converger/v1/auth_pb.js";
import { ChannelsService } from "../../../gen/converger/v1/channels_pb.js";
import { ConversationsService } from "../../../gen/converger/v1/conversations_pb.js";
import { DeliveryService } from "../../../gen/converger/v1/delivery_pb.js";
import { EventsService } from "../../../gen/converger/v1/events_pb.js";
import { TenantsService } from "../../../gen/converger/v1/tenants_pb.js";
import { UploadsService } from "../../../gen/converger/v1/uploads_pb.js";
import type { ClientContext } from "./context.js";
import { type Credentials, createTokenSource, credentialsInterceptor } from "./credentials.js";
import { type ConvergerFiles, createFiles } from "./files.js";
import { type ConvergerStream, createStream, type StreamOptions } from "./stream.js";

export type ConvergerOptions = Credentials & {
  /** The gateway, e.g. `https://api.example.com` (a trailing slash is ignored). */
  baseUrl: string;
  /** Node 20 has no global WebSocket: pass `ws`'s. Browsers use their own. */
  WebSocket?: typeof globalThis.WebSocket;
  fetch?: typeof globalThis.fetch;
};

/**
 * The client of one gateway with one credential. Each public proto service is
 * a property whose methods are its RPCs over the Connect protocol, typed by the
 * generated messages; a failure rejects with a ConnectError (switch on `code`).
 */
export class Converger {
  readonly auth: Client<typeof AuthService>;
  readonly channels: Client<typeof ChannelsService>;
  readonly conversations: Client<typeof ConversationsService>;
  readonly delivery: Client<typeof DeliveryService>;
  readonly events: Client<typeof EventsService>;
  readonly tenants: Client<typeof TenantsService>;
  readonly uploads: Client<typeof UploadsService>;
  /** Chunked, parallel, resumable uploads (files.ts). */
  readonly files: ConvergerFiles;
  readonly #context: ClientContext;

  constructor(options: ConvergerOptions) {
    this.#context = createContext(options);
    const { transport } = this.#context;
    this.auth = createClient(AuthService, transport);
    this.channels = createClient(ChannelsService, transport);
    this.conversations = createClient(ConversationsService, transport);
    this.delivery = createClient(DeliveryService, transport);
    this.events = createClient(EventsService, transport);
    this.tenants = createClient(TenantsService, transport);
    this.uploads = createClient(UploadsService, transport);
    this.files = createFiles(this.#context);
  }

  /**
   * The live stream of design.md §4: resumes from the last seq it delivered,
   * never repeats or reorders one, and resends unacked sends by client_id.
   */
  stream(options: StreamOptions = {}): ConvergerStream {
    return createStream(this.#context, options);
  }

  /** What the stream and uploads build on: one transport, one credential. */
  protected context(): ClientContext {
    return this.#context;
  }
}

function createContext(options: ConvergerOptions): ClientContext {
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  const given = options.fetch ?? globalThis.fetch;
  // window.fetch throws "Illegal invocation" when called as a method of another object.
  const fetch: typeof globalThis.fetch = (input, init) => given.call(globalThis, input, init);
  const credentials = { apiKey: options.apiKey, token: createTokenSource(options) };
  const interceptor = credentialsInterceptor(credentials, options.getToken !== undefined);
  return {
    baseUrl,
    transport: createConnectTransport({ baseUrl, fetch, interceptors: [interceptor] }),
    ...credentials,
    WebSocket: options.WebSocket ?? globalThis.WebSocket,
    fetch,
  };
}
