import type { Pool } from "../../common/db/pool.js";
import { isUuid } from "../../common/rpc/validation.js";

export interface AuthFailure {
  tenantId?: string;
  kind: string;
  sourceIp: string;
  reason: string;
}

export interface OperatorAction {
  sessionId?: string;
  action: string;
  target?: string;
  tenantId?: string;
  sourceIp: string;
  outcome: string;
}

export interface AuditRow {
  id: string;
  at: Date;
  kind: string;
  actor: string | null;
  session_id: string | null;
  action: string | null;
  reason: string;
  target: string | null;
  tenant_id: string | null;
  source_ip: string;
  outcome: string | null;
}

const OPERATOR_ACTION_KIND = "operator_action";
const uuidOrNull = (value: string | undefined) => (value && isUuid(value) ? value : null);

export function createAuditStore(pool: Pool) {
  return {
    async record(event: AuthFailure): Promise<void> {
      await pool.query("INSERT INTO audit_events (tenant_id, kind, source_ip, reason) VALUES ($1, $2, $3, $4)", [
        uuidOrNull(event.tenantId),
        event.kind.slice(0, 50),
        event.sourceIp.slice(0, 100),
        event.reason.slice(0, 500),
      ]);
    },
    async recordAction(event: OperatorAction): Promise<void> {
      await pool.query(
        `INSERT INTO audit_events (kind, actor, session_id, action, target, tenant_id, source_ip, outcome, reason)
         VALUES ($1, 'operator', $2, $3, $4, $5, $6, $7, '')`,
        [
          OPERATOR_ACTION_KIND,
          uuidOrNull(event.sessionId),
          event.action.slice(0, 200),
          event.target?.slice(0, 200) || null,
          uuidOrNull(event.tenantId),
          event.sourceIp.slice(0, 100),
          event.outcome.slice(0, 50),
        ],
      );
    },
    /** Newest first; `before` is the id the previous page ended at. */
    async list(options: { operatorActionsOnly: boolean; before?: bigint; limit: number }): Promise<AuditRow[]> {
      const { rows } = await pool.query<AuditRow>(
        `SELECT id::text, at, kind, actor, session_id, action, reason, target, tenant_id, source_ip, outcome
         FROM audit_events
         WHERE ($1::bigint IS NULL OR id < $1) AND (NOT $2 OR kind = '${OPERATOR_ACTION_KIND}')
         ORDER BY audit_events.id DESC LIMIT $3`,
        [options.before?.toString() ?? null, options.operatorActionsOnly, options.limit],
      );
      return rows;
    },
  };
}

export type AuditStore = ReturnType<typeof createAuditStore>;
