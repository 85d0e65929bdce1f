/** `npm run stress`'s concurrent burst at the bounded size (stress/scenarios/concurrent.ts): real server, real llama.cpp. */
import assert from "node:assert/strict";
import { it } from "node:test";
import { concurrentScenario } from "./concurrent.js";
import { runBounded } from "../../testkit/stress.js";

it("a burst of concurrent requests over 5 models, 2 resident, a memory cap: only deliberate refusals, 0 double loads, cap kept, leases released, every request counted", async (t) => {
  const { figures } = await runBounded(t, concurrentScenario);
  assert.ok(Number(figures.answers_200) > 0 && Number(figures.loads) > 2, "requests were served and models swapped");
  assert.equal(figures.double_loads, 0);
  assert.equal(figures.leases_left, 0);
});
