/**
 * The cross-node single flight under pressure: rounds of concurrent cold requests for a fresh model, spread over three
 * real `inferno serve` nodes, each make exactly one load in the fleet — whichever node claims first, wherever placement
 * puts the load, whatever the other nodes' claims and forwards meet on the way (a claim handed to the placed node,
 * forwards crossing it, a mirror behind Redis).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { complete, ok, startFleet } from "../../testkit/fleet.js";
import { REDIS_SKIP, startRedis } from "../../testkit/redis.js";

const ROUNDS = 8;
const REQUESTS = 15;
const MODELS = Array.from({ length: ROUNDS }, (_, i) => `c${i}.gguf`);

describe("concurrent cold requests over three nodes", { skip: REDIS_SKIP, timeout: 120_000 }, () => {
  it(`make one load per model, ${ROUNDS} rounds of ${REQUESTS}`, async (t) => {
    const redis = await startRedis(t);
    const models = Object.fromEntries(MODELS.map((name, i) => [name, { seed: i + 1 }]));
    const fleet = await startFleet(t, redis.url, [models, models, models], {
      config: { cache: { max_cached_models: 4 } },
    });
    await fleet.settle();
    for (const [round, model] of MODELS.entries()) {
      // Each round starts at another node, so each node is in turn the one whose request arrives first.
      await Promise.all(Array.from({ length: REQUESTS }, (_, i) => ok(complete(fleet.nodes[(i + round) % 3]!, model))));
      const loads = await fleet.loadsOf(model);
      const forwards = fleet.nodes.map((n) => n.log().match(/forwarding to .* failed.*/g) ?? []).flat();
      assert.equal(
        loads.reduce((a, b) => a + b, 0),
        1,
        `${model}: one load in the fleet (per node: ${loads.join(", ")}; failed forwards: ${forwards.join("; ") || "none"})`,
      );
    }
  });
});
