/** Placement is one pure function: a table of fleets and the node each model should load on. */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  candidatesFor,
  type PlacementCandidate,
  placeModel,
  type PlacementRequest,
} from "../../src/fleet/placement.js";
import { nodeRecord, placementNode } from "./fleet-helpers.js";

const GiB = 1 << 30;
const MINUTE = 60_000;
const T = Date.UTC(2026, 0, 1);

const node = placementNode;
const full = (id: string, lruTime: number, overrides: Partial<PlacementCandidate> = {}) =>
  node(id, { modelCount: 2, memoryUsed: 2 * GiB, lruTime, ...overrides });

/** Two full nodes: `a` holds the model's file in its page cache and loses `loss` making room, `b` loses 30. */
const warmBeside = (loss: number) => [
  full("a", T, { warm: true, evictable: [{ bytes: GiB, loss }] }),
  full("b", T, { evictable: [{ bytes: GiB, loss: 30 }] }),
];

const cases: Array<{ name: string; nodes: PlacementCandidate[]; request?: Partial<PlacementRequest>; want: string }> = [
  {
    name: "the receiving node when all are equal (no extra hop)",
    nodes: [node("a"), node("b"), node("c")],
    request: { receivedBy: "b" },
    want: "b",
  },
  { name: "a draining node is never chosen", nodes: [node("a", { draining: true }), node("b")], want: "b" },
  {
    name: "all full: the least expected reload time lost, from the nodes' eviction ladders",
    nodes: [
      full("a", T - 60 * MINUTE, {
        evictable: [
          { bytes: GiB, loss: 900 },
          { bytes: GiB, loss: 2000 },
        ],
      }),
      full("b", T, {
        evictable: [
          { bytes: GiB, loss: 30 },
          { bytes: GiB, loss: 5000 },
        ],
      }),
    ],
    want: "b",
  },
  {
    name: "all full: a ladder that cannot make the room (memory) ranks last",
    nodes: [
      full("a", T, { memoryUsed: 8 * GiB, evictable: [{ bytes: GiB / 4, loss: 1 }] }),
      full("b", T, { evictable: [{ bytes: GiB, loss: 500 }] }),
    ],
    want: "b",
  },
  {
    name: "the model's file still in a node's page cache before an emptier node",
    nodes: [node("a"), node("b", { modelCount: 1, memoryUsed: GiB, warm: true })],
    request: { receivedBy: "a" },
    want: "b",
  },
  {
    name: "all full: a warm file does not outweigh the reload time lost making room",
    nodes: warmBeside(900),
    request: { receivedBy: "a" },
    want: "b",
  },
  {
    name: "all full, the warm saving measured: a warm file outweighs a loss of less over the next 10 minutes",
    // a: 900 ms/h of reloads over 10 min = 150 ms, less the 600 ms a warm 1 GiB load saves; b: 5 ms.
    nodes: warmBeside(900),
    request: { receivedBy: "b", warmSavingMsPerByte: 600 / GiB },
    want: "a",
  },
  {
    name: "all full, the warm saving measured: not against a loss of more over the next 10 minutes",
    nodes: warmBeside(9000),
    request: { receivedBy: "a", warmSavingMsPerByte: 600 / GiB },
    want: "b",
  },
  {
    name: "all full, a warm file measured to save nothing (files never leave the page cache): the least loss",
    nodes: warmBeside(900),
    request: { receivedBy: "a", warmSavingMsPerByte: 0 },
    want: "b",
  },
  {
    name: "all full, equal loss: the warm file",
    nodes: [
      full("a", T - 60 * MINUTE, { evictable: [{ bytes: GiB, loss: 30 }] }),
      full("b", T, { warm: true, evictable: [{ bytes: GiB, loss: 30 }] }),
    ],
    want: "b",
  },
  {
    name: "all full: a node with a spare copy before the one with the oldest model",
    nodes: [full("a", T - 60 * MINUTE), full("b", T, { spareCopies: 1 }), full("c", T)],
    request: { receivedBy: "c" },
    want: "b",
  },
  {
    name: "room (memory) before a full node, even the receiving one",
    nodes: [node("a", { memoryUsed: 7.5 * GiB, modelCount: 1, lruTime: T }), node("b", { modelCount: 1 })],
    request: { receivedBy: "a" },
    want: "b",
  },
  {
    name: "room (count) before a full node",
    nodes: [full("a", T - 60 * MINUTE), node("b", { modelCount: 1, memoryUsed: 6 * GiB })],
    want: "b",
  },
  {
    name: "all full: the node whose least recently used model is oldest",
    nodes: [full("a", T - 5 * MINUTE), full("b", T - 50 * MINUTE), full("c", T - 20 * MINUTE)],
    request: { receivedBy: "a" },
    want: "b",
  },
  {
    name: "all full, given now: LRU times near-equal within a tenth of their idle time (20 min: 30 s is near)",
    nodes: [full("a", T - 20 * MINUTE + 30_000), full("b", T - 20 * MINUTE)],
    request: { receivedBy: "a", now: T },
    want: "a",
  },
  {
    name: "all full, given now: models idle 5 s and 50 s are not near-equal, the older goes",
    nodes: [full("a", T - 5000), full("b", T - 50_000)],
    request: { receivedBy: "a", now: T },
    want: "b",
  },
  {
    name: "all full, given now: a second apart always counts as equal",
    nodes: [full("a", T - 1000), full("b", T - 1500)],
    request: { receivedBy: "a", now: T },
    want: "a",
  },
  {
    name: "all full with LRU times within a minute: the receiving node",
    nodes: [full("a", T - 20 * MINUTE + 30_000), full("b", T - 20 * MINUTE)],
    request: { receivedBy: "a" },
    want: "a",
  },
  {
    name: "fewest models, then most free memory",
    nodes: [node("a", { modelCount: 1 }), node("b", { memoryUsed: 4 * GiB }), node("c", { memoryUsed: 1 * GiB })],
    want: "c",
  },
  {
    name: "free memory within 10 % of the best: the receiving node",
    nodes: [node("a", { memoryUsed: 0.5 * GiB }), node("b")],
    request: { receivedBy: "a" },
    want: "a",
  },
  {
    name: "free memory further from the best: the best",
    nodes: [node("a", { memoryUsed: 3 * GiB }), node("b")],
    request: { receivedBy: "a" },
    want: "b",
  },
  {
    name: "a node too small for the model is never chosen, even with the most room",
    nodes: [node("a", { memoryCapacity: 0.5 * GiB }), full("b", T - 5 * MINUTE)],
    request: { receivedBy: "a" },
    want: "b",
  },
  {
    name: "a node lacking the model's file is never chosen",
    nodes: [node("a", { serves: undefined }), full("b", T)],
    request: { receivedBy: "a" },
    want: "b",
  },
  {
    name: "a node with another file of that name (size) is never chosen",
    nodes: [node("a", { serves: { size: 101, bytes: GiB } }), full("b", T)],
    request: { receivedBy: "a", file: { size: 100 } },
    want: "b",
  },
  {
    name: "sha256 tells files apart when both sides know it",
    nodes: [node("a", { serves: { size: 100, sha256: "x", bytes: GiB } }), full("b", T)],
    request: { receivedBy: "a", file: { size: 100, sha256: "y" } },
    want: "b",
  },
  {
    name: "an excluded node (failed this request or this model) is skipped",
    nodes: [node("a"), node("b", { modelCount: 1 })],
    request: { receivedBy: "a", exclude: new Set(["a"]) },
    want: "b",
  },
  {
    name: "stable ties: the smallest id when the receiving node is not a candidate",
    nodes: [node("c"), node("b"), node("a")],
    request: { receivedBy: "z" },
    want: "a",
  },
];

