import { randomBytes } from "node:crypto";
import { resolve } from "node:path";
import { internalTokenFrom } from "./access/internal.js";
import type { TlsFiles } from "./tls.js";

/** Services one process can host; `gateway` is the REST/Connect front door. */
const SERVICE_NAMES = ["gateway", "conversations", "auth", "realtime", "delivery", "uploads"] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

export interface Config {
  host: string;
  port: number;
  wsPort: number;
  grpcPort: number;
  publicUrl: string;
  /** TLS_CERT_FILE / TLS_KEY_FILE: every listener speaks TLS (https, wss, gRPC over TLS); unset = plain. */
  tls?: TlsFiles;
  /** TLS_CA_FILE: CAs internal gRPC clients verify peers against; unset = the system CAs. */
  tlsCaFile?: string;
  dataDir: string;
  databaseUrl?: string | undefined;
  redisUrl?: string | undefined;
  adminToken: string;
  /** True when ADMIN_TOKEN was not given and we made one up (printed once). */
  adminTokenGenerated: boolean;
  adminAllowedIps: string[];
  /** Shared secret between our own services (INTERNAL_TOKEN, else derived from ADMIN_TOKEN). */
  internalToken: string;
  /** KEY_ENCRYPTION_KEY: base64 of 32 bytes; unset = generated into DATA_DIR. */
  keyEncryptionKey?: string | undefined;
  /** KEY_ENCRYPTION_KEYS: `kid:base64` entries of the keyring (services/common/secrets). */
  keyEncryptionKeys: string[];
  /** KEY_ENCRYPTION_KEY_ID: the key that wraps new data keys; "" = the only one given. */
  keyEncryptionKeyId: string;
  signingKeyRotationHours: number;
  trustedProxies: string[];
  corsOrigins: string[];
  wsAllowedOrigins: string[];
  wsMaxConnectionsPerUser: number;
  wsMaxConnectionsPerTenant: number;
  wsMaxSubscriptions: number;
  webhookAllowPrivate: boolean;
  /** KAFKA_BROKERS: host:port list; unset = the outbox feeds in-process consumers. */
  kafkaBrokers: string[];
  /** KAFKA_IDEMPOTENT: idempotent producer (off only for brokers that cannot serve it, e.g. the test mock). */
  kafkaIdempotent: boolean;
  /** KAFKA_PARTITIONS: partitions of the topics we create (when the broker lets us). */
  kafkaPartitions: number;
  /** KAFKA_SESSION_TIMEOUT_MS: how long a silent consumer keeps its partitions. */
  kafkaSessionTimeoutMs: number;
  deliveryBackoffBaseMs: number;
  deliveryMaxAttempts: number;
  /** First cool-down of an open channel circuit; doubles per failed probe up to 60×. */
  deliveryCircuitCooldownMs: number;
  deliveryRetentionDays: number;
  /** S3_ENDPOINT and friends: blobs in S3/MinIO; unset = local disk under DATA_DIR. */
  s3?: { endpoint: string; accessKey: string; secretKey: string; bucket: string; region: string } | undefined;
  uploadChunkBytes: number;
  uploadMaxBytes: number;
  tenantStorageQuotaBytes: number;
  /** UPLOAD_ALLOWED_TYPES: media types accepted at initiate; empty = the built-in list. */
  uploadAllowedTypes: string[];
  /** UPLOAD_EXPIRY_HOURS: an upload without a chunk for this long is removed by the hourly collector. */
  uploadExpiryHours: number;
  uploadGcIntervalMinutes: number;
  /** First wait before a log consumer retries an event it failed to process (then ×2, 3 retries). */
  processingRetryBaseMs: number;
  services: ServiceName[];
  /** Base URL of the gRPC listener hosting each service not run in this process. */
  upstreams: Partial<Record<ServiceName, string>>;
  idempotencyTtlHours: number;
  outboxRetentionHours: number;
  logLevel: string;
  jsonBodyLimitBytes: number;
  rateLimits: RateLimitSettings;
}

/** State-changing calls allowed per minute (design.md §6, §7). */
export interface RateLimitSettings {
  /** RATE_LIMIT_PER_MINUTE: per credential (API key, OAuth client, end user, channel secret, operator). */
  perCredential: number;
  /** RATE_LIMIT_TENANT_PER_MINUTE: per tenant, unless the tenant carries its own limit. */
  perTenant: number;
  /** RATE_LIMIT_IP_PER_MINUTE: per client address (after TRUSTED_PROXIES). */
  perIp: number;
  /** RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: failed authentications per address (and per OAuth client). */
  authFailures: number;
}

// Keys must outlive any sensible client retry window; design.md asks ≥ 24 h.
const DEFAULT_IDEMPOTENCY_TTL_HOURS = 48;
// Published outbox rows are only kept for debugging and replays.
const DEFAULT_OUTBOX_RETENTION_HOURS = 24;
const MIB = 1024 * 1024;
const JSON_BODY_LIMIT_BYTES = MIB;
// Weekly: short enough to bound a leaked key's use, long enough to be cheap.
const DEFAULT_SIGNING_KEY_ROTATION_HOURS = 24 * 7;

