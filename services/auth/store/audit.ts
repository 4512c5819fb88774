import type { Pool } from "../../common/db/pool.js";

export interface AuthFailure {
  tenantId?: string;
  kind: string;
  sourceIp: string;
  reason: string;
}

export function createAuditStore(pool: Pool) {
  return {
    async record(event: AuthFailure): Promise<void> {
      await pool.query("INSERT INTO audit_events (tenant_id, kind, source_ip, reason) VALUES ($1, $2, $3, $4)", [
        event.tenantId || null,
        event.kind.slice(0, 50),
        event.sourceIp.slice(0, 100),
        event.reason.slice(0, 500),
      ]);
    },
  };
}
