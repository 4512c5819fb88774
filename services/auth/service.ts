import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { AuthService } from "../../gen/converger/v1/auth_pb.js";
import { SigningKeysChangedFrameSchema } from "../../gen/converger/v1/frames_pb.js";
import { createAccessInterceptor } from "../common/access/access.js";
import { SIGNING_KEYS_TOPIC } from "../common/access/token-verifier.js";
import { forService } from "../common/obs/logger.js";
import { createErrorInterceptor } from "../common/rpc/log-interceptor.js";
import { loadKeyring } from "../common/secrets/load.js";
import { rewrapRefusal } from "../common/secrets/rpc.js";
import { type MigrationSet, type ModuleDeps, requirePool, type ServiceModule } from "../common/service.js";
import { adminImpl } from "./admin.js";
import { authImpl } from "./handlers.js";
import { checkSigningKeys, rewrapSigningKeys } from "./key-encryption.js";
import { createSigningKeys } from "./signing-keys.js";
import { createAdminSessionStore } from "./store/admin-sessions.js";
import { createAuditStore } from "./store/audit.js";
import { createClientStore } from "./store/clients.js";
import { createRefreshTokenStore } from "./store/refresh-tokens.js";
import { createTokenIssuer } from "./tokens.js";

export const authMigrations: MigrationSet = {
  owner: "auth",
  dir: fileURLToPath(new URL("./migrations", import.meta.url)),
};

/** OAuth clients and tokens, client tokens, signing keys and the audit log. */
export function createAuthModule(deps: ModuleDeps): ServiceModule {
  const { config } = deps;
  const pool = requirePool(deps);
  const log = forService(deps.log, "auth");
  const keyring = loadKeyring(config, log);
  const keys = createSigningKeys({
    pool,
    keyring,
    log,
    rotationHours: config.signingKeyRotationHours,
    onRotated: () => deps.bus.publish(SIGNING_KEYS_TOPIC, create(SigningKeysChangedFrameSchema)),
  });
  const audit = createAuditStore(pool);
  const tokens = createTokenIssuer(keys, config.publicUrl);
  const interceptors = [createErrorInterceptor(log), createAccessInterceptor(deps.access)];
  const impl = authImpl({
    clients: createClientStore(pool),
    refreshTokens: createRefreshTokenStore(pool),
    keys,
    tokens,
    directory: deps.access.directory,
    conversationsTransport: deps.transportFor("conversations"),
    config,
    edgePort: deps.edgePort,
    audit: deps.access.audit,
    rateLimits: deps.access.rateLimits,
    async recordAudit(failure) {
      await audit.record(failure);
      log.warn(
        { kind: failure.kind, tenant_id: failure.tenantId, source_ip: failure.sourceIp, reason: failure.reason },
        "authentication failed",
      );
    },
  });
  const admin = adminImpl({
    sessions: createAdminSessionStore(pool),
    audit,
    tokens,
    directory: deps.access.directory,
  });
  return {
    name: "auth",
    services: [AuthService],
    routes(router) {
      router.service(
        AuthService,
        {
          ...impl,
          ...admin,
          async rewrapSigningKeys() {
            const counts = await rewrapSigningKeys(pool, keyring).catch(rewrapRefusal);
            log.info({ ...counts, active_key_id: keyring.activeKid }, "signing keys re-wrapped");
            return counts;
          },
        },
        { interceptors },
      );
    },
    async start() {
      // Refused here rather than at the first token: a missing key is a deployment error.
      await checkSigningKeys(pool, keyring);
      await keys.start();
    },
    async ready() {
      await pool.query("SELECT 1");
    },
    async stop() {
      keys.stop();
    },
  };
}
