import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { createExpiryWheel } from "./expiry-wheel.js";

describe("expiry wheel", () => {
  const wheels: { close(): void }[] = [];
  afterEach(() => {
    for (const wheel of wheels.splice(0)) wheel.close();
  });

  function wheel() {
    const expired: string[] = [];
    const w = createExpiryWheel<string>((item) => expired.push(item), 20);
    wheels.push(w);
    return { w, expired };
  }

  it("fires each item once, after its time and not before", async () => {
    const { w, expired } = wheel();
    w.schedule("soon", Date.now());
    w.schedule("later", Date.now() + 5_000);
    await sleep(1_100);
    expect(expired).toEqual(["soon"]);
    expect(w.size).toBe(1);
    await sleep(200);
    expect(expired).toEqual(["soon"]);
  });

  it("moves a rescheduled item and forgets a cancelled one", async () => {
    const { w, expired } = wheel();
    w.schedule("renewed", Date.now());
    w.schedule("renewed", Date.now() + 5_000);
    w.schedule("closed", Date.now());
    w.cancel("closed");
    await sleep(1_100);
    expect(expired).toEqual([]);
    expect(w.size).toBe(1);
    w.cancel("renewed");
    expect(w.size).toBe(0);
  });
});
