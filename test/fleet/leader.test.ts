/**
 * The warm-up leader against a real `redis-server`: one leader at a time under a lease with a fencing epoch; a leader
 * that dies mid-plan is replaced within one lease, its late write is refused, and the plan is written once; a node gone
 * with its part of the plan unsettled has that part planned again over the nodes left.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { FleetEngine } from "../../src/fleet/engine.js";
import { FleetLeader } from "../../src/fleet/leader.js";
import { REDIS_SKIP, startRedis } from "../../testkit/redis.js";
import { engineFor, nodeRecord, sleep, usageDelta } from "./fleet-helpers.js";

const LEASE_MS = 600;
const serves = Object.fromEntries(["m1", "m2", "m3"].map((m) => [m, { size: 1000, bytes: 1000 }]));
const silent = { info: () => {} };

/** A leader on `engine` that plans as soon as the nodes are known (no settle wait, no restore window). */
const leaderOf = (engine: FleetEngine | undefined) =>
  new FleetLeader({
    engine: engine!,
    leaseMs: LEASE_MS,
    settleMs: 0,
    restoreWindowMs: 0,
    halfLifeHours: 24,
    log: silent,
  });

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

  it("a node gone with its part of the plan unsettled: the next leader plans that part over the nodes left, once", async (t) => {
    const redis = await startRedis(t);
    const [a, b, c] = await Promise.all(["a", "b", "c"].map((id) => engineFor(t, redis.url, id)));
    // a's node lease is as short as the leader lease: it dies, it stops heartbeating and renewing both.
    for (const [engine, lease] of [
      [a!, LEASE_MS],
      [b!, 30_000],
      [c!, 30_000],
    ] as const) {
      await engine.heartbeat(`inc-${engine.nodeId}`, nodeRecord(engine.nodeId, { serves, started_at: 1 }), lease);
    }
    for (const [i, model] of ["m1", "m2", "m3"].entries()) await a!.mergeUsage(`d${i}`, usageDelta(model, 9 - i));
    const first = await leaderOf(a).tick();
    assert.ok(first, "a leads and plans");
    assert.equal(new Set(first.items.map((i) => i.node)).size, 3, JSON.stringify(first.items));
    const lost = first.items.find((i) => i.node === "a")!.model;
    // b loaded its part (a ready copy); c is loading its own; a dies before loading its part.
    const onB = first.items.find((i) => i.node === "b")!.model;
    const token = "b-token";
    assert.equal((await b!.claim(onB, token)).kind, "claimed");
    assert.ok(await b!.promote(onB, token));
    await b!.planProgress(first.id, onB, "loaded");
    await c!.planProgress(first.id, first.items.find((i) => i.node === "c")!.model, "loading");

    const bLeader = leaderOf(b);
    const deadAt = Date.now();
    let next = null;
    while (next === null) {
      next = await bLeader.tick();
      if (next === null) await sleep(50);
      assert.ok(Date.now() - deadAt < 2 * LEASE_MS + 500, "b plans again within a lease of a's death");
    }
    assert.deepEqual(next.nodes, { b: 1, c: 1 }, "over the nodes left");
    assert.deepEqual(
      next.items.map((i) => i.model),
      [lost],
      "only a's part: c's item still loading stays c's, b's loaded one is held",
    );
    assert.equal(await bLeader.tick(), null, "planned once");
  });
});