/** Parses the environment once at start-up; throws on values that make no sense. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, argv: string[] = []): Config {
  const host = env.HOST || "127.0.0.1";
  const port = intVar(env, "PORT", 8080);
  const services = parseServices(argFlag(argv, "--services") ?? env.SERVICES);
  const grpcPort = intVar(env, "GRPC_PORT", 9090);
  const adminToken = env.ADMIN_TOKEN || `adm_${randomBytes(24).toString("base64url")}`;
  const tls = tlsFilesOf(env);
  const scheme = tls ? "https" : "http";
  return {
    host,
    port,
    wsPort: intVar(env, "WS_PORT", 8081),
    grpcPort,
    publicUrl: (env.PUBLIC_URL || `${scheme}://${urlHost(host)}:${port}`).replace(/\/+$/, ""),
    ...(tls ? { tls } : {}),
    ...(env.TLS_CA_FILE ? { tlsCaFile: env.TLS_CA_FILE } : {}),
    dataDir: resolve(env.DATA_DIR || "./.data"),
    databaseUrl: env.DATABASE_URL || undefined,
    redisUrl: env.REDIS_URL || undefined,
    adminToken,
    adminTokenGenerated: !env.ADMIN_TOKEN,
    adminAllowedIps: list(env.ADMIN_ALLOWED_IPS ?? "127.0.0.1/32,::1/128"),
    internalToken: internalTokenFrom(env.INTERNAL_TOKEN, adminToken),
    keyEncryptionKey: env.KEY_ENCRYPTION_KEY || undefined,
    keyEncryptionKeys: list(env.KEY_ENCRYPTION_KEYS ?? ""),
    keyEncryptionKeyId: env.KEY_ENCRYPTION_KEY_ID ?? "",
    signingKeyRotationHours: intVar(env, "SIGNING_KEY_ROTATION_HOURS", DEFAULT_SIGNING_KEY_ROTATION_HOURS, 1),
    trustedProxies: list(env.TRUSTED_PROXIES ?? ""),
    corsOrigins: list(env.CORS_ORIGINS ?? "").map(corsOrigin),
    wsAllowedOrigins: list(env.WS_ALLOWED_ORIGINS ?? ""),
    wsMaxConnectionsPerUser: intVar(env, "WS_MAX_CONNECTIONS_PER_USER", 100, 1),
    wsMaxConnectionsPerTenant: intVar(env, "WS_MAX_CONNECTIONS_PER_TENANT", 20_000, 1),
    wsMaxSubscriptions: intVar(env, "WS_MAX_SUBSCRIPTIONS", 1000, 1),
    webhookAllowPrivate: env.WEBHOOK_ALLOW_PRIVATE === "true",
    kafkaBrokers: list(env.KAFKA_BROKERS ?? ""),
    kafkaIdempotent: env.KAFKA_IDEMPOTENT !== "false",
    kafkaPartitions: intVar(env, "KAFKA_PARTITIONS", 12, 1),
    kafkaSessionTimeoutMs: intVar(env, "KAFKA_SESSION_TIMEOUT_MS", 30_000, 1_000),
    deliveryBackoffBaseMs: intVar(env, "DELIVERY_BACKOFF_BASE_MS", 10_000, 1),
    deliveryMaxAttempts: intVar(env, "DELIVERY_MAX_ATTEMPTS", 5, 1),
    deliveryCircuitCooldownMs: intVar(env, "DELIVERY_CIRCUIT_COOLDOWN_MS", 5_000, 1),
    deliveryRetentionDays: intVar(env, "DELIVERY_RETENTION_DAYS", 30, 1),
    processingRetryBaseMs: intVar(env, "PROCESSING_RETRY_BASE_MS", 1_000, 1),
    s3: env.S3_ENDPOINT
      ? {
          endpoint: env.S3_ENDPOINT,
          accessKey: env.S3_ACCESS_KEY ?? "",
          secretKey: env.S3_SECRET_KEY ?? "",
          bucket: env.S3_BUCKET || "converger",
          region: env.S3_REGION || "us-east-1",
        }
      : undefined,
    uploadChunkBytes: intVar(env, "UPLOAD_CHUNK_BYTES", 8 * MIB, 1),
    uploadMaxBytes: intVar(env, "UPLOAD_MAX_BYTES", 2 * 1024 * MIB, 1),
    tenantStorageQuotaBytes: intVar(env, "TENANT_STORAGE_QUOTA_BYTES", 100 * 1024 * MIB, 1),
    uploadAllowedTypes: list(env.UPLOAD_ALLOWED_TYPES ?? "").map((t) => t.toLowerCase()),
    uploadExpiryHours: intVar(env, "UPLOAD_EXPIRY_HOURS", 24, 1),
    uploadGcIntervalMinutes: intVar(env, "UPLOAD_GC_INTERVAL_MINUTES", 60, 1),
    services,
    // With TLS on, the default upstream (our own GRPC_PORT) speaks TLS as well.
    upstreams: upstreamsFor(env, services, `${tls || env.TLS_CA_FILE ? "https" : "http"}://127.0.0.1:${grpcPort}`),
    idempotencyTtlHours: intVar(env, "IDEMPOTENCY_TTL_HOURS", DEFAULT_IDEMPOTENCY_TTL_HOURS, 24),
    outboxRetentionHours: intVar(env, "OUTBOX_RETENTION_HOURS", DEFAULT_OUTBOX_RETENTION_HOURS, 1),
    logLevel: env.LOG_LEVEL || "info",
    jsonBodyLimitBytes: JSON_BODY_LIMIT_BYTES,
    rateLimits: {
      perCredential: intVar(env, "RATE_LIMIT_PER_MINUTE", 60, 1),
      perTenant: intVar(env, "RATE_LIMIT_TENANT_PER_MINUTE", 6000, 1),
      perIp: intVar(env, "RATE_LIMIT_IP_PER_MINUTE", 600, 1),
      // Ten wrong guesses a minute is plenty for a typo, and useless for guessing a 256-bit key.
      authFailures: intVar(env, "RATE_LIMIT_AUTH_FAILURES_PER_MINUTE", 10, 1),
    },
  };
}

function parseServices(value: string | undefined): ServiceName[] {
  if (!value || value === "all") return [...SERVICE_NAMES];
  const names = list(value);
  for (const name of names) {
    if (!(SERVICE_NAMES as readonly string[]).includes(name)) {
      throw new Error(`unknown service "${name}" (known: ${SERVICE_NAMES.join(", ")})`);
    }
  }
  return names as ServiceName[];
}

/** TLS_CERT_FILE and TLS_KEY_FILE come together or not at all (their contents are read at start). */
function tlsFilesOf(env: NodeJS.ProcessEnv): TlsFiles | undefined {
  const certFile = env.TLS_CERT_FILE;
  const keyFile = env.TLS_KEY_FILE;
  if (!certFile && !keyFile) return undefined;
  if (!certFile || !keyFile) throw new Error("TLS_CERT_FILE and TLS_KEY_FILE must be set together");
  return { certFile: resolve(certFile), keyFile: resolve(keyFile) };
}

