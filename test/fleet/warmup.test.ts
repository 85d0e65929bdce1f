/**
 * The fleet's warm-up plan is one pure function: a table of fleets, their usage, and what loads where; and when the
 * leader plans again (`replanReason`) is another: a table of stored plans, their progress and the live nodes.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { WarmupHistory } from "../../src/cache/policy/warmup.js";
import type { FleetNodeState, NodeRecord } from "../../src/fleet/types.js";
import {
  type FleetPlan,
  type FleetPlanItem,
  type FleetPlanItemState,
  planFleetWarmup,
  replanReason,
} from "../../src/fleet/warmup.js";
import { nodeRecord } from "./fleet-helpers.js";

const GiB = 1 << 30;
const HOUR = 3600_000;
const NOW = Date.UTC(2026, 0, 2);

/** A live node with 8 GiB and 2 slots, serving every model of `models` (1 GiB each). */
function node(id: string, models: string[], overrides: Partial<NodeRecord> = {}): FleetNodeState {
  const serves = Object.fromEntries(models.map((m) => [m, { size: 100, bytes: GiB }]));
  return { id, lease: NOW + 10_000, record: nodeRecord(id, { serves, ...overrides }) };
}

/** A model used `frequency` times, last `hoursAgo` hours ago, loading in `loadMs`. */
function used(name: string, frequency: number, hoursAgo = 1, loadMs: number | null = 1000): WarmupHistory {
  return { key: name, name, lastUsedAt: NOW - hoursAgo * HOUR, frequency, avgLoadMs: loadMs, memoryBytes: null };
}

const SIX = ["m1", "m2", "m3", "m4", "m5", "m6"];

const cases: Array<{
  name: string;
  nodes: FleetNodeState[];
  history: WarmupHistory[];
  held?: string[];
  pending?: FleetPlanItem[];
  want: Array<[string, string]>;
  skipped?: Array<[string, string]>;
}> = [
  {
    name: "3 empty nodes × 2 slots: the three most used models, one per node (half the free slots)",
    nodes: ["a", "b", "c"].map((id) => node(id, SIX)),
    history: SIX.map((m, i) => used(m, 60 - i * 10)),
    want: [
      ["m1", "a"],
      ["m2", "b"],
      ["m3", "c"],
    ],
    skipped: [
      ["m4", "no room within the warm-up budget"],
      ["m5", "no room within the warm-up budget"],
      ["m6", "no room within the warm-up budget"],
    ],
  },
  {
    name: "a model held anywhere is never planned again; the rest go where there is room",
    nodes: [node("a", SIX, { model_count: 2, memory_used: 2 * GiB }), node("b", SIX)],
    history: [used("m1", 50), used("m2", 40), used("m3", 30)],
    held: ["m1"],
    want: [["m2", "b"]],
    skipped: [["m3", "no room within the warm-up budget"]],
  },
  {
    name: "only models used within the restore window (24 h here)",
    nodes: [node("a", SIX, { model_capacity: 6 })],
    history: [used("m1", 50, 30), used("m2", 5, 2)],
    want: [["m2", "a"]],
    skipped: [["m1", "not used within the restore window"]],
  },
  {
    name: "a model goes only where its file is; a draining node takes nothing",
    nodes: [node("a", ["m1"], { draining: true }), node("b", ["m2"]), node("c", ["m1"])],
    history: [used("m1", 50), used("m2", 40), used("m3", 30)],
    want: [
      ["m1", "c"],
      ["m2", "b"],
    ],
    skipped: [["m3", "no live node has its file"]],
  },
  {
    name: "about half the free memory at most: 3 GiB free takes one 1 GiB model, not two",
    nodes: [node("a", SIX, { model_capacity: 10, memory_capacity: 4 * GiB, memory_used: GiB })],
    history: [used("m1", 50), used("m2", 40)],
    want: [["m1", "a"]],
    skipped: [["m2", "no room within the warm-up budget"]],
  },
  {
    name: "value is frequency × load time: a rarer model that loads slowly comes first",
    nodes: [node("a", SIX), node("b", SIX, { model_count: 2 })],
    history: [used("m1", 10, 1, 500), used("m2", 4, 1, 5000)],
    want: [["m2", "a"]],
    skipped: [["m1", "no room within the warm-up budget"]],
  },
  {
    name: "an earlier plan's items still to load are held and take their node's room: the new node gets the next",
    nodes: [node("a", SIX), node("b", SIX), node("c", SIX)],
    history: [used("m1", 50), used("m2", 40), used("m3", 30)],
    pending: [
      { model: "m1", node: "a", bytes: GiB },
      { model: "m2", node: "b", bytes: GiB },
    ],
    want: [["m3", "c"]],
  },
  {
    name: "an empty fleet usage plans nothing",
    nodes: [node("a", SIX)],
    history: [],
    want: [],
  },
];

