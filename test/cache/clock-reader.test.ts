/** The cache's reading of time: wall time derived from monotonic time. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ClockReader, ManualClock } from "../../src/cache/clock.js";

/** A clock that counts its reads and moves 1 ms per read. */
function countingClock() {
  const clock = { reads: 0, now: () => Date.UTC(2026, 0, 1) + clock.reads, monotonic: () => ++clock.reads };
  return clock;
}

describe("ClockReader", () => {
  it("reads an injected clock every time (tests and the simulator keep exact time)", async () => {
    const manual = new ManualClock();
    const time = new ClockReader(manual, 5_000);
    const a = time.monotonic();
    await manual.advance(7);
    assert.equal(time.monotonic() - a, 7);
    assert.equal(time.now(), manual.now());
  });

  it("derives wall time from the monotonic reading, re-syncing the offset after resyncMs", () => {
    const clock = countingClock();
    const time = new ClockReader(clock, 3);
    const m = time.monotonic(); // monotonic 1, then the wall clock at that moment: base + 1
    assert.equal(m, 1);
    assert.equal(time.wallAt(m), Date.UTC(2026, 0, 1) + 1);
    assert.equal(time.wallAt(m + 250), Date.UTC(2026, 0, 1) + 251, "later readings: the same offset");
    const reads = clock.reads;
    time.monotonic();
    assert.equal(clock.reads, reads + 1, "within resyncMs: one read, no wall-clock read");
  });
});
