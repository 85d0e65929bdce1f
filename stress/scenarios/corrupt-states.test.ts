/** `npm run stress`'s corrupt state files at the bounded size (stress/scenarios/corrupt-states.ts). */
import assert from "node:assert/strict";
import { it } from "node:test";
import { corruptStatesScenario } from "./corrupt-states.js";
import { runBounded } from "../../testkit/stress.js";

it("generated corrupt state files (flips, truncations, bombs, out-of-range values): each quarantined, 0 crashes, 0 hangs, memory bounded", async (t) => {
  const { figures } = await runBounded(t, corruptStatesScenario);
  assert.equal(figures.crashes, 0);
  assert.equal(figures.hangs, 0);
  assert.ok(
    Number(figures.files_bomb) > 0 && Number(figures.files_out_of_range) > 0,
    "bombs and out-of-range values are among them",
  );
  assert.equal(
    Number(figures.quarantined) + Number(figures.decoded_unchanged ?? 0),
    figures.files,
    "every file quarantined or read unchanged",
  );
});
