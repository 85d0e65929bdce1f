/** `npm run stress`'s security checks (stress/scenarios/security.ts): every route of a real server with an API key. */
import assert from "node:assert/strict";
import { it } from "node:test";
import { securityScenario } from "./security.js";
import { runBounded } from "../../testkit/stress.js";

it("API key on every /v1, /api, /v2 route; traversal on every route taking a name; body and list limits; file modes", async (t) => {
  const { figures } = await runBounded(t, securityScenario);
  assert.equal(figures.auth_bypasses, 0);
  assert.equal(figures.path_escapes, 0);
  assert.ok(Number(figures.auth_checks) > 100 && Number(figures.traversal_checks) > 100);
});
