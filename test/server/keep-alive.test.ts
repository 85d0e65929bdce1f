import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { clampKeepAlive, type KeepAlive, KeepAliveSyntaxError, parseKeepAlive } from "../../src/server/keep-alive.js";

/** The tables below read as seconds, -1 for forever. */
const KEEP_ALIVE_FOREVER = -1;
const seconds = (k: KeepAlive): number => (k === "forever" ? KEEP_ALIVE_FOREVER : k.afterSeconds);
const keepAlive = (n: number): KeepAlive => (n === KEEP_ALIVE_FOREVER ? "forever" : { afterSeconds: n });

describe("parseKeepAlive", () => {
  const cases: Array<[string | number, number]> = [
    ["5m", 300],
    ["90s", 90],
    ["1h30m", 5400],
    ["1.5h", 5400],
    ["500ms", 1],
    ["0s", 0],
    ["0", 0],
    [0, 0],
    [300, 300],
    [2.2, 3],
    ["300", 300],
    [" 10m ", 600],
    [-1, KEEP_ALIVE_FOREVER],
    ["-1", KEEP_ALIVE_FOREVER],
    ["-5m", KEEP_ALIVE_FOREVER],
    [-0.5, KEEP_ALIVE_FOREVER],
  ];
  for (const [input, expected] of cases) {
    it(`${JSON.stringify(input)} → ${expected}`, () => assert.equal(seconds(parseKeepAlive(input)), expected));
  }

  for (const bad of ["", "5 minutes", "m", "5x", "1h-30m", "abc", "--1"]) {
    it(`refuses ${JSON.stringify(bad)}`, () => {
      assert.throws(
        () => parseKeepAlive(bad),
        (error: unknown) => {
          assert.ok(error instanceof KeepAliveSyntaxError);
          assert.match(error.message, /expected a duration like "5m"/);
          return true;
        },
      );
    });
  }

  it("refuses non-finite numbers", () =>
    assert.throws(() => parseKeepAlive(Number.POSITIVE_INFINITY), KeepAliveSyntaxError));
});

describe("clampKeepAlive", () => {
  const cases: Array<[number, number, number, number]> = [
    // seconds, min, max, expected
    [300, 0, 0, 300],
    [0, 0, 0, 0],
    [KEEP_ALIVE_FOREVER, 0, 0, KEEP_ALIVE_FOREVER],
    [KEEP_ALIVE_FOREVER, 0, 600, 600],
    [0, 30, 0, 30],
    [10, 30, 600, 30],
    [900, 30, 600, 600],
    [300, 30, 600, 300],
  ];
  for (const [value, min, max, expected] of cases) {
    it(`${value} within [${min}, ${max || "∞"}] → ${expected}`, () => {
      assert.equal(
        seconds(clampKeepAlive(keepAlive(value), { keep_alive_min_seconds: min, keep_alive_max_seconds: max })),
        expected,
      );
    });
  }
});