for (const c of cases) {
  test(c.name, () => {
    const before = JSON.stringify(c.nodes);
    const plan = planFleetWarmup({
      now: NOW,
      restoreWindowMs: 24 * HOUR,
      history: c.history,
      nodes: c.nodes,
      held: new Set(c.held ?? []),
      ...(c.pending ? { pending: c.pending } : {}),
    });
    assert.deepEqual(
      plan.items.map((i) => [i.model, i.node]),
      c.want,
    );
    if (c.skipped) assert.deepEqual(plan.skipped.map((s) => [s.model, s.reason]).sort(), c.skipped);
    // No model twice.
    assert.equal(new Set(plan.items.map((i) => i.model)).size, plan.items.length);
    assert.equal(JSON.stringify(c.nodes), before, "the caller's nodes are left as they were");
  });
}

/** A plan over `nodes` (id → started_at) with `items` (`model@node`). */
function stored(nodes: Record<string, number>, items: string[]): FleetPlan {
  return {
    id: "1:1",
    epoch: 1,
    leader: "a",
    created_at: 0,
    nodes,
    items: items.map((item) => {
      const [model, node] = item.split("@") as [string, string];
      return { model, node, bytes: GiB };
    }),
    skipped: [],
  };
}

const ABC = { a: 1, b: 1, c: 1 };
const replans: Array<{
  name: string;
  plan: FleetPlan | null;
  progress?: Record<string, FleetPlanItemState>;
  live: Record<string, number>;
  /** The reason's kind and the nodes joined or the items lost; null: the plan stands. */
  want: ["joined" | "lost", string[]] | null;
}> = [
  { name: "no plan yet: plan over the live nodes", plan: null, live: ABC, want: ["joined", ["a", "b", "c"]] },
  { name: "no plan and no live node: nothing", plan: null, live: {}, want: null },
  {
    name: "the plan names every live node: it stands",
    plan: stored(ABC, ["m1@a", "m2@b"]),
    live: ABC,
    want: null,
  },
  {
    name: "a node joined",
    plan: stored({ a: 1, b: 1 }, ["m1@a"]),
    live: ABC,
    want: ["joined", ["c"]],
  },
  {
    name: "a node restarted (a new started_at) is a join",
    plan: stored(ABC, ["m1@a"]),
    live: { a: 2, b: 1, c: 1 },
    want: ["joined", ["a"]],
  },
  {
    name: "the leader died before loading its part: the part is lost, plan again over the nodes left",
    plan: stored(ABC, ["m1@a", "m2@b", "m3@c"]),
    progress: { "m2@b": "loaded", "m3@c": "loading" },
    live: { b: 1, c: 1 },
    want: ["lost", ["m1@a"]],
  },
  {
    name: "a node died while loading its item (progress `loading`): lost",
    plan: stored(ABC, ["m1@a", "m2@b"]),
    progress: { "m1@a": "loading" },
    live: { b: 1, c: 1 },
    want: ["lost", ["m1@a"]],
  },
  {
    name: "a gone node whose part settled (loaded or failed): the plan stands",
    plan: stored(ABC, ["m1@a", "m4@a", "m2@b"]),
    progress: { "m1@a": "loaded", "m4@a": "failed" },
    live: { b: 1, c: 1 },
    want: null,
  },
  {
    name: "a gone node with no part: the plan stands",
    plan: stored(ABC, ["m2@b"]),
    live: { b: 1, c: 1 },
    want: null,
  },
];

for (const c of replans) {
  test(`replanReason: ${c.name}`, () => {
    const reason = replanReason(c.plan, c.progress ?? {}, c.live);
    const got =
      reason === null
        ? null
        : reason.kind === "joined"
          ? ["joined", reason.nodes]
          : ["lost", reason.items.map((i) => `${i.model}@${i.node}`)];
    assert.deepEqual(got, c.want);
  });
}
