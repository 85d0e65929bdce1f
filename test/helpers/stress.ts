/**
 * The bounded form of a stress scenario (stress/scenario.ts) as a test: the same code `npm run stress` runs, at the
 * scenario's `bounded` size; its figures are printed as diagnostics and any violation fails the test.
 */
import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import type { Scenario, ScenarioResult } from "../../stress/scenario.js";

export async function runBounded<P>(t: TestContext, scenario: Scenario<P>): Promise<ScenarioResult> {
  const result = await scenario.run(scenario.bounded);
  t.diagnostic(`${scenario.name}: ${JSON.stringify(result.figures)}`);
  if (result.skipped) t.diagnostic(`${scenario.name} skipped in part: ${result.skipped}`);
  assert.deepEqual(result.violations, [], `${scenario.name}: ${scenario.title}`);
  return result;
}
