import { Code, ConnectError } from "@connectrpc/connect";
import { RateLimiterRes } from "rate-limiter-flexible";
import type { RateLimitSettings } from "../config.js";
import type { Logger } from "../obs/logger.js";
import type { LimiterStore } from "./limiter-store.js";
import { rateLimitRejectionsTotal } from "./metrics.js";

const WINDOW_SECONDS = 60;
// Bounds the memory an address-spraying attacker can make us spend on block entries.
const MAX_BLOCKED_KEYS = 100_000;

/** Who makes a state-changing call, as far as the limits care. */
export interface WriteCaller {
  /** The credential's identity (never the secret itself); absent for anonymous callers. */
  credential?: string;
  tenantId?: string;
  /** The tenant's own limit per minute; 0 or absent = the default. */
  tenantLimit?: number;
  /** This credential's own limit per minute (a tenant server's, raised with its tenant); 0 = the default. */
  credentialLimit?: number;
  /** Absent when the call is exempt from the per-address limit (provider webhooks). */
  ip?: string;
}

interface Policy {
  name: "credential" | "tenant" | "ip";
  key: string;
  quota: number;
}

/**
 * The limits of design.md §7 over a LimiterStore: state-changing calls per
 * credential, per tenant and per address in one-minute windows, and failed
 * authentications per key. Answers carry the IETF RateLimit fields
 * (draft-ietf-httpapi-ratelimit-headers-10): the one closest to its quota
 * in `RateLimit` on every answer, and every policy in `RateLimit-Policy` on a 429.
 */
export function createRateLimits(store: LimiterStore, settings: RateLimitSettings, log: Logger) {
  const blocked = new Map<string, number>();
  let lastPrune = 0;
  const failures = store.limiter("auth_failures", settings.authFailures, WINDOW_SECONDS);
  // Raw counts; each policy compares them to its own quota (a tenant's may differ).
  const counters = {
    credential: store.counter("credential", WINDOW_SECONDS),
    tenant: store.counter("tenant", WINDOW_SECONDS),
    ip: store.counter("ip", WINDOW_SECONDS),
  };

  function blockedMs(key: string): number {
    const until = blocked.get(key);
    if (until === undefined) return 0;
    const left = until - Date.now();
    if (left > 0) return left;
    blocked.delete(key);
    return 0;
  }

  return {
    /** Counts one call; throws resource_exhausted (429) with Retry-After when any limit is spent. */
    async consumeWrite(caller: WriteCaller): Promise<Record<string, string>> {
      const policies = policiesOf(caller, settings);
      // Every call of the hot path counts three keys: one pass, no intermediate arrays.
      const counted = await Promise.all(policies.map((p) => counters[p.name].consume(p.key).catch((e: unknown) => e)));
      let refused: { policy: Policy; msBeforeNext: number } | undefined;
      let closest: { policy: Policy; remaining: number; msBeforeNext: number } | undefined;
      for (const [i, res] of counted.entries()) {
        const policy = policies[i] as Policy;
        // Anything but a count is a store failure: never refuse a call because the limiter broke.
        if (!(res instanceof RateLimiterRes)) {
          log.warn({ err: res, policy: policy.name }, "rate limiter failed; call let through");
          continue;
        }
        const remaining = policy.quota - res.consumedPoints;
        if (remaining < 0 && (!refused || res.msBeforeNext > refused.msBeforeNext)) {
          refused = { policy, msBeforeNext: res.msBeforeNext };
        }
        if (!closest || remaining < closest.remaining) closest = { policy, remaining, msBeforeNext: res.msBeforeNext };
      }
      if (refused) {
        // A refused call spends nothing: one user hammering its own limit must not drain its tenant's or address's.
        const spent = policies.filter((_, i) => counted[i] instanceof RateLimiterRes);
        await Promise.all(spent.map((p) => counters[p.name].reward(p.key).catch(() => undefined)));
        rateLimitRejectionsTotal.inc({ policy: refused.policy.name });
        throw limitedError(refused.policy, refused.msBeforeNext, policies);
      }
      if (!closest) return {};
      // The policies themselves come with a 429; every answer says how much is left.
      return { ratelimit: `"${closest.policy.name}";r=${closest.remaining};t=${seconds(closest.msBeforeNext)}` };
    },

    /**
     * Milliseconds for which `key` is refused after too many failed
     * authentications in this process (0: not refused). Synchronous and
     * local, so a correct credential costs no round trip; with Redis the
     * count is shared and each process learns of a block on the next failure.
     */
    authBlockedMs(key: string): number {
      const ms = blockedMs(key);
      if (ms > 0) rateLimitRejectionsTotal.inc({ policy: "auth_failures" });
      return ms;
    },

    /** Throws a 429 (retry when the last of them opens) while any of `keys` is refused after failed authentications. */
    refuseBlocked(...keys: string[]): void {
      const ms = Math.max(0, ...keys.map(blockedMs));
      if (ms > 0) {
        rateLimitRejectionsTotal.inc({ policy: "auth_failures" });
        throw authBlockedError(ms);
      }
    },

    /** Counts a failed authentication of `key`; past the limit the key is refused until its window ends. */
    async recordAuthFailure(key: string): Promise<void> {
      let verdict: unknown;
      try {
        verdict = await failures.consume(key);
      } catch (refused) {
        verdict = refused;
      }
      if (!(verdict instanceof RateLimiterRes)) {
        log.warn({ err: verdict }, "auth-failure limiter failed");
        return;
      }
      // The failure that spends the last point already closes the door.
      if (verdict.remainingPoints > 0) return;
      // A full map of live blocks must not cost a scan per failure: at most one a second.
      if (blocked.size >= MAX_BLOCKED_KEYS && Date.now() - lastPrune >= 1000) {
        lastPrune = Date.now();
        pruneExpired(blocked);
      }
      // Still full of live blocks: the oldest goes (Map order), never the new one.
      if (blocked.size >= MAX_BLOCKED_KEYS) blocked.delete(blocked.keys().next().value as string);
      blocked.delete(key);
      blocked.set(key, Date.now() + verdict.msBeforeNext);
    },
  };
}

