/** `npm run stress`'s security checks (stress/scenarios/security.ts): every route of a real server with an API key. */
import assert from "node:assert/strict";
import { it } from "node:test";
import { securityScenario } from "../../stress/scenarios/security.js";
import { runBounded } from "../helpers/stress.js";

it("API key on every /v1, /api, /v2 route; traversal on every route taking a name; body and list limits; file modes", async (t) => {
  // Path-free error messages and list limits (issue 14 items 4 and 5) are being built on issue-14a.
  const { figures } = await runBounded(t, securityScenario, [
    { branch: "issue-14a", violation: /the answer shows a server path/ },
    { branch: "issue-14a", violation: /(prompts|messages|inputs) on \/(v1|api)\/[\w/]+: .*expected a 400 naming the limit/ },
  ]);
  assert.equal(figures.auth_bypasses, 0);
  assert.equal(figures.path_escapes, 0);
  assert.ok(Number(figures.auth_checks) > 100 && Number(figures.traversal_checks) > 100);
});
