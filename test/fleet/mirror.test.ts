/** The mirror alone (no Redis): snapshots, feed entries in and out of order, leases read against a fake clock. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { FleetMirror } from "../../src/fleet/mirror.js";
import type { Copy, FeedEvent, FleetSnapshot } from "../../src/fleet/types.js";
import { nodeRecord } from "./fleet-helpers.js";

const T = 1_000_000;
const ready = (since: number): Copy => ({ state: "ready", since, lease: 0, token: `r${since}` });
const loading = (since: number, lease: number): Copy => ({ state: "loading", since, lease, token: `l${since}` });

function snapshot(overrides: Partial<FleetSnapshot> = {}): FleetSnapshot {
  return {
    now: T,
    seq: 10,
    feedId: "5-0",
    nodes: [
      { id: "a", lease: T + 15_000, record: nodeRecord("a") },
      { id: "b", lease: T + 15_000, record: nodeRecord("b") },
    ],
    copies: [{ model: "m", node: "a", copy: ready(T - 10) }],
    ...overrides,
  };
}

/** A mirror whose local clock reads `local.now`, with Redis time 500 ms ahead of it. */
function mirrorAt() {
  const local = { now: T - 500 };
  const mirror = new FleetMirror(() => local.now);
  mirror.load(snapshot());
  return { mirror, local };
}

const copy = (seq: number, model: string, node: string, c: Copy | null): FeedEvent => ({
  seq,
  id: `${seq}-0`,
  kind: "copy",
  model,
  node,
  copy: c,
});

test("feed entries apply in sequence; an old one is stale, a skipped one is a gap (load whole again)", () => {
  const { mirror } = mirrorAt();
  assert.equal(mirror.apply(copy(10, "m", "b", ready(T))), "stale", "the snapshot holds entry 10 already");
  assert.equal(mirror.apply(copy(11, "m", "b", loading(T, T + 30_000))), "applied");
  assert.equal(mirror.feedId, "11-0");
  assert.deepEqual(
    mirror.holders("m").map((h) => [h.node, h.copy.state]),
    [
      ["a", "ready"],
      ["b", "loading"],
    ],
  );
  assert.equal(mirror.apply(copy(13, "m", "b", null)), "gap");
  assert.equal(mirror.holders("m").length, 2, "nothing applied after a gap");
  assert.equal(mirror.apply(copy(12, "m", "b", null)), "applied");
  assert.deepEqual(
    mirror.holders("m").map((h) => h.node),
    ["a"],
  );
});

test("holders: ready first, then loading, each oldest first; lapsed leases and dead nodes left out", () => {
  const { mirror, local } = mirrorAt();
  mirror.load(
    snapshot({
      copies: [
        { model: "m", node: "c", copy: loading(T - 5, T + 1000) },
        { model: "m", node: "b", copy: ready(T - 1) },
        { model: "m", node: "a", copy: ready(T - 9) },
        { model: "m", node: "d", copy: loading(T - 8, T + 3000) },
      ],
      nodes: ["a", "b", "c", "d"].map((id) => ({ id, lease: T + (id === "b" ? 2000 : 15_000), record: null })),
    }),
  );
  assert.deepEqual(
    mirror.holders("m").map((h) => h.node),
    ["a", "b", "d", "c"],
  );
  local.now += 1000; // Redis now T + 1000: c's load lease ends at T + 1000 exactly: still live
  assert.deepEqual(
    mirror.holders("m").map((h) => h.node),
    ["a", "b", "d", "c"],
  );
  local.now += 1; // T + 1001
  assert.deepEqual(
    mirror.holders("m").map((h) => h.node),
    ["a", "b", "d"],
  );
  local.now += 1000; // T + 2001: b's node lease lapsed
  assert.deepEqual(
    mirror.holders("m").map((h) => h.node),
    ["a", "d"],
  );
  assert.deepEqual(
    mirror.liveNodes().map((n) => n.id),
    ["a", "c", "d"],
  );
});

test("a heartbeat's lease list updates leases and drops nodes no longer listed; 'gone' drops a node's copies", () => {
  const { mirror } = mirrorAt();
  mirror.updateLeases([
    { id: "a", lease: T + 30_000 },
    { id: "c", lease: T + 30_000 },
  ]);
  assert.equal(mirror.node("a")?.lease, T + 30_000);
  assert.equal(mirror.node("b"), undefined);
  assert.equal(mirror.node("c")?.record, null, "a node known only by its lease has no record yet");
  assert.equal(mirror.apply({ seq: 11, id: "11-0", kind: "node", node: "c", record: nodeRecord("c") }), "applied");
  assert.equal(mirror.node("c")?.record?.url, "http://c");
  assert.equal(mirror.apply({ seq: 12, id: "12-0", kind: "gone", node: "a" }), "applied");
  assert.deepEqual(mirror.holders("m"), []);
  assert.deepEqual(mirror.copiesOn("a"), []);
});

test("a mirror that never loaded a snapshot applies nothing", () => {
  const mirror = new FleetMirror(() => T);
  assert.equal(mirror.loaded, false);
  assert.equal(mirror.apply(copy(1, "m", "a", ready(T))), "stale");
  assert.deepEqual(mirror.holders("m"), []);
});

test("version: changes with every snapshot, applied entry and lease list; not with a stale entry, a gap or a read", () => {
  const { mirror } = mirrorAt();
  const seen = [mirror.version];
  const changed = (what: string) => {
    assert.notEqual(mirror.version, seen.at(-1), what);
    seen.push(mirror.version);
  };
  const unchanged = (what: string) => assert.equal(mirror.version, seen.at(-1), what);
  mirror.apply(copy(10, "m", "b", ready(T)));
  unchanged("a stale entry");
  mirror.apply(copy(12, "m", "b", ready(T)));
  unchanged("a gap");
  mirror.holders("m");
  mirror.liveNodes();
  unchanged("reads");
  mirror.apply(copy(11, "m", "b", ready(T)));
  changed("an applied entry");
  mirror.updateLeases([{ id: "a", lease: T + 30_000 }]);
  changed("a lease list");
  mirror.load(snapshot());
  changed("a snapshot, even one with the sequence number seen before");
});
