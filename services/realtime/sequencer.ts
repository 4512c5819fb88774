import type { BusFrame } from "../common/events/bus.js";

// How long a frame that arrived ahead of its predecessor waits for it: well
// above cross-node delivery times (bench:fanout p99 ~40 ms), so that a busy
// moment does not send every follower back to resume.
export const HOLD_MS = 500;

export interface Sequencer {
  /** The last seq handed on: followers have everything up to it. */
  readonly position: bigint;
  /** Takes the activity frame with `seq`, in whatever order the bus brought it. */
  push(seq: bigint, frame: BusFrame): void;
  stop(): void;
}

/**
 * Puts one conversation's activity frames back in seq order from `position`
 * on: several nodes publish them, each after its own commit, so the bus may
 * bring seq 6 before seq 5. A frame ahead of its predecessor is held; one at
 * or below the position is a duplicate and dropped. If the predecessor does
 * not come within HOLD_MS, `lost` is called and the sequencer stops: its
 * followers must resume by watermark from the log.
 */
export function createSequencer(position: bigint, out: { deliver(frame: BusFrame): void; lost(): void }): Sequencer {
  let last = position;
  const held = new Map<bigint, BusFrame>();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  const stop = () => {
    stopped = true;
    clearTimeout(timer);
    held.clear();
  };

  return {
    get position() {
      return last;
    },
    push(seq, frame) {
      if (stopped || seq <= last) return;
      if (seq !== last + 1n) {
        held.set(seq, frame);
        timer ??= setTimeout(() => {
          stop();
          out.lost();
        }, HOLD_MS);
        return;
      }
      out.deliver(frame);
      last = seq;
      for (let next = last + 1n; held.has(next); next++) {
        out.deliver(held.get(next) as BusFrame);
        held.delete(next);
        last = next;
      }
      if (held.size === 0) {
        clearTimeout(timer);
        timer = undefined;
      }
    },
    stop,
  };
}
