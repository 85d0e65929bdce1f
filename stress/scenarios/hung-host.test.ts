/** `npm run stress`'s hung hosts (stress/scenarios/hung-host.ts): SIGSTOPped model hosts mid-stream, idle and briefly. */
import assert from "node:assert/strict";
import { it } from "node:test";
import { hungHostScenario } from "./hung-host.js";
import { runBounded } from "../../testkit/stress.js";

it(hungHostScenario.title, async (t) => {
  const { figures } = await runBounded(t, hungHostScenario);
  assert.equal(figures.streams, 1);
});
