/**
 * The thread-count rule every backend shares, as a table, and the physical-core count it is fed with; the Node flags a
 * JavaScript child of a process run under tsx keeps.
 */
import assert from "node:assert/strict";
import { availableParallelism } from "node:os";
import { test } from "node:test";
import { physicalCores, threadCount, withoutTsx } from "../../src/backends/common.js";

test("threadCount: 0 means the physical cores less one, an explicit count is kept, and neither exceeds the cores", () => {
  // [configured, physical cores, logical cores, expected threads]
  const table: Array<[number, number, number, number]> = [
    [0, 4, 8, 3], // 0 → the physical cores (hyper-threads left out) less one, left for everything else
    [0, 8, 8, 7],
    [0, 2, 2, 1], // this 2-core VM: one thread, which has nobody to spin-wait for
    [0, 1, 1, 1], // at least one thread
    [0, 16, 8, 7], // physical cores counted beyond what this process may use are capped first
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
    assert.equal(
      threadCount(configured, physical, cores),
      expected,
      `threadCount(${configured}, ${physical}, ${cores})`,
    );
  }
});

test("threadCount defaults to this machine's cores, and physicalCores counts at least one", () => {
  const cores = availableParallelism();
  const physical = physicalCores();
  assert.ok(Number.isInteger(physical) && physical >= 1, String(physical));
  assert.equal(threadCount(cores + 5, 1), cores);
  assert.equal(threadCount(0, physical), Math.max(1, Math.min(physical, cores) - 1));
  assert.equal(threadCount(1, physical), 1);
});

test("withoutTsx drops the flags that load tsx, in every spelling, and keeps every other flag", () => {
  const tsx = "file:///app/node_modules/tsx/dist/loader.mjs";
  // [flags, kept]
  const table: Array<[string[], string[]]> = [
    [[], []],
    [["--import", "tsx"], []],
    [["--import", tsx, "--max-old-space-size=512"], ["--max-old-space-size=512"]],
    [[`--import=${tsx}`, "--enable-source-maps"], ["--enable-source-maps"]],
    [["--require", "tsx/cjs", "--loader", "tsx"], []],
    [
      ["--import", "./hooks.mjs", "--import", "tsx"],
      ["--import", "./hooks.mjs"],
    ],
    [["--experimental-loader=./other.mjs"], ["--experimental-loader=./other.mjs"]],
    [
      ["--inspect", "--stack-size=2000"],
      ["--inspect", "--stack-size=2000"],
    ],
  ];
  for (const [flags, kept] of table) assert.deepEqual(withoutTsx(flags), kept, flags.join(" "));
});
