/**
 * The warm-up leader against a real `redis-server`: one leader at a time under a lease with a fencing epoch; a leader
 * that dies mid-plan is replaced within one lease, its late write is refused, and the plan is written once.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FleetLeader } from "../../src/fleet/leader.js";
import { REDIS_SKIP, startRedis } from "../../testkit/redis.js";
import { engineFor, nodeRecord, sleep, usageDelta } from "./fleet-helpers.js";

const LEASE_MS = 600;
const serves = Object.fromEntries(["m1", "m2", "m3"].map((m) => [m, { size: 1000, bytes: 1000 }]));
const silent = { info: () => {} };

describe("the warm-up leader", { skip: REDIS_SKIP, timeout: 30_000 }, () => {
  it("one leader at a time; the leader killed mid-plan is replaced within one lease and the plan is written once", async (t) => {
    const redis = await startRedis(t);
    const [a, b] = await Promise.all(["a", "b"].map((id) => engineFor(t, redis.url, id)));
    for (const [engine, started] of [
      [a!, 1],
      [b!, 2],
    ] as const) {
      await engine.heartbeat(
        `inc-${engine.nodeId}`,
        nodeRecord(engine.nodeId, { serves, started_at: started }),
        30_000,
      );
    }
    await a!.mergeUsage("d1", usageDelta("m1", 5));
    await a!.mergeUsage("d2", usageDelta("m2", 3));
    const leaderOf = (engine: typeof a) =>
      new FleetLeader({
        engine: engine!,
        leaseMs: LEASE_MS,
        settleMs: 0,
        restoreWindowMs: 0,
        halfLifeHours: 24,
        log: silent,
      });

    // a takes the lease; b sees a as the leader and plans nothing.
    const first = await a!.lead(LEASE_MS);
    assert.equal(first.node, "a");
    assert.equal((await b!.lead(LEASE_MS)).node, "a");
    const bLeader = leaderOf(b);
    assert.equal(await bLeader.tick(), null);

    // a read the fleet and is planning when it dies (it never renews). b takes over within one lease.
    const snapshot = await a!.snapshot();
    const deadAt = Date.now();
    let plan = null;
    while (plan === null) {
      plan = await bLeader.tick();
      if (plan === null) await sleep(50);
      assert.ok(Date.now() - deadAt < LEASE_MS + 500, "b leads within one lease");
    }
    assert.equal(plan.leader, "b");
    assert.ok(plan.epoch > first.epoch, "a new fencing epoch");
    assert.deepEqual(plan.items.map((i) => i.model).sort(), ["m1", "m2"]);
    assert.equal(new Set(plan.items.map((i) => i.node)).size, 2, "one model per node (half of 2 slots each)");

    // a's late write under its old epoch is refused: the plan is b's.
    assert.equal(await leaderOf(a).plan(first.epoch, snapshot), null);
    assert.equal(await a!.writePlan({ ...plan, id: "stale", epoch: first.epoch, leader: "a" }), "fenced");
    const stored = await b!.readPlan();
    assert.equal(stored.plan?.id, plan.id);
    assert.equal(stored.leader.node, "b");

    // The same nodes: no second plan. Progress is recorded against the current plan only.
    assert.equal(await bLeader.tick(), null);
    assert.equal(await b!.planProgress(plan.id, "m1", "loaded"), true);
    assert.equal(await b!.planProgress("stale", "m1", "loaded"), false);
    assert.deepEqual((await a!.readPlan()).progress, { "m1@b": "loaded" });

    // A node that restarts (a new started_at) is a join: the leader plans again, once the nodes settled.
    await a!.heartbeat("inc-a2", nodeRecord("a", { serves, started_at: 3 }), 30_000);
    const again = await bLeader.tick();
    assert.ok(again && again.id !== plan.id, "a new plan for the returning node");
    assert.equal(again.nodes.a, 3);
    // What the previous plan gave b, which is still there and loading it, is not planned twice.
    const onB = plan.items.find((i) => i.node === "b")!.model;
    assert.ok(!again.items.some((i) => i.model === onB), `${onB} stays b's: ${JSON.stringify(again.items)}`);
    assert.ok(again.items.length > 0, "a's share comes back");

    // A leader that leaves hands the lease on at once, under a new epoch.
    assert.equal(await b!.leave("inc-b"), true);
    const next = await a!.lead(LEASE_MS);
    assert.equal(next.node, "a");
    assert.ok(next.epoch > again.epoch);
  });
});
