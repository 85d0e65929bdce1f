/** The cache's reading of time: the per-turn reading of the real clock, and wall time derived from monotonic time. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ClockReader, ManualClock, perTurn } from "../../src/cache/clock.js";

/** A clock that counts its reads and moves 1 ms per read. */
function countingClock() {
  const clock = { reads: 0, now: () => Date.UTC(2026, 0, 1) + clock.reads, monotonic: () => ++clock.reads };
  return clock;
}

describe("perTurn", () => {
  it("reads once per event-loop turn: promise chains of one turn share the reading, the next turn reads again", async () => {
    const clock = countingClock();
    const read = perTurn(() => clock.monotonic());
    const first = read();
    await Promise.resolve();
    await null;
    assert.equal(read(), first, "same turn, after awaits of settled promises");
    assert.equal(clock.reads, 1);
    await new Promise((resolve) => setImmediate(resolve));
    const second = read();
    assert.ok(second > first, "a later turn reads the clock again");
    assert.equal(clock.reads, 2);
  });

  it("no reading outlives its turn: the next timer, immediate or I/O callback reads again", async () => {
    const clock = countingClock();
    const read = perTurn(() => clock.monotonic());
    // Taken inside an immediate callback, then read by a timer that is already due: the case where an expiry queued
    // with setImmediate would come one loop iteration too late.
    const inTimer = await new Promise<number>((resolve) =>
      setImmediate(() => {
        read();
        setTimeout(() => resolve(read()), 1);
        const due = performance.now() + 3;
        while (performance.now() < due); // the timer is due before the loop turns
      }),
    );
    assert.equal(inTimer, 2);
    const inImmediate = await new Promise<number>((resolve) => {
      read();
      setImmediate(() => resolve(read()));
    });
    assert.equal(inImmediate, 4);
  });
});

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
