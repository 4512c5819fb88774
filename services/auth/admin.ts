import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { AuthService } from "../../gen/converger/v1/auth_pb.js";
import { CLIENT_IP_HEADER, OPERATOR_SUBJECT } from "../common/access/context.js";
import type { CredentialDirectory } from "../common/access/directory-client.js";
import { invalidField, notFound } from "../common/rpc/errors.js";
import { KNOWN_SCOPES } from "./scopes.js";
import type { AdminSessionStore } from "./store/admin-sessions.js";
import type { AuditRow, AuditStore } from "./store/audit.js";
import { ACCESS_TOKEN_SECONDS, type TokenIssuer } from "./tokens.js";

export type AdminMethods =
  | "createAdminSession"
  | "verifyAdminSession"
  | "endAdminSession"
  | "createTenantAccessToken"
  | "recordOperatorAction"
  | "listAuditEvents";

const DEFAULT_AUDIT_PAGE = 50;
// Console pages ask for a fresh one as it nears expiry: five minutes bounds what a leaked one can do.
const TENANT_TOKEN_SECONDS = Math.min(ACCESS_TOKEN_SECONDS, 5 * 60);

/** The operator console's RPCs: sessions, tokens acting as a tenant, and the audit log. */
export function adminImpl(deps: {
  sessions: AdminSessionStore;
  audit: AuditStore;
  tokens: TokenIssuer;
  directory: CredentialDirectory;
}): Pick<ServiceImpl<typeof AuthService>, AdminMethods> {
  const sourceIp = (ctx: HandlerContext) => ctx.requestHeader.get(CLIENT_IP_HEADER) ?? "";
  return {
    async createAdminSession(_req, ctx) {
      await deps.sessions.prune();
      const session = await deps.sessions.create(sourceIp(ctx));
      return { id: session.id, secret: session.secret, expiresAt: timestampFromDate(session.expiresAt) };
    },
    async verifyAdminSession(req) {
      const session = await deps.sessions.find(req.secret);
      if (!session) throw new ConnectError("the console session is unknown, ended or expired", Code.Unauthenticated);
      return { id: session.id, expiresAt: timestampFromDate(session.expiresAt) };
    },
    async endAdminSession(req, ctx) {
      const id = await deps.sessions.end(req.secret);
      if (id) {
        await deps.audit.recordAction({ sessionId: id, action: "sign out", sourceIp: sourceIp(ctx), outcome: "ok" });
      }
      return {};
    },
    async createTenantAccessToken(req) {
      if (!(await deps.directory.tenantStatus(req.tenantId)).exists) throw notFound("tenant");
      const scope = KNOWN_SCOPES.join(" ");
      const accessToken = await deps.tokens.access(OPERATOR_SUBJECT, req.tenantId, scope, TENANT_TOKEN_SECONDS);
      return { accessToken, tokenType: "Bearer", expiresIn: TENANT_TOKEN_SECONDS, scope };
    },
    async recordOperatorAction(req) {
      await deps.audit.recordAction({
        ...(req.sessionId ? { sessionId: req.sessionId } : {}),
        action: req.action,
        ...(req.target ? { target: req.target } : {}),
        ...(req.tenantId ? { tenantId: req.tenantId } : {}),
        sourceIp: req.sourceIp,
        outcome: req.outcome,
      });
      return {};
    },
    async listAuditEvents(req) {
      if (req.cursor && !/^\d{1,19}$/.test(req.cursor)) throw invalidField("cursor", "is not a cursor of this list");
      const limit = req.limit || DEFAULT_AUDIT_PAGE;
      const rows = await deps.audit.list({
        operatorActionsOnly: req.operatorActionsOnly,
        limit: limit + 1,
        ...(req.cursor ? { before: BigInt(req.cursor) } : {}),
      });
      const page = rows.slice(0, limit);
      return {
        events: page.map(auditEventOf),
        nextCursor: rows.length > limit ? (page.at(-1)?.id ?? "") : "",
      };
    },
  };
}

function auditEventOf(row: AuditRow) {
  return {
    id: row.id,
    at: timestampFromDate(row.at),
    kind: row.kind,
    actor: row.actor ?? "",
    sessionId: row.session_id ?? "",
    // A failed authentication's "what" is its reason.
    action: row.action ?? row.reason,
    target: row.target ?? "",
    tenantId: row.tenant_id ?? "",
    sourceIp: row.source_ip,
    outcome: row.outcome ?? "",
  };
}