/** `<NAME>_GRPC_URL` per remote service, else GRPC_UPSTREAM, else our own GRPC_PORT. */
function upstreamsFor(env: NodeJS.ProcessEnv, local: ServiceName[], ownGrpcUrl: string) {
  const upstreams: Partial<Record<ServiceName, string>> = {};
  for (const name of SERVICE_NAMES) {
    if (name === "gateway" || local.includes(name)) continue;
    upstreams[name] = env[`${name.toUpperCase()}_GRPC_URL`] || env.GRPC_UPSTREAM || ownGrpcUrl;
  }
  return upstreams;
}

function argFlag(argv: string[], flag: string): string | undefined {
  const inline = argv.find((a) => a.startsWith(`${flag}=`));
  if (inline) return inline.slice(flag.length + 1);
  const at = argv.indexOf(flag);
  return at >= 0 ? argv[at + 1] : undefined;
}

function intVar(env: NodeJS.ProcessEnv, name: string, fallback: number, min = 0): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`${name} must be an integer ≥ ${min}, got "${raw}"`);
  }
  return value;
}

/**
 * A CORS_ORIGINS entry as browsers serialize an Origin (lowercase scheme and
 * host, no default port), so requests are matched by plain equality. `*`,
 * `null` and anything with a path, query or credentials are refused rather
 * than read loosely: an allowlist entry must name exactly one site.
 */
function corsOrigin(entry: string): string {
  let url: URL | undefined;
  try {
    url = new URL(entry);
  } catch {
    url = undefined;
  }
  const bare = url && url.pathname === "/" && !url.search && !url.hash && !url.username && !url.password;
  if (!url || !bare || (url.protocol !== "https:" && url.protocol !== "http:")) {
    throw new Error(`CORS_ORIGINS: ${JSON.stringify(entry)} is not an origin like https://app.example.com[:port]`);
  }
  return url.origin;
}

function list(value: string): string[] {
  return value
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

function urlHost(host: string): string {
  if (host === "0.0.0.0" || host === "::") return "127.0.0.1";
  return host.includes(":") ? `[${host}]` : host;
}

/** ws(s)://<PUBLIC_URL host>:<WS_PORT>/ws; wss whenever the edge serves TLS, whatever PUBLIC_URL says. */
export function streamUrlOf(config: Config, port: number): string {
  const url = new URL(config.publicUrl);
  const secure = url.protocol === "https:" || config.tls !== undefined;
  return `${secure ? "wss:" : "ws:"}//${url.hostname}:${port}/ws`;
}
