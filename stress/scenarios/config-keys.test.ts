/** `npm run stress`'s configuration keys at the bounded size (stress/scenarios/config-keys.ts). */
import assert from "node:assert/strict";
import { it } from "node:test";
import { allKeys } from "../../src/config/keys.js";
import { configKeysScenario } from "./config-keys.js";
import { runBounded } from "../../testkit/stress.js";

it("every configuration key with wrong types and out-of-range values: exit 2 from config set (file untouched) and config validate", async (t) => {
  const { figures } = await runBounded(t, configKeysScenario);
  assert.equal(figures.keys, allKeys().length);
  assert.equal(figures.config_set_refused_with_exit_2_file_untouched, figures.config_set_runs);
  assert.equal(figures.config_file_refused_with_exit_2, figures.config_file_runs);
});
