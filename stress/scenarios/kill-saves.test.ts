/** `npm run stress`'s SIGKILL mid-save at the bounded size (stress/scenarios/kill-saves.ts). */
import assert from "node:assert/strict";
import { it } from "node:test";
import { killSavesScenario } from "./kill-saves.js";
import { runBounded } from "../../testkit/stress.js";

it("SIGKILL mid-save, then a fresh start: 0 undecodable, 0 lost saves, 0 stale temp files, 0 false lock failures", async (t) => {
  const { figures } = await runBounded(t, killSavesScenario);
  assert.equal(figures.kills, killSavesScenario.bounded.kills);
  for (const name of ["undecodable", "lost_saves", "stale_temp_files_after_start", "false_lock_failures"])
    assert.equal(figures[name], 0, name);
});
