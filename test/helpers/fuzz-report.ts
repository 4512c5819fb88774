/** A failure the fuzz saw, keyed so that one bug shows once however often it is hit. */
export interface Finding {
  signature: string;
  repro: string;
  outcome: string;
}

/**
 * Counts what the fuzz sent and saw, and keeps the process alive while
 * today's bugs exist: unhandled rejections and uncaught exceptions are
 * recorded (each fails its property and the final check) instead of ending
 * the worker.
 */
export function createFuzzReport() {
  const statuses = new Map<string, number>();
  const findings = new Map<string, Finding>();
  const crashes: string[] = [];
  let requests = 0;
  const inflight = new Set<Promise<unknown>>();
  const onRejection = (reason: unknown) => crashes.push(`unhandledRejection: ${describeError(reason)}`);
  const onException = (error: unknown) => crashes.push(`uncaughtException: ${describeError(error)}`);
  process.on("unhandledRejection", onRejection);
  process.on("uncaughtException", onException);

  return {
    crashes,
    findings,
    /** Counts one answer (`status` is a number, or e.g. "timeout", "ws:4401"). */
    count(status: number | string) {
      requests++;
      const key = String(status);
      statuses.set(key, (statuses.get(key) ?? 0) + 1);
    },
    /** Keeps `work` until it settles: fast-check's time limit may abandon a run still in flight. */
    track<T>(work: Promise<T>): Promise<T> {
      inflight.add(work);
      void work.finally(() => inflight.delete(work)).catch(() => undefined);
      return work;
    },
    /** Resolves once no tracked request is in flight, so the next test's crashes are not blamed on this one. */
    async idle(): Promise<void> {
      while (inflight.size > 0) await Promise.allSettled([...inflight]);
    },
    /** Crashes recorded since `mark` (a previous `crashes.length`). */
    crashesSince(mark: number): string[] {
      return crashes.slice(mark);
    },
    /** Records a failure once per signature and returns the message that fails the property. */
    fail(signature: string, repro: string, outcome: string): Error {
      // Shrinking replays ever smaller requests: keep the smallest one of each signature.
      const seen = findings.get(signature);
      if (!seen || repro.length < seen.repro.length) findings.set(signature, { signature, repro, outcome });
      return new Error(`${outcome}\n  reproduction: ${repro}\n  (rerun with FUZZ_SEED=${FUZZ_SEED})`);
    },
    summary(): string {
      const sorted = [...statuses].sort(([a], [b]) => a.localeCompare(b));
      return `fuzz: ${requests} requests, statuses {${sorted.map(([s, n]) => `${s}: ${n}`).join(", ")}}`;
    },
    dispose() {
      process.off("unhandledRejection", onRejection);
      process.off("uncaughtException", onException);
    },
  };
}

export type FuzzReport = ReturnType<typeof createFuzzReport>;

/** The seed of every property; override with FUZZ_SEED to replay or explore. */
export const FUZZ_SEED = Number(process.env.FUZZ_SEED ?? 20261201) | 0;

function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`.slice(0, 300);
  return String(error).slice(0, 300);
}

/**
 * Lets the event loop finish what the last request left queued, so a crash it caused is recorded
 * against it: two check phases, after which I/O callbacks already due, their microtasks and Node's
 * unhandled-rejection pass have all run. No wall-clock wait: a crash later than that is still
 * caught by the final check of every property, only not attributed to one request.
 */
export async function settle(): Promise<void> {
  for (let turn = 0; turn < 2; turn++) await new Promise((resolve) => setImmediate(resolve));
}
