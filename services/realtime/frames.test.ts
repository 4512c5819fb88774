import { describe, expect, it } from "vitest";
import { FrameError, watermarkOf } from "./frames.js";

describe("watermarkOf", () => {
  it("takes a seq as number or string, up to the int64 maximum", () => {
    expect(watermarkOf(0)).toBe("0");
    expect(watermarkOf("9223372036854775807")).toBe("9223372036854775807");
    expect(watermarkOf(undefined)).toBeUndefined();
  });

  it("refuses values past int64 and non-decimal forms with an invalid_argument frame error", () => {
    for (const value of ["9223372036854775808", "9999999999999999999", "0x10", "12abc", -1]) {
      expect(() => watermarkOf(value), String(value)).toThrow(FrameError);
    }
  });
});
