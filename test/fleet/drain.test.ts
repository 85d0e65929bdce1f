/** A draining node's models: which are loaded elsewhere first, in which order (a pure function, by table). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { drainOrder, type DrainingModel } from "../../src/fleet/drain.js";

const NOW = Date.UTC(2026, 0, 1, 12);
const MINUTE = 60_000;

const cases: Array<{ name: string; models: DrainingModel[]; move: string[]; leave: string[] }> = [
  {
    name: "most recently used first",
    models: [
      { name: "a", lastUsed: NOW - 30 * MINUTE },
      { name: "b", lastUsed: NOW - MINUTE },
      { name: "c", lastUsed: NOW - 10 * MINUTE },
    ],
    move: ["b", "c", "a"],
    leave: [],
  },
  {
    name: "unused for an hour, or never used here: left to go",
    models: [
      { name: "old", lastUsed: NOW - 61 * MINUTE },
      { name: "never", lastUsed: null },
      { name: "edge", lastUsed: NOW - 60 * MINUTE },
    ],
    move: ["edge"],
    leave: ["never", "old"],
  },
  { name: "nothing resident: nothing to do", models: [], move: [], leave: [] },
];

for (const c of cases) {
  test(c.name, () => {
    assert.deepEqual(drainOrder(c.models, NOW), { move: c.move, leave: c.leave });
  });
}
