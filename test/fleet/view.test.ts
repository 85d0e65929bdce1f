/**
 * `GET /v1/fleet`'s shape from what Redis holds (a pure function over a snapshot, the plan and the usage), and the
 * route on a single node: behind the API key, then 404.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { mergeDelta } from "../../src/cache/persistence/merge.js";
import type { CacheState } from "../../src/cache/persistence/types.js";
import type { FleetSnapshot, PlanView } from "../../src/fleet/index.js";
import { fleetView, usageByName } from "../../src/runtime/fleet-view.js";
import { startTestServer } from "../../testkit/server.js";
import { nodeRecord, usageDelta } from "./fleet-helpers.js";

const NOW = Date.UTC(2026, 0, 2, 12);

it("shows live and dead nodes, each model's copies and fleet usage, and the plan with its progress", () => {
  const ready = { state: "ready" as const, since: NOW - 1000, lease: 0, token: "t1" };
  const snapshot: FleetSnapshot = {
    now: NOW,
    seq: 7,
    feedId: "1-0",
    nodes: [
      { id: "a", lease: NOW + 5000, record: nodeRecord("a", { model_count: 1, memory_used: 100, draining: true }) },
      { id: "b", lease: NOW - 1, record: nodeRecord("b") },
    ],
    copies: [
      { model: "m1", node: "a", copy: ready },
      { model: "m2", node: "a", copy: { ...ready, state: "loading", lease: NOW + 9000 } },
    ],
  };
  const plan: PlanView = {
    plan: {
      id: "3:1",
      epoch: 3,
      leader: "a",
      created_at: NOW - 5000,
      nodes: { a: 0 },
      items: [
        { model: "m1", node: "a", bytes: 10 },
        { model: "m2", node: "a", bytes: 20 },
      ],
      skipped: [{ model: "m9", reason: "no room within the warm-up budget" }],
    },
    progress: { "m1@a": "loaded", "m2@a": "loading" },
    leader: { node: "a", epoch: 3, lease: NOW + 3000, now: NOW },
  };
  const usage = {
    models: [usageDelta("m1", 4, NOW - 60_000).models[0]!, usageDelta("m3", 2, NOW - 120_000).models[0]!],
  } as CacheState;
  const view = fleetView({ fleet: "f", node: "a", status: "ok", redis: "redis://x", snapshot, plan, usage });

  assert.deepEqual(view.leader, { node: "a", epoch: 3, lease_until: new Date(NOW + 3000).toISOString() });
  assert.deepEqual(
    view.nodes.map((n) => [n.id, n.alive, n.draining, n.models_loaded, n.models.map((m) => `${m.name}:${m.state}`)]),
    [
      ["a", true, true, 1, ["m1:ready", "m2:loading"]],
      ["b", false, false, 0, []],
    ],
  );
  assert.deepEqual(
    view.models.map((m) => [m.name, m.copies.map((c) => c.node), m.requests, m.last_used]),
    [
      ["m1", ["a"], 4, new Date(NOW - 60_000).toISOString()],
      ["m2", ["a"], 0, null],
      ["m3", [], 2, new Date(NOW - 120_000).toISOString()],
    ],
  );
  assert.deepEqual(
    view.plan?.items.map((i) => `${i.model}@${i.node}:${i.state}`),
    ["m1@a:loaded", "m2@a:loading"],
  );
  assert.equal(view.plan?.settled, 1);
  assert.equal(view.plan?.total, 2);
  assert.deepEqual(view.plan?.skipped, plan.plan!.skipped);
});

it("counts one model served from two nodes' different folders once, its figures summed", () => {
  const entry = (key: string, requests: number, at: number) => ({
    ...usageDelta("m1.gguf", requests, at).models[0]!,
    key,
  });
  const state = {
    ...mergeDelta(null, usageDelta("m2.gguf", 1)),
    models: [entry("/srv/a/m1.gguf", 4, NOW - 60_000), entry("/data/m1.gguf", 3, NOW - 1000)],
  };
  assert.deepEqual(
    [...usageByName(state)],
    [["m1.gguf", { requests: 7, hits: 7, misses: 0, loads: 0, last: NOW - 1000 }]],
  );
});

it("GET /v1/fleet takes the API key like the other admin routes, and is 404 on a single node", async (t) => {
  const s = await startTestServer(t, { config: { server: { api_key: "k" } } });
  assert.equal((await s.getJson("/v1/fleet")).status, 401);
  const alone = await s.getJson<{ error: { code: string; message: string } }>("/v1/fleet", {
    headers: { authorization: "Bearer k" },
  });
  assert.equal(alone.status, 404);
  assert.match(alone.body.error.message, /not in a fleet/);
});
