/**
 * The copies rule with real `inferno serve` nodes on loopback and a real `redis-server`: a model requested steadily
 * above `fleet.scale_up_rpm` gets a second copy on another node; once its traffic stops and the fleet fills, that
 * extra copy is the first to go; `min_copies = 2` holds after a holder is SIGKILLed; and a node publishes its warm and
 * cold loads apart (what placement prices a warm file by).
 */
import assert from "node:assert/strict";
import { describe, it, type TestContext } from "node:test";
import type { FleetEngine } from "../../src/fleet/engine.js";
import type { LoadRate } from "../../src/fleet/types.js";
import { complete as request, type FleetTestNode as Node, ok, startFleetNode } from "../../testkit/fleet.js";
import { REDIS_SKIP, startRedis } from "../../testkit/redis.js";
import { type TestConfig, waitFor } from "../../testkit/server.js";
import { engineFor, sleep } from "./fleet-helpers.js";

const MODELS = { "a.gguf": { seed: 1 }, "b.gguf": { seed: 2 }, "c.gguf": { seed: 3 }, "d.gguf": { seed: 4 } };

/** A node of two model slots whose copies rule adds a copy above 10 requests a minute. */
function startNode(t: TestContext, redisUrl: string, cache: TestConfig["cache"] = {}): Promise<Node> {
  return startFleetNode(t, redisUrl, MODELS, {
    config: { cache: { max_cached_models: 2, ...cache } },
    env: { INFERNO_FLEET__SCALE_UP_RPM: "10" },
  });
}

const complete = (node: Node, model: string) => ok(request(node, model, { maxTokens: 1 }));

const loaded = async (node: Node) => (await node.stats()).models.filter((m) => m.loaded).map((m) => m.name);

/** The nodes holding a ready copy of `model`, from Redis. */
async function readyHolders(engine: FleetEngine, model: string): Promise<string[]> {
  const snapshot = await engine.snapshot();
  return snapshot.copies
    .filter((c) => c.model === model && c.copy.state === "ready")
    .map((c) => c.node)
    .sort();
}

describe("copies by usage in a fleet of inferno serve nodes", { skip: REDIS_SKIP, timeout: 120_000 }, () => {
  it("a model asked steadily gets a second copy; when its traffic stops and the fleet fills, that copy goes first", async (t) => {
    const redis = await startRedis(t);
    const [first, second] = (await Promise.all([0, 1].map(() => startNode(t, redis.url)))) as [Node, Node];
    const engine = await engineFor(t, redis.url, "reader", { name: "t" });
    await waitFor(async () => (await engine.snapshot()).nodes.filter((n) => n.record).length === 2, 100);

    await complete(first, "a.gguf");
    await waitFor(async () => (await readyHolders(engine, "a.gguf")).length === 1, 50);
    // 30 requests through the second node in 3 s: forwarded to the first, about 90 a minute there, above 10 per copy.
    for (let i = 0; i < 30; i++) {
      await complete(second, "a.gguf");
      await sleep(100);
    }
    await waitFor(async () => (await readyHolders(engine, "a.gguf")).length === 2, 100);
    assert.deepEqual(await readyHolders(engine, "a.gguf"), [first.id, second.id].sort());
    assert.deepEqual(await loaded(second), ["a.gguf"], "the second copy loaded on the node without one");

    // The traffic stops: once the rate has fallen, the second node's copy is spare (its record says so).
    await waitFor(async () => {
      const record = (await engine.snapshot()).nodes.find((n) => n.id === second.id)?.record;
      return (record?.spare_copies ?? 0) === 1;
    }, 250);
    // The fleet fills: b on the second node, c on the first (each has room), then d finds both full.
    await complete(second, "b.gguf");
    await complete(first, "c.gguf");
    // Both records full in Redis, the second's spare copy still marked (the next heartbeats), then the feed's moment to bring them to the first node's mirror.
    await waitFor(async () => {
      const nodes = (await engine.snapshot()).nodes;
      const full = nodes.every((n) => n.record?.model_count === 2 && (n.record.evictable?.length ?? 0) > 0);
      return full && nodes.length === 2 && nodes.find((n) => n.id === second.id)?.record?.spare_copies === 1;
    }, 50);
    await sleep(100);
    await complete(first, "d.gguf");
    assert.deepEqual(await loaded(second), ["b.gguf", "d.gguf"], "the spare copy of a went, not b");
    assert.deepEqual(await loaded(first), ["a.gguf", "c.gguf"], "the first copy of a stays");
    assert.equal((await first.stats()).evictions.capacity_count, 0);
  });

  it("a node publishes its warm loads (the file unloaded there minutes before) apart", async (t) => {
    const redis = await startRedis(t);
    const node = await startNode(t, redis.url, { max_cached_models: 1 });
    const engine = await engineFor(t, redis.url, "reader", { name: "t" });
    // a and b loaded for the first time; a again after b took its slot: its file was unloaded here a moment ago.
    for (const model of ["a.gguf", "b.gguf", "a.gguf"]) await complete(node, model);
    // The record of the next heartbeats (every 5 s by default) carries the third load.
    let rate: LoadRate | undefined;
    for (let tries = 0; tries < 100 && rate?.loads !== 3; tries++) {
      if (tries > 0) await sleep(100);
      rate = (await engine.snapshot()).nodes.find((n) => n.id === node.id)?.record?.load_rate;
    }
    // The first loads of a and b count in neither tier (a first load pays set-up a reload does not).
    assert.deepEqual([rate?.loads, rate?.warm?.loads, rate?.cold], [3, 1, undefined]);
  });

  it("min_copies = 2 holds after a holder is SIGKILLed", async (t) => {
    const redis = await startRedis(t);
    const cache = { models: { "a.gguf": { min_copies: 2 } } };
    const nodes = await Promise.all([0, 1, 2].map(() => startNode(t, redis.url, cache)));
    const engine = await engineFor(t, redis.url, "reader", { name: "t" });
    // Nobody asked for it: the fleet loads two copies on its own.
    await waitFor(async () => (await readyHolders(engine, "a.gguf")).length === 2, 100);
    await sleep(1000);
    assert.equal((await readyHolders(engine, "a.gguf")).length, 2, "two copies, not three");
    const [victimId] = await readyHolders(engine, "a.gguf");
    const victim = nodes.find((n) => n.id === victimId) as Node;
    const killedAt = Date.now();
    await victim.kill();
    // Within node_timeout_seconds (3) and a load: two ready copies again, none on the dead node.
    await waitFor(async () => {
      const holders = await readyHolders(engine, "a.gguf");
      return holders.length === 2 && !holders.includes(victim.id);
    }, 100);
    const took = Date.now() - killedAt;
    assert.ok(took < 3000 + 5000, `a new copy within node_timeout + a load: ${took} ms`);
  });
});
