/** `npm run stress`'s hostile strings (stress/scenarios/hostile-input.ts): every client string from 1 KiB to 2 MiB. */
import assert from "node:assert/strict";
import { it } from "node:test";
import { hostileInputScenario } from "./hostile-input.js";
import { runBounded } from "../../testkit/stress.js";

it(hostileInputScenario.title, async (t) => {
  const { figures } = await runBounded(t, hostileInputScenario);
  assert.ok(Number(figures.refused_over_limit) > 10);
});
