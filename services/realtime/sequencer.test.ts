import { afterEach, describe, expect, it, vi } from "vitest";
import type { BusFrame } from "../common/events/bus.js";
import { createSequencer, HOLD_MS } from "./sequencer.js";

const frame = (seq: number): BusFrame => ({ type: "activity", activity: { seq: String(seq) } });

function setup(position = 0n) {
  const delivered: number[] = [];
  let lost = 0;
  const sequencer = createSequencer(position, {
    deliver: (f) => delivered.push(Number((f.activity as { seq: string }).seq)),
    lost: () => lost++,
  });
  const push = (...seqs: number[]) => {
    for (const seq of seqs) sequencer.push(BigInt(seq), frame(seq));
  };
  return { sequencer, delivered, push, lost: () => lost };
}

afterEach(() => {
  vi.useRealTimers();
});

describe("the sequencer", () => {
  it("hands frames on in seq order whatever order they come in, once each", () => {
    const s = setup();
    s.push(2, 1, 1, 4, 2, 3, 6, 5);
    expect(s.delivered).toEqual([1, 2, 3, 4, 5, 6]);
    expect(s.sequencer.position).toBe(6n);
  });

  it("starts after its position: what a follower already has is a duplicate", () => {
    const s = setup(10n);
    s.push(9, 10, 12, 11);
    expect(s.delivered).toEqual([11, 12]);
  });

  it("reports a hole that does not fill within the hold time, and then takes nothing more", () => {
    vi.useFakeTimers();
    const s = setup();
    s.push(1, 3);
    vi.advanceTimersByTime(HOLD_MS - 1);
    expect(s.lost()).toBe(0);
    vi.advanceTimersByTime(1);
    expect(s.lost()).toBe(1);
    s.push(2, 4);
    expect(s.delivered).toEqual([1]);
  });

  it("forgets the hold time once the hole fills", () => {
    vi.useFakeTimers();
    const s = setup();
    s.push(2, 1);
    vi.advanceTimersByTime(HOLD_MS * 2);
    expect(s.lost()).toBe(0);
    expect(s.delivered).toEqual([1, 2]);
  });
});
