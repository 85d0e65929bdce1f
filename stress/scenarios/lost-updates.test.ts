/** `npm run stress`'s concurrent writers at the bounded size (stress/scenarios/lost-updates.ts): a real server, two CLI processes. */
import assert from "node:assert/strict";
import { it } from "node:test";
import { lostUpdatesScenario } from "./lost-updates.js";
import { runBounded } from "../../testkit/stress.js";

it("a server and two CLI processes writing the state file at once: 0 lost updates", async (t) => {
  const { figures } = await runBounded(t, lostUpdatesScenario);
  assert.equal(figures.lost_server_updates, 0);
  assert.equal(figures.lost_cli_updates, 0);
  assert.equal(figures.server_requests_served, lostUpdatesScenario.bounded.writes);
});
