/** `backend.parallel = 0` (auto, the default): the sequences per loaded model from the machine's memory and cores. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parallelCount } from "../../src/models/load-settings.js";
import { backendSchema } from "../../src/config/schema.js";
import { GIB } from "../../src/units.js";

test("auto: 4 with 8 GiB and 2 cores, 2 with 4 GiB, else 1; a configured count is kept", () => {
  const table: Array<[configured: number, gib: number, cores: number, expected: number]> = [
    [0, 64, 16, 4],
    [0, 8, 2, 4],
    [0, 8, 1, 2],
    [0, 7.9, 8, 2],
    [0, 4, 1, 2],
    [0, 3.9, 4, 1],
    [1, 64, 16, 1],
    [6, 2, 1, 6],
  ];
  for (const [configured, gib, cores, expected] of table)
    assert.equal(
      parallelCount(configured, { memoryBytes: gib * GIB, cores }),
      expected,
      `${configured}, ${gib} GiB, ${cores} cores`,
    );
});

test("the default is auto, and a negative count is refused", () => {
  assert.equal(backendSchema.parse({}).parallel, 0);
  assert.ok(parallelCount(backendSchema.parse({}).parallel) >= 1);
  assert.throws(() => backendSchema.parse({ parallel: -1 }));
});
