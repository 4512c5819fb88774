import { Code, ConnectError } from "@connectrpc/connect";
import type { Pool } from "../common/db/pool.js";
import { connectErrorFromPg } from "../common/rpc/errors.js";
import {
  type ActivityDraft,
  type BatchOptions,
  keyReused,
  type Result,
  type WriteOutcome,
  writeBatch,
} from "./store/activity-batch.js";

export type { ActivityDraft, WriteOutcome };

export interface ActivityWriterOptions extends BatchOptions {
  pool: Pool;
  /** Called right after each commit with the new activities in commit order. */
  onCommitted: (written: WriteOutcome[]) => void;
  /** A failing onCommitted is reported here; the writes stand. */
  onError: (error: unknown) => void;
}

// Bounded so that one transaction stays short and its statement parameters small.
const MAX_BATCH = 256;
// Transactions in flight at once. Each waits on a few round trips through a busy
// event loop; overlapping them keeps PostgreSQL and the loop both working. Order
// still holds: writers lock a conversation row in turn, so per conversation the
// commit order is the seq order.
const MAX_IN_FLIGHT = 4;

interface Pending {
  draft: ActivityDraft;
  resolve: (outcome: WriteOutcome) => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit: concurrent writes are gathered while earlier transactions
 * run and stored together in one transaction (one fsync for many rows).
 * Within a batch, each conversation's row lock hands out consecutive seqs, so
 * seq stays gap-free and per-conversation order holds across processes. One
 * bad request never fails its neighbours: a failed batch is retried item by item.
 */
export function createActivityWriter(options: ActivityWriterOptions) {
  const queue: Pending[] = [];
  let inFlight = 0;
  let scheduled = false;

  function pump(): void {
    scheduled = false;
    while (inFlight < MAX_IN_FLIGHT && queue.length > 0) {
      inFlight++;
      void flush(queue.splice(0, MAX_BATCH)).finally(() => {
        inFlight--;
        pump();
      });
    }
  }

  async function flush(batch: Pending[]): Promise<void> {
    const leaders = new Map<string, Pending>();
    const followers: [Pending, Pending][] = [];
    for (const item of batch) {
      const dedupe = item.draft.idempotency ? keyOf(item.draft) : item.draft.id;
      const leader = leaders.get(dedupe);
      if (leader) followers.push([item, leader]);
      else leaders.set(dedupe, item);
    }
    const items = [...leaders.values()];
    const results = await commitOrSplit(items);
    for (const [i, item] of items.entries()) settle(item, results[i] as Result);
    for (const [follower, leader] of followers) {
      settle(follower, results[items.indexOf(leader)] as Result, leader);
    }
  }

  /** A follower shares its leader's key: it replays the leader's outcome if its body matches. */
  function settle(item: Pending, result: Result, leader?: Pending): void {
    if ("error" in result) item.reject(result.error);
    else if (!leader) item.resolve(result.ok);
    else settleFollower(item, result.ok, leader);
  }

  function settleFollower(item: Pending, ok: WriteOutcome, leader: Pending): void {
    const leaderHash = leader.draft.idempotency?.requestHash as Buffer;
    if (item.draft.idempotency?.requestHash.equals(leaderHash)) item.resolve({ ...ok, replayed: true });
    else item.reject(keyReused());
  }

  async function commitOrSplit(items: Pending[]): Promise<Result[]> {
    let results: Result[];
    try {
      results = await commit(items);
    } catch (error) {
      // A COMMIT that failed may still have committed: retrying could store twice.
      if (error instanceof AmbiguousCommitError) {
        const unknown = new ConnectError("outcome unknown: retry with the same Idempotency-Key", Code.Unavailable);
        return items.map(() => ({ error: unknown }));
      }
      if (items.length === 1) return [{ error: connectErrorFromPg(error) }];
      const one: Result[] = [];
      for (const item of items) one.push(...(await commitOrSplit([item])));
      return one;
    }
    // Outside the error path above: whatever happens here, the batch is committed and must not be retried.
    const written = results.flatMap((r) => ("ok" in r && !r.ok.replayed ? [r.ok] : []));
    if (written.length > 0) {
      try {
        options.onCommitted(written);
      } catch (error) {
        options.onError(error);
      }
    }
    return results;
  }

  async function commit(items: Pending[]): Promise<Result[]> {
    const client = await options.pool.connect();
    try {
      await client.query("BEGIN");
      const results = await writeBatch(
        client,
        items.map((i) => i.draft),
        options,
      );
      await client.query("COMMIT").catch((error: unknown) => {
        throw new AmbiguousCommitError(error);
      });
      return results;
    } catch (error) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  return {
    write(draft: ActivityDraft): Promise<WriteOutcome> {
      return new Promise((resolve, reject) => {
        queue.push({ draft, resolve, reject });
        if (!scheduled) {
          scheduled = true;
          // Let requests arriving in the same turn of the event loop join this batch.
          setImmediate(pump);
        }
      });
    },
  };
}

/** COMMIT failed on the wire: the transaction may or may not have committed. */
class AmbiguousCommitError extends Error {
  constructor(readonly original: unknown) {
    super("commit outcome unknown", { cause: original });
  }
}

function keyOf(d: ActivityDraft): string {
  return `${d.tenantId}|${d.conversationId}|${d.idempotency?.key}`;
}
export type ActivityWriter = ReturnType<typeof createActivityWriter>;
