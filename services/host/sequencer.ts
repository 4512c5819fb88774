import { create } from "@bufbuild/protobuf";
import { GapFrameSchema } from "../../gen/converger/v1/frames_pb.js";
import { type BusFrame, encodeBusFrame } from "../common/events/bus.js";

// How long a frame that arrived ahead of its predecessor waits for it: well
// above cross-node delivery times (bench:fanout p99 ~40 ms), so that a busy
// moment does not send every follower back to resume.
const HOLD_MS = 500;

/** Sent to a topic's subscribers when frames were lost: they must resume by watermark. */
export const GAP_FRAME: BusFrame = encodeBusFrame(create(GapFrameSchema));

interface TopicState {
  last?: bigint;
  held: Map<bigint, BusFrame>;
  timer?: NodeJS.Timeout | undefined;
}

/**
 * Puts a conversation's activity frames back in seq order when several nodes
 * publish them (each after its own commit, so Redis may relay seq 6 before
 * seq 5). A frame ahead of its predecessor is held briefly; if the
 * predecessor never comes in time, subscribers get a gap frame, then what was held.
 */
export function createSequencer(deliver: (topic: string, frame: BusFrame) => void) {
  const topics = new Map<string, TopicState>();

  function drain(topic: string, state: TopicState) {
    for (let next = (state.last ?? 0n) + 1n; state.held.has(next); next++) {
      deliver(topic, state.held.get(next) as BusFrame);
      state.held.delete(next);
      state.last = next;
    }
    if (state.held.size === 0) {
      clearTimeout(state.timer);
      state.timer = undefined;
    }
  }

  function giveUp(topic: string) {
    const state = topics.get(topic);
    if (!state) return;
    state.timer = undefined;
    deliver(topic, GAP_FRAME);
    for (const seq of [...state.held.keys()].sort((a, b) => (a < b ? -1 : 1))) {
      deliver(topic, state.held.get(seq) as BusFrame);
      state.last = seq;
    }
    state.held.clear();
  }

  return {
    /** `seq` is the activity's of an activity frame; frames without one pass straight through. */
    push(topic: string, frame: BusFrame, seq: bigint | undefined): void {
      if (seq === undefined) {
        deliver(topic, frame);
        return;
      }
      const state: TopicState = topics.get(topic) ?? { held: new Map() };
      topics.set(topic, state);
      if (state.last !== undefined && seq <= state.last) return; // already delivered
      if (state.last === undefined || seq === state.last + 1n) {
        deliver(topic, frame);
        state.last = seq;
        drain(topic, state);
        return;
      }
      state.held.set(seq, frame);
      state.timer ??= setTimeout(() => giveUp(topic), HOLD_MS);
    },
    /** Forget a topic nobody here follows any more. */
    forget(topic: string): void {
      clearTimeout(topics.get(topic)?.timer);
      topics.delete(topic);
    },
    /** Start every topic afresh (after frames may have been lost). */
    reset(): void {
      for (const state of topics.values()) clearTimeout(state.timer);
      topics.clear();
    },
  };
}
