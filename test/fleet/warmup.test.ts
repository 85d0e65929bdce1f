/**
 * The fleet's warm-up plan is one pure function: a table of fleets, their usage, and what loads where (the share back
 * to a node that joined among them); and when the leader plans again (`replanReason`) is another: a table of stored
 * plans, their progress and the live nodes.
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

/**
 * A node holding `held` (1 GiB each) of `capacity` slots, each model asked `rpm[i]` times a minute: its record and its
 * ready copies.
 */
function holding(id: string, held: string[], capacity: number, rpm: number[] = []): FleetNodeState {
  const traffic = Object.fromEntries(held.map((m, i) => [m, { rpm: rpm[i] ?? 0, queue: 0, since: NOW, last: NOW }]));
  return node(id, SIX, {
    model_capacity: capacity,
    model_count: held.length,
    memory_used: held.length * GiB,
    rpm: rpm.reduce((a, b) => a + b, 0),
    traffic,
  });
}

/** The ready copies of `nodes` as `holding` made them. */
const copiesOf = (nodes: FleetNodeState[]) =>
  nodes.flatMap((n) => Object.keys(n.record!.traffic ?? {}).map((model) => ({ model, node: n.id, ready: true })));

/** The six models, m4 the most valuable, then m2, m5, m6, m3, m1. */
const VALUED = [used("m1", 10), used("m2", 50), used("m3", 20), used("m4", 60), used("m5", 40), used("m6", 30)];

/**
 * r3 back, empty, among r1 (m1–m3) and r2 (m4–m6), all of `slots` slots, each model of r1 and r2 asked `rpm1[i]` and
 * `rpm2[i]` times a minute: the fleet, its usage and the join.
 */
const backAmongTwo = (slots: number, rpm1: number[] = [], rpm2: number[] = []) => ({
  nodes: [
    holding("r1", ["m1", "m2", "m3"], slots, rpm1),
    holding("r2", ["m4", "m5", "m6"], slots, rpm2),
    node("r3", SIX, { model_capacity: slots }),
  ],
  history: VALUED,
  held: SIX,
  joined: ["r3"],
});

const cases: Array<{
  name: string;
  nodes: FleetNodeState[];
  history: WarmupHistory[];
  held?: string[];
  pending?: FleetPlanItem[];
  /** The nodes that joined, with the others' ready copies (`copiesOf` the nodes): the share back. */
  joined?: string[];
  maxCopies?: Record<string, number>;
  /** Loading copies beside the ready ones: `[model, node]`. */
  loading?: Array<[string, string]>;
  /** `[model, node]`, and a move's `from`. */
  want: Array<[string, string] | [string, string, string]>;
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
    name: "share back: a returning node among two full nodes gets a third of the models, the most loaded node's most valuable first",
    // r1 serves the most requests: its most valuable model (m2) goes first, though r2's m4 is worth more; then r1 holds
    // its share (2) and r2, still full, gives m4. r3 then holds its share, 6 models ÷ 3 nodes.
    ...backAmongTwo(3, [30, 20, 10], [5, 5, 5]),
    want: [
      ["m2", "r3", "r1"],
      ["m4", "r3", "r2"],
    ],
  },
  {
    name: "share back: a joiner in a fleet with free room everywhere and no requests gets no moves",
    ...backAmongTwo(8),
    want: [],
  },
  {
    name: "share back: with room everywhere, the node serving more than its share of the requests gives one model",
    ...backAmongTwo(8, [60, 30, 30]),
    want: [["m2", "r3", "r1"]],
  },
  {
    name: "share back: no model gets more copies than its max_copies (m2 and m4 at 1: the next most valuable go)",
    ...backAmongTwo(3, [30, 20, 10]),
    maxCopies: { m2: 1, m4: 1 },
    want: [
      ["m3", "r3", "r1"],
      ["m5", "r3", "r2"],
    ],
  },
  {
    name: "share back: a loading copy counts toward max_copies (m2 at 2, one loading on r2 beside r1's)",
    ...backAmongTwo(3, [30, 20, 10]),
    maxCopies: { m2: 2, m4: 1 },
    loading: [["m2", "r2"]],
    want: [
      ["m3", "r3", "r1"],
      ["m5", "r3", "r2"],
    ],
  },
  {
    name: "share back: an earlier plan's move still to load has left its node's share, and is not moved twice",
    // r4 joined before and takes m2 from r1 (pending); now r3 joins: r1 (as loaded as r2, first by id) gives its next,
    // m3; then r1 holds its share and r2, full, gives m4.
    ...backAmongTwo(3),
    nodes: [...backAmongTwo(3).nodes, node("r4", SIX, { model_capacity: 3 })],
    pending: [{ model: "m2", node: "r4", bytes: GiB, from: "r1" }],
    want: [
      ["m3", "r3", "r1"],
      ["m4", "r3", "r2"],
    ],
  },
  {
    name: "share back: models nobody holds come first, and the moves fill the joiner up to its share within its budget",
    // 4 slots: a budget of 2. m6 is nobody's; 5 models ÷ 3 nodes ≈ 2: one move after it, from r1 (as loaded as r2:
    // ties go by id).
    nodes: [holding("r1", ["m1", "m2"], 2), holding("r2", ["m4", "m5"], 2), node("r3", SIX, { model_capacity: 4 })],
    history: VALUED.filter((h) => h.name !== "m3"),
    held: ["m1", "m2", "m4", "m5"],
    joined: ["r3"],
    want: [
      ["m6", "r3"],
      ["m2", "r3", "r1"],
    ],
  },
  {
    name: "share back: a fleet start (every node joined) moves nothing",
    nodes: [holding("r1", ["m1", "m2", "m3"], 3, [30, 20, 10]), node("r2", SIX, { model_capacity: 3 })],
    history: VALUED,
    held: ["m1", "m2", "m3"],
    joined: ["r1", "r2"],
    want: [
      ["m4", "r2"],
      ["m5", "r2"],
    ],
  },
  {
    name: "share back: a joiner without the model's file takes no move of it",
    nodes: [
      holding("r1", ["m1", "m2", "m3"], 3, [30, 20, 10]),
      node("r2", ["m1"], { model_capacity: 3 }),
      node("r3", [], { model_capacity: 3 }),
    ],
    history: VALUED,
    held: ["m1", "m2", "m3"],
    joined: ["r3"],
    want: [],
  },
  {
    name: "an empty fleet usage plans nothing",
    nodes: [node("a", SIX)],
    history: [],
    want: [],
  },
];

const loadingOf = (c: { loading?: Array<[string, string]> }) =>
  (c.loading ?? []).map(([model, node]) => ({ model, node, ready: false }));

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
      ...(c.joined ? { joined: c.joined, copies: [...copiesOf(c.nodes), ...loadingOf(c)] } : {}),
      ...(c.maxCopies ? { maxCopies: (model: string) => c.maxCopies![model] ?? 4 } : {}),
    });
    assert.deepEqual(
      plan.items.map((i) => (i.from === undefined ? [i.model, i.node] : [i.model, i.node, i.from])),
      c.want,
    );
    // A move comes from a node holding the model, and stays within max_copies.
    for (const move of plan.items.filter((i) => i.from !== undefined)) {
      const copies = [...copiesOf(c.nodes), ...loadingOf(c)].filter((h) => h.model === move.model);
      assert.ok(copies.some((h) => h.node === move.from));
      assert.ok(copies.length + 1 <= (c.maxCopies?.[move.model] ?? 4), `${move.model}: within max_copies`);
    }
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
