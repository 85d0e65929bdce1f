/**
 * The bounded form of a stress scenario (testkit/scenario.ts) as a test: the same code `npm run stress` runs, at the
 * scenario's `bounded` size; its figures are printed as diagnostics and any violation fails the test.
 *
 * A violation of a promise another branch is building right now may be marked pending (`pending`: the branch and a
 * pattern of the violation): the assertion is not weakened — the test is reported as TODO with the violation, until
 * the branch lands, when a pending mark that matches nothing fails the test so it is removed.
 */
import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import type { Scenario, ScenarioResult } from "./scenario.js";

export interface Pending {
  branch: string;
  violation: RegExp;
}

export async function runBounded<P>(
  t: TestContext,
  scenario: Scenario<P>,
  pending: Pending[] = [],
): Promise<ScenarioResult> {
  const result = await scenario.run(scenario.bounded);
  t.diagnostic(`${scenario.name}: ${JSON.stringify(result.figures)}`);
  if (result.skipped) t.diagnostic(`${scenario.name} skipped in part: ${result.skipped}`);
  const isPending = (v: string) => pending.some((p) => p.violation.test(v));
  assert.deepEqual(
    result.violations.filter((v) => !isPending(v)),
    [],
    `${scenario.name}: ${scenario.title}`,
  );
  const stale = pending.filter((p) => !result.violations.some((v) => p.violation.test(v)));
  // A skipped part cannot show a pending violation: only a run in full proves the mark stale.
  if (result.skipped === null)
    assert.deepEqual(
      stale.map((p) => `${p.branch}: ${p.violation}`),
      [],
      "pending marks that no longer apply: remove them",
    );
  const open = result.violations.filter(isPending);
  if (open.length > 0) t.todo(`pending ${[...new Set(pending.map((p) => p.branch))].join(", ")}: ${open.join("; ")}`);
  return result;
}
