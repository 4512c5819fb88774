import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { CreateTenantResponseSchema, TenantStatus, type TenantsService } from "../../../gen/converger/v1/tenants_pb.js";
import { invalidField, notFound } from "../../common/rpc/errors.js";
import { pageOf, pageResult } from "../../common/rpc/pagination.js";
import { nameOf } from "../../common/rpc/validation.js";
import type { TenantRow } from "../store/rows.js";
import { tenantMessage } from "../store/rows.js";
import type { TenantStore } from "../store/tenants.js";

export interface TenantsDeps {
  tenants: TenantStore;
  /** Drops cached credential lookups so a status change or key rotation applies at once. */
  onCredentialsChange: () => void;
}

export function tenantsImpl(deps: TenantsDeps): ServiceImpl<typeof TenantsService> {
  return {
    async createTenant(req) {
      const { row, apiKey } = await deps.tenants.create(nameOf(req.name));
      return withKey(row, apiKey);
    },
    async listTenants(req) {
      const page = pageOf(req);
      const { items, nextCursor } = pageResult(await deps.tenants.list(page), page);
      return { tenants: items.map(tenantMessage), nextCursor };
    },
    async getTenant(req) {
      const row = await deps.tenants.get(req.id);
      if (!row) throw notFound("tenant");
      return tenantMessage(row);
    },
    async updateTenant(req) {
      if (req.status === TenantStatus.UNSPECIFIED && req.rateLimitPerMinute === undefined) {
        throw invalidField("status", "give a status or a rate_limit_per_minute");
      }
      // Fields left out of the patch stay as they are; a zero limit (null) restores the default.
      const row = await deps.tenants.update(req.id, {
        ...(req.status === TenantStatus.UNSPECIFIED
          ? {}
          : { status: req.status === TenantStatus.ACTIVE ? "active" : "inactive" }),
        ...(req.rateLimitPerMinute === undefined ? {} : { rateLimitPerMinute: req.rateLimitPerMinute || null }),
      });
      if (!row) throw notFound("tenant");
      deps.onCredentialsChange();
      return tenantMessage(row);
    },
    async rotateTenantKey(req) {
      const rotated = await deps.tenants.rotateKey(req.id);
      if (!rotated) throw notFound("tenant");
      deps.onCredentialsChange();
      return withKey(rotated.row, rotated.apiKey);
    },
  };
}

function withKey(row: TenantRow, apiKey: string) {
  const { $typeName: _, ...tenant } = tenantMessage(row);
  return create(CreateTenantResponseSchema, { ...tenant, apiKey });
}
