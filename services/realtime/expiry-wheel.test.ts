import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createExpiryWheel } from "./expiry-wheel.js";

// The wheel's time is the clock's: fake timers move Date.now() and its interval together.
const START = Date.UTC(2026, 0, 1, 12, 0, 0);
const TICK_MS = 20;

describe("expiry wheel", () => {
  const wheels: { close(): void }[] = [];
  beforeEach(() => {
    vi.useFakeTimers({ now: START });
  });
  afterEach(() => {
    for (const wheel of wheels.splice(0)) wheel.close();
    vi.useRealTimers();
  });

  function wheel() {
    const expired: string[] = [];
    const w = createExpiryWheel<string>((item) => expired.push(item), TICK_MS);
    wheels.push(w);
    return { w, expired };
  }

  it("fires each item once, after its time and not before", () => {
    const { w, expired } = wheel();
    w.schedule("soon", START);
    w.schedule("later", START + 5_000);
    vi.advanceTimersByTime(TICK_MS);
    expect(expired).toEqual(["soon"]);
    expect(w.size).toBe(1);
    vi.advanceTimersByTime(4_999 - TICK_MS);
    expect(expired).toEqual(["soon"]);
    vi.advanceTimersByTime(TICK_MS + 1);
    expect(expired).toEqual(["soon", "later"]);
    vi.advanceTimersByTime(10_000);
    expect(expired).toEqual(["soon", "later"]);
    expect(w.size).toBe(0);
  });

  it("moves a rescheduled item and forgets a cancelled one", () => {
    const { w, expired } = wheel();
    w.schedule("renewed", START);
    w.schedule("renewed", START + 5_000);
    w.schedule("closed", START);
    w.cancel("closed");
    vi.advanceTimersByTime(1_100);
    expect(expired).toEqual([]);
    expect(w.size).toBe(1);
    w.cancel("renewed");
    expect(w.size).toBe(0);
    vi.advanceTimersByTime(10_000);
    expect(expired).toEqual([]);
  });
});
