/** The thread-count rule every backend shares, as a table, and the physical-core count it is fed with. */
import assert from "node:assert/strict";
import { availableParallelism } from "node:os";
import { test } from "node:test";
import { physicalCores, threadCount } from "../../src/backends/common.js";

test("threadCount: 0 means the physical cores, an explicit count is kept, and neither exceeds the cores", () => {
  // [configured, physical cores, logical cores, expected threads]
  const table: Array<[number, number, number, number]> = [
    [0, 4, 8, 4], // 0 → the physical cores (hyper-threads left out)
    [0, 8, 8, 8],
    [0, 16, 8, 8], // physical cores counted beyond what this process may use are capped
    [0, 0, 8, 1], // at least one thread, whatever the core count says
    [0, 2, 0, 1],
    [1, 4, 8, 1], // an explicit count is kept…
    [6, 4, 8, 6], // …even above the physical cores (the user asked for it)
    [8, 4, 8, 8],
    [12, 4, 8, 8], // …but never above the logical cores
    [3, 4, 1, 1],
    [3, 4, 0, 1],
  ];
  for (const [configured, physical, cores, expected] of table) {
    assert.equal(threadCount(configured, physical, cores), expected, `threadCount(${configured}, ${physical}, ${cores})`);
  }
});

test("threadCount defaults to this machine's cores, and physicalCores counts at least one", () => {
  const cores = availableParallelism();
  const physical = physicalCores();
  assert.ok(Number.isInteger(physical) && physical >= 1, String(physical));
  assert.equal(threadCount(cores + 5, 1), cores);
  assert.equal(threadCount(0, physical), Math.min(physical, cores));
  assert.equal(threadCount(1, physical), 1);
});
