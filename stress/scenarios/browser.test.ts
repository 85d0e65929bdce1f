/** `npm run stress`'s browser checks (stress/scenarios/browser.ts): every route from another site's page, through DNS rebinding and with text/plain bodies. */
import assert from "node:assert/strict";
import { it } from "node:test";
import { browserScenario } from "./browser.js";
import { runBounded } from "../../testkit/stress.js";

it(browserScenario.title, async (t) => {
  const { figures } = await runBounded(t, browserScenario);
  assert.ok(Number(figures.routes) > 20 && Number(figures.host_checks) >= Number(figures.routes));
});
