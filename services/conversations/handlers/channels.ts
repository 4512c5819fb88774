import type { ServiceImpl } from "@connectrpc/connect";
import { type ChannelHealth, ChannelStatus, type ChannelsService } from "../../../gen/converger/v1/channels_pb.js";
import { allAdapters } from "../../channel-adapters/index.js";
import { tenantOf } from "../../common/access/access.js";
import { kPrincipal } from "../../common/access/context.js";
import { notFound } from "../../common/rpc/errors.js";
import { pageOf, pageResult } from "../../common/rpc/pagination.js";
import { nameOf } from "../../common/rpc/validation.js";
import { rewrapRefusal } from "../../common/secrets/rpc.js";
import { type ConfigPolicy, mergeSecrets, redactConfig, validateChannelConfig } from "../channel-config.js";
import type { ChannelStore } from "../store/channels.js";
import { type ChannelRow, channelMessage, channelTypeName, channelTypeOf } from "../store/rows.js";

export interface ChannelsDeps {
  channels: ChannelStore;
  configPolicy: ConfigPolicy;
  /** A changed secret or status must reach cached credential lookups at once. */
  onChannelChange: () => void;
  /**
   * Channels' health from the delivery service's circuits; a channel it
   * does not answer for stays unspecified (reads never fail for it).
   */
  health: (tenantId: string, channelIds: string[]) => Promise<Map<string, ChannelHealth>>;
}

type RewrapRpc = "rewrapSealedSecrets";

/** The tenant's channel RPCs; the operator's rewrap is sealedSecretsImpl's. */
export function channelsImpl(deps: ChannelsDeps): Omit<ServiceImpl<typeof ChannelsService>, RewrapRpc> {
  return {
    async listChannelTypes() {
      const types = allAdapters().map((adapter) => ({
        type: channelTypeOf(adapter.type),
        fields: Object.entries(adapter.config).map(([name, spec]) => ({
          name,
          kind: spec.kind,
          required: spec.required === true,
          secret: spec.secret === true,
        })),
        servedByStream: adapter.servedByStream === true,
      }));
      return { types };
    },
    async createChannel(req, ctx) {
      const tenantId = tenantOf(ctx.values.get(kPrincipal));
      const type = channelTypeName(req.type);
      const config = validateChannelConfig(type, req.config ?? {}, deps.configPolicy);
      const row = await deps.channels.create(tenantId, nameOf(req.name), type, config);
      return withHealth(deps, row, true);
    },
    async listChannels(req, ctx) {
      const tenantId = tenantOf(ctx.values.get(kPrincipal));
      const page = pageOf(req);
      const rows = await deps.channels.list(tenantId, page);
      const { items, nextCursor } = pageResult(rows, page);
      const health =
        items.length > 0
          ? await deps.health(
              tenantId,
              items.map((r) => r.id),
            )
          : new Map();
      return { channels: items.map((row) => ({ ...shown(row), health: health.get(row.id) ?? 0 })), nextCursor };
    },
    async getChannel(req, ctx) {
      const row = await deps.channels.get(tenantOf(ctx.values.get(kPrincipal)), req.id);
      if (!row) throw notFound("channel");
      return withHealth(deps, row);
    },
    async updateChannel(req, ctx) {
      const tenantId = tenantOf(ctx.values.get(kPrincipal));
      const current = await deps.channels.get(tenantId, req.id);
      if (!current) throw notFound("channel");
      const config = req.config
        ? validateChannelConfig(current.type, mergeSecrets(current.type, current.config, req.config), deps.configPolicy)
        : undefined;
      const status = req.status === ChannelStatus.UNSPECIFIED ? undefined : statusName(req.status);
      const name = req.name === undefined ? undefined : nameOf(req.name);
      // Fields left out of the patch stay as they are.
      const row = await deps.channels.update(tenantId, req.id, {
        ...(name === undefined ? {} : { name }),
        ...(status === undefined ? {} : { status }),
        ...(config === undefined ? {} : { config }),
      });
      if (!row) throw notFound("channel");
      if (status || config) deps.onChannelChange(); // caches elsewhere (access, delivery) forget it
      return withHealth(deps, row);
    },
    async rotateChannelSecret(req, ctx) {
      const row = await deps.channels.rotateSecret(tenantOf(ctx.values.get(kPrincipal)), req.id);
      if (!row) throw notFound("channel");
      deps.onChannelChange();
      return withHealth(deps, row, true);
    },
  };
}

/** The channel as the API shows it; the secret only right after it was minted. */
function shown(row: ChannelRow, withSecret = false) {
  return channelMessage(row, redactConfig(row.type, row.config), withSecret ? row.secret : undefined);
}

async function withHealth(deps: ChannelsDeps, row: ChannelRow, withSecret = false) {
  const health = await deps.health(row.tenant_id, [row.id]);
  return { ...shown(row, withSecret), health: health.get(row.id) ?? 0 };
}

function statusName(status: ChannelStatus): ChannelRow["status"] {
  return status === ChannelStatus.ACTIVE ? "active" : "inactive";
}

interface RewrapCounts {
  rewrapped: number;
  alreadyActive: number;
}

export interface SealedSecretsDeps {
  activeKeyId: string;
  rewrapChannels: () => Promise<RewrapCounts>;
  /** The auth service's RewrapSigningKeys. */
  rewrapSigningKeys: () => Promise<RewrapCounts>;
}

export function sealedSecretsImpl(deps: SealedSecretsDeps): Pick<ServiceImpl<typeof ChannelsService>, RewrapRpc> {
  return {
    async rewrapSealedSecrets() {
      // Channels first: each kind is all or nothing, and a refusal stops before the next.
      const channels = await deps.rewrapChannels().catch(rewrapRefusal);
      const signingKeys = await deps.rewrapSigningKeys();
      return { activeKeyId: deps.activeKeyId, channels, signingKeys };
    },
  };
}
