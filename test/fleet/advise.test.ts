/**
 * `inferno cache advise` on a node in a fleet of two real `inferno serve` nodes (a real `redis-server`): the fleet's
 * merged request log (both nodes' saves) replayed through the fleet simulator answers how many nodes the recorded
 * traffic needs for a target hit rate; a bad target is a usage error.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import type { AdviceReport } from "../../src/cache/sim/advise.js";
import { cliSandbox } from "../../testkit/cli.js";
import { complete, FLEET_API_KEY, ok, startFleet } from "../../testkit/fleet.js";
import { REDIS_SKIP, startRedis } from "../../testkit/redis.js";

const MODELS = { "a.gguf": { seed: 1 }, "b.gguf": { seed: 2 } };

it(
  "advise on a fleet node replays the fleet's merged log and answers the nodes needed",
  { skip: REDIS_SKIP, timeout: 90_000 },
  async (t) => {
    const redis = await startRedis(t);
    const fleet = await startFleet(t, redis.url, [MODELS, MODELS], {
      config: { cache: { max_cached_models: 1, model_ttl_seconds: 0 } },
    });
    await fleet.settle();
    const [first, second] = fleet.nodes as [(typeof fleet.nodes)[0], (typeof fleet.nodes)[0]];

    // a and b in turn, through both nodes: one slot a node, so each model lives on one node and the fleet holds both.
    const order = ["a.gguf", "b.gguf", "a.gguf", "b.gguf", "a.gguf", "b.gguf", "a.gguf", "b.gguf"];
    for (const [i, model] of order.entries()) await ok(complete(i % 2 ? second : first, model));
    assert.deepEqual(await fleet.loads(), [1, 1], "one load on each node");
    for (const node of fleet.nodes) {
      const saved = await fetch(`${node.url}/v1/cache/save`, {
        method: "POST",
        headers: { authorization: `Bearer ${FLEET_API_KEY}` },
      });
      assert.equal(saved.status, 200, await saved.text());
    }

    const sandbox = await cliSandbox(t);
    const env = { INFERNO_SERVER__API_KEY: FLEET_API_KEY };
    const json = await sandbox.run(
      ["cache", "advise", "--server", first.url, "--target-hit-rate", "0.7", "--json"],
      env,
    );
    assert.equal(json.code, 0, json.stderr);
    const report = JSON.parse(json.stdout) as AdviceReport;
    const advice = report.fleet;
    assert.ok(advice, "a fleet part");
    // Both nodes' requests, merged: every request of the order, whichever node it reached.
    assert.equal(advice.log.requests, order.length);
    assert.equal(advice.log.models, 2);
    assert.equal(advice.current.nodes, 2);
    // By hand: one node of one slot reloads on every request; two hold both (2 first misses, 6 hits).
    const one = advice.rows.find((r) => r.varies === "nodes" && r.nodes === 1);
    assert.deepEqual([one?.hits, one?.loads], [0, order.length]);
    assert.deepEqual([advice.current.hits, advice.current.loads], [6, 2]);
    assert.equal(advice.target_hit_rate, 0.7);
    assert.equal(advice.nodes_needed, 2);

    // The table, for a target no size reaches.
    const table = await sandbox.run(["cache", "advise", "--server", first.url, "--target-hit-rate", "0.9"], env);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^fleet: 8 requests for 2 model\(s\) over .* replayed through the fleet simulator$/m);
    assert.match(table.stdout, /^\* 2 node\(s\) of 1 slot\(s\), \d+ MiB\s+75\.0%\s+2\s/m);
    assert.match(table.stdout, /^for a hit rate of 90\.0%: no node count replayed reaches it \(best 75\.0%/m);

    const bad = await sandbox.run(["cache", "advise", "--server", first.url, "--target-hit-rate", "1.5"], env);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--target-hit-rate must be a number above 0 and at most 1, found "1\.5"/);
    const refused = await fetch(`${first.url}/v1/cache/advise?target_hit_rate=0`, {
      headers: { authorization: `Bearer ${FLEET_API_KEY}` },
    });
    assert.equal(refused.status, 400);
  },
);