export type RateLimits = ReturnType<typeof createRateLimits>;

function limitedError(policy: Policy, msBeforeNext: number, policies: Policy[]): ConnectError {
  const retryAfter = seconds(msBeforeNext);
  const error = new ConnectError(
    `rate limit exceeded: ${policy.quota} state-changing calls per minute per ${policy.name}; retry in ${retryAfter} s`,
    Code.ResourceExhausted,
  );
  error.metadata.set("retry-after", String(retryAfter));
  error.metadata.set(
    "ratelimit-policy",
    policies.map((p) => `"${p.name}";q=${p.quota};w=${WINDOW_SECONDS}`).join(", "),
  );
  error.metadata.set("ratelimit", `"${policy.name}";r=0;t=${retryAfter}`);
  return error;
}

/** The 429 of a key refused after failed authentications. */
function authBlockedError(ms: number): ConnectError {
  const retryAfter = seconds(ms);
  const error = new ConnectError(
    `too many failed authentications from here; retry in ${retryAfter} s`,
    Code.ResourceExhausted,
  );
  error.metadata.set("retry-after", String(retryAfter));
  return error;
}

function policiesOf(caller: WriteCaller, settings: RateLimitSettings): Policy[] {
  const policies: Policy[] = [];
  if (caller.credential) {
    policies.push({
      name: "credential",
      key: caller.credential,
      quota: caller.credentialLimit || settings.perCredential,
    });
  }
  if (caller.tenantId) {
    policies.push({ name: "tenant", key: caller.tenantId, quota: caller.tenantLimit || settings.perTenant });
  }
  if (caller.ip) policies.push({ name: "ip", key: caller.ip, quota: settings.perIp });
  return policies;
}

/** Whole seconds, rounded up, at least 1 (Retry-After and `t` are integers). */
function seconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

function pruneExpired(blocked: Map<string, number>): void {
  const now = Date.now();
  for (const [key, until] of blocked) if (until <= now) blocked.delete(key);
}
