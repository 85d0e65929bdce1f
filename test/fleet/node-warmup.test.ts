/**
 * A node's part of the fleet warm-up against a real redis-server: each plan item is claimed as a request's load is, so
 * a model a request had loaded on another node since the leader planned is left there (no second copy), and an item
 * this node loads is claimed first (another node's request then finds this node loading).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { FleetEngine } from "../../src/fleet/engine.js";
import { FleetLeader } from "../../src/fleet/leader.js";
import { FleetMember } from "../../src/fleet/member.js";
import { NodeWarmup } from "../../src/runtime/fleet-warmup.js";
import { REDIS_SKIP, startRedis } from "../../testkit/redis.js";
import { waitFor } from "../../testkit/server.js";
import { engineFor, nodeRecord } from "./fleet-helpers.js";

const LEASE_MS = 60_000;
const STARTED_AT = 1000;

test(
  "a plan item another node holds by now is left to it; the others are claimed, then loaded",
  { skip: REDIS_SKIP },
  async (t) => {
    const redis = await startRedis(t);
    const join = async (id: string) => {
      const member = await FleetMember.start({
        engine: new FleetEngine({ redisUrl: redis.url, name: "test", nodeId: id }),
        heartbeatMs: 200,
        nodeTimeoutMs: LEASE_MS,
        record: () => nodeRecord(id, { started_at: STARTED_AT }),
        log: { warn: () => {}, info: () => {} },
      });
      t.after(() => member.close());
      return member;
    };
    const [a, b] = [await join("a"), await join("b")];
    // Another node leads, so the plan the test writes stays the plan.
    const leader = await engineFor(t, redis.url, "leader");
    await leader.heartbeat("1", nodeRecord("leader"), LEASE_MS);
    const { epoch } = await leader.lead(LEASE_MS);
    // Since the plan was made (both models cold), a request had b load m.gguf.
    assert.equal((await b.claim("m.gguf")).kind, "claimed");
    const items = ["m.gguf", "n.gguf"].map((model) => ({ model, node: "a", bytes: 1 }));
    const plan = { id: "p1", epoch, leader: "leader", created_at: 0, nodes: { a: STARTED_AT }, items, skipped: [] };
    assert.equal(await leader.writePlan(plan), "ok");

    const loaded: string[] = [];
    const infos: string[] = [];
    const log = { info: (m: string) => infos.push(m), warn: (m: string) => infos.push(m) };
    const warmup = new NodeWarmup({
      member: a,
      leader: new FleetLeader({
        engine: a.engine,
        leaseMs: LEASE_MS,
        settleMs: 0,
        restoreWindowMs: 0,
        halfLifeHours: 24,
        log,
      }),
      load: async (name) => {
        loaded.push(name);
      },
      startedAt: STARTED_AT,
      intervalMs: 100,
      waitMs: LEASE_MS,
      log,
    });
    t.after(() => warmup.stop());
    warmup.start();
    await waitFor(() => warmup.readiness().state === "done", 20);
    assert.deepEqual(loaded, ["n.gguf"], infos.join("; "));
    assert.ok(
      infos.some((m) => /leaves m\.gguf to the node that holds it/.test(m)),
      infos.join("; "),
    );
    assert.equal(warmup.readiness().settled, 2);
    const held = await b.claim("n.gguf");
    assert.deepEqual(
      held.kind === "held" && held.holders.map((h) => h.node),
      ["a"],
      "a claimed n.gguf before loading it",
    );
  },
);