for (const c of cases) {
  test(`placement: ${c.name}`, () => {
    assert.deepEqual(placeModel(c.nodes, { receivedBy: "nobody", ...c.request }), { node: c.want });
  });
}

test("placement says why no node can load the model", () => {
  assert.deepEqual(placeModel([node("a", { serves: undefined })], { receivedBy: "a" }), {
    node: null,
    reason: "no_file",
  });
  assert.deepEqual(
    placeModel([node("a", { memoryCapacity: GiB / 2 }), node("b", { modelCapacity: 0 })], { receivedBy: "a" }),
    {
      node: null,
      reason: "too_large",
    },
  );
  assert.deepEqual(
    placeModel([node("a", { draining: true }), node("b")], { receivedBy: "a", exclude: new Set(["b"]) }),
    { node: null, reason: "unavailable" },
  );
  assert.deepEqual(placeModel([], { receivedBy: "a" }), { node: null, reason: "no_file" });
});

test("candidates come from the nodes' published records; a node without a record is left out", () => {
  const served = { size: 100, bytes: GiB };
  const candidates = candidatesFor("m.gguf", [
    { id: "a", lease: 0, record: nodeRecord("a", { serves: { "m.gguf": served }, model_count: 1, lru_time: T }) },
    { id: "b", lease: 0, record: nodeRecord("b", { serves: {} }) },
    { id: "c", lease: 0, record: null },
  ]);
  assert.deepEqual(candidates, [
    node("a", { modelCount: 1, lruTime: T, serves: served }),
    node("b", { serves: undefined }),
  ]);
  assert.deepEqual(placeModel(candidates, { receivedBy: "b" }), { node: "a" });
  // What the copies rule publishes: spare copies, the eviction ladder, the files warm in the page cache.
  const ladder = [{ bytes: GiB, loss: 0 }];
  const [published] = candidatesFor("m.gguf", [
    {
      id: "a",
      lease: 0,
      record: nodeRecord("a", { serves: { "m.gguf": served }, spare_copies: 1, evictable: ladder, warm: ["m.gguf"] }),
    },
  ]);
  assert.deepEqual(published, node("a", { serves: served, spareCopies: 1, evictable: ladder, warm: true }));
});

test("a node's model count is the larger of its record's and its copies': a record lags its claims", () => {
  const served = { size: 100, bytes: GiB };
  const nodes = ["a", "b"].map((id) => ({
    id,
    lease: 0,
    record: nodeRecord(id, { serves: { "m.gguf": served }, model_count: id === "a" ? 1 : 0 }),
  }));
  const copies: Record<string, number> = { a: 0, b: 2 };
  const candidates = candidatesFor("m.gguf", nodes, (id) => copies[id] ?? 0);
  assert.deepEqual(
    candidates.map((c) => [c.id, c.modelCount]),
    [
      ["a", 1],
      ["b", 2],
    ],
  );
  assert.deepEqual(placeModel(candidates, { receivedBy: "b" }), { node: "a" }, "b is full by its copies");
});
