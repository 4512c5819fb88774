import { ChannelHealth } from "../../../gen/converger/v1/channels_pb.js";
import type { Pool } from "../../common/db/pool.js";
import type { DeliveryRow } from "./deliveries.js";

/** When a channel's circuit opens and how long it stays open (design.md §7). */
export interface CircuitPolicy {
  /** Transient failed tries in a row that open the circuit. */
  failureThreshold: number;
  /** The first cool-down; each failed probe doubles it. */
  baseCooldownMs: number;
  maxCooldownMs: number;
}

const CIRCUIT_FAILURE_THRESHOLD = 5;
// 5 s doubling to 5 min at the default base: the cap is 60 base cool-downs.
const MAX_COOLDOWN_FACTOR = 60;

export function circuitPolicy(baseCooldownMs: number): CircuitPolicy {
  return {
    failureThreshold: CIRCUIT_FAILURE_THRESHOLD,
    baseCooldownMs,
    maxCooldownMs: baseCooldownMs * MAX_COOLDOWN_FACTOR,
  };
}

/** The cool-down after the circuit opened and `failedProbes` half-open probes failed: base × 2^n, capped. */
export function cooldownMs(failedProbes: number, policy: CircuitPolicy): number {
  return Math.min(policy.baseCooldownMs * 2 ** failedProbes, policy.maxCooldownMs);
}

/**
 * A circuit is open when its state says so and its cool-down runs; half-open
 * once the cool-down is over (a probe may go or is out).
 */
export const OPEN_CIRCUIT = (channel: string) =>
  `EXISTS (SELECT 1 FROM channel_circuits oc WHERE oc.channel_id = ${channel} AND oc.state = 'open')`;

// A probe is held as long as a claimed delivery (deliveries.ts).
const PROBE_LEASE_SECONDS = 60;

interface HealthRow {
  channel_id: string;
  consecutive_failures: number;
  state: "closed" | "open";
  cooling: boolean;
}

function healthOf(row: HealthRow | undefined): ChannelHealth {
  if (!row) return ChannelHealth.HEALTHY;
  if (row.state === "open") return row.cooling ? ChannelHealth.DOWN : ChannelHealth.DEGRADED;
  return row.consecutive_failures > 0 ? ChannelHealth.DEGRADED : ChannelHealth.HEALTHY;
}

export function createCircuitStore(pool: Pool) {
  return {
    /** Each channel's health, in the order asked; channels without a circuit row are healthy. */
    async health(tenantId: string, channelIds: string[]): Promise<Map<string, ChannelHealth>> {
      const { rows } = await pool.query<HealthRow>(
        `SELECT channel_id, consecutive_failures, state, opened_until > now() AS cooling
         FROM channel_circuits WHERE tenant_id = $1 AND channel_id = ANY($2::uuid[])`,
        [tenantId, channelIds],
      );
      const byId = new Map(rows.map((r) => [r.channel_id, r]));
      return new Map(channelIds.map((id) => [id, healthOf(byId.get(id))]));
    },

    /**
     * For each half-open circuit without a probe out, claims one due line
     * head of its channel as the probe (the only try that channel gets until
     * the probe's outcome). The circuit row's lock makes it one per channel
     * across workers.
     */
    async claimProbes(limit: number): Promise<DeliveryRow[]> {
      const { rows } = await pool.query<DeliveryRow>(
        `WITH half_open AS (
           SELECT c.channel_id FROM channel_circuits c
           WHERE c.state = 'open' AND c.opened_until <= now() AND (c.probe_until IS NULL OR c.probe_until < now())
             -- Only circuits with something to probe: open ones left with nothing pending must not
             -- take every slot and starve the rest.
             AND EXISTS (
               SELECT 1 FROM deliveries w
               WHERE w.channel_id = c.channel_id AND w.status = 'pending' AND w.next_attempt_at <= now()
                 AND (w.lease_until IS NULL OR w.lease_until < now()))
           ORDER BY c.opened_until LIMIT $1 FOR UPDATE OF c SKIP LOCKED),
         pick AS (
           SELECT DISTINCT ON (d.channel_id) d.id, d.channel_id FROM deliveries d
           JOIN half_open h ON h.channel_id = d.channel_id
           WHERE d.status = 'pending' AND d.next_attempt_at <= now()
             AND (d.lease_until IS NULL OR d.lease_until < now())
             AND NOT EXISTS (
               SELECT 1 FROM deliveries e
               WHERE e.status = 'pending' AND e.conversation_id = d.conversation_id
                 AND e.channel_id = d.channel_id AND (e.seq < d.seq OR e.lease_until >= now()))
           ORDER BY d.channel_id, d.next_attempt_at),
         probe AS (
           UPDATE channel_circuits c SET probe_delivery_id = pick.id, updated_at = now(),
             probe_until = now() + make_interval(secs => $2)
           FROM pick WHERE c.channel_id = pick.channel_id)
         UPDATE deliveries SET lease_until = now() + make_interval(secs => $2)
         FROM pick WHERE deliveries.id = pick.id
         RETURNING deliveries.*, deliveries.created_at::text AS sort_key`,
        [limit, PROBE_LEASE_SECONDS],
      );
      return rows;
    },
  };
}

export type CircuitStore = ReturnType<typeof createCircuitStore>;
