/**
 * The status page of a node in a fleet, in a real browser (Debian's chromium): two real `inferno serve` nodes joined
 * through a real `redis-server`; the page shows both nodes and where each model is, and follows a load on the other
 * node live. Skipped (with the reason printed) where redis-server or chromium is missing.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { BROWSER_SKIP, openPage } from "../../testkit/browser.js";
import { complete, FLEET_API_KEY, ok, startFleet } from "../../testkit/fleet.js";
import { REDIS_SKIP, startRedis } from "../../testkit/redis.js";

const skip = REDIS_SKIP ?? BROWSER_SKIP;
if (skip) console.log(`# fleet status page test skipped: ${skip}`);

it("a fleet node's page shows the nodes and where each model is, live", { skip, timeout: 60_000 }, async (t) => {
  const redis = await startRedis(t);
  const fleet = await startFleet(t, redis.url, [{ "a.gguf": { seed: 1 } }, { "a.gguf": { seed: 1 } }]);
  await fleet.settle();
  const [first, second] = fleet.nodes as [(typeof fleet.nodes)[0], (typeof fleet.nodes)[0]];

  const { page, errors } = await openPage(t, `${first.url}/`, 15_000);
  await page.getByLabel("This server needs its API key:").fill(FLEET_API_KEY);
  await page.keyboard.press("Enter");
  await page.getByText("Live: following the cache's events.").waitFor();

  // Both nodes, this one marked, alive with their slots; no model anywhere yet.
  const summary = page.locator("#fleet-summary");
  await summary.getByText(/Fleet t on redis:\/\/127\.0\.0\.1:\d+: 2 of 2 node\(s\) alive/).waitFor();
  assert.match(await summary.innerText(), new RegExp(`This is ${first.id}\\.`));
  for (const node of fleet.nodes) {
    const row = page.locator(`#fleet-nodes tr[data-node="${node.id}"]`);
    await row.waitFor();
    const own = node === first ? " \\(this node\\)" : "";
    assert.match(
      await row.innerText(),
      new RegExp(`^${node.id}${own}\\s+alive\\s+\\S+ \\S+( of \\S+ \\S+)?\\s+0 of \\d+ slots\\s+\\d+\\s+no$`),
    );
  }

  // A request through the other node loads the model there: the page (on the first) follows without a reload.
  await ok(complete(second, "a.gguf"));
  const model = page.locator('#fleet-models tr[data-model="a.gguf"]');
  await model.getByText(`${second.id} (ready)`).waitFor();
  await page
    .locator(`#fleet-nodes tr[data-node="${second.id}"]`)
    .getByText(/1 of \d+ slots/)
    .waitFor();
  assert.equal(await page.locator('#models tr[data-model="a.gguf"]').count(), 0, "not loaded on this node");

  // The other node is killed: once its lease ends the page counts one node alive.
  await second.kill();
  await summary.getByText(/: 1 of [12] node\(s\) alive/).waitFor({ timeout: 20_000 });
  assert.deepEqual(errors, []);
});
