/**
 * The fleet's advice (runtime/fleet-advice.ts) on a hand-made merged log, replayed through the fleet simulator: which
 * sizes reach the target, by hand; the ranges it tries; the target answered again from the same rows.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { CacheState, PersistedModel } from "../../src/cache/persistence/types.js";
import { persistedLogOf } from "../../src/cache/persistence/merge.js";
import { emptyCounters } from "../../src/cache/state-view.js";
import { cacheSchema } from "../../src/config/schema.js";
import { NoRequestLog } from "../../src/errors/index.js";
import { adviseOn } from "../../src/runtime/advice.js";
import {
  fleetAdvice,
  type FleetAdviceInput,
  MAX_REPLAYED_NODES,
  memoryPerNodeRange,
  nodeRange,
  retarget,
} from "../../src/runtime/fleet-advice.js";
import { GIB } from "../../src/units.js";

const T0 = Date.UTC(2026, 0, 1);
const KEYS = ["a", "b", "c", "d"];

function model(key: string): PersistedModel {
  return {
    key,
    name: `${key}.gguf`,
    format: "gguf",
    fingerprint: { size: GIB, mtimeMs: T0 },
    metadata: { memory_bytes: GIB },
    usage: {
      requests: 5,
      hits: 0,
      misses: 5,
      loads: 1,
      last_used_at: null,
      frequency: null,
      load_ms_total: 2000,
      load_ms_samples: [],
    },
    priority: 0,
    pinned: false,
  };
}

/** Four models of 1 GiB that load in 2 s, asked in turn a b c d a b c d … one a minute: 20 requests. */
const STATE: CacheState = {
  saved_at: T0,
  counters: emptyCounters(),
  models: KEYS.map(model),
  request_log: persistedLogOf(
    Array.from({ length: 20 }, (_, i) => ({ key: KEYS[i % 4]!, at: T0 + i * 60_000, outcome: "miss", loadMs: 2000 })),
  ),
};

function input(cache: Record<string, unknown>, targetHitRate = 0.8): FleetAdviceInput {
  return {
    state: STATE,
    nodes: 2,
    config: cacheSchema.parse({ eviction_policy: "lru", ...cache }),
    systemMemoryBytes: 64 * GIB,
    scaleUpRpm: 30,
    heartbeatMs: 5000,
    targetHitRate,
  };
}

const row = (advice: ReturnType<typeof fleetAdvice>, nodes: number, mib: number) =>
  advice.rows.find((r) => r.nodes === nodes && r.max_memory_mb === mib);

describe("advise for a fleet", () => {
  it("one model a node: the fewest nodes that hold all four reach 80 %; more memory cannot help", () => {
    // By hand: with one slot a node, n nodes hold n of the four models; the cycle of four always asks for the one
    // evicted longest ago under lru, so fewer than four nodes hit never; four hold all: 4 first misses, 16 hits.
    const advice = fleetAdvice(input({ max_cached_models: 1, max_memory_mb: 8192 }));
    assert.equal(advice.current.nodes, 2);
    assert.equal(advice.current.varies, "current");
    for (const n of [1, 2, 3]) assert.equal(row(advice, n, 8192)?.hits, 0, `${n} node(s)`);
    assert.deepEqual([row(advice, 4, 8192)?.hits, row(advice, 4, 8192)?.loads], [16, 4]);
    assert.equal(advice.nodes_needed, 4);
    assert.equal(advice.best_hit_rate, 0.8);
    // The slots bind, not the memory: no memory per node at 2 nodes reaches it.
    assert.ok(advice.rows.some((r) => r.varies === "max_memory_mb"));
    assert.equal(advice.max_memory_mb_needed, null);
    assert.ok(advice.notes.some((n) => /max_cached_models \(1\) binds first/.test(n)));
    assert.equal(advice.log.requests, 20);
    assert.match(advice.log.source, /merged/);
  });

  it("memory binds: two nodes need 2 GiB each (two models each) for 80 %", () => {
    const advice = fleetAdvice(input({ max_cached_models: 8, max_memory_mb: 1024 }));
    assert.equal(advice.current.hit_rate, 0);
    assert.equal(row(advice, 2, 1536)?.hits, 0, "1.5 GiB still holds one model a node");
    assert.equal(row(advice, 2, 2048)?.hits, 16);
    assert.equal(advice.max_memory_mb_needed, 2048);
    assert.equal(advice.nodes_needed, 4);
    assert.ok(!advice.notes.some((n) => /binds first/.test(n)));
  });

  it("another target from the same rows; one beyond every size is answered with null", () => {
    const advice = fleetAdvice(input({ max_cached_models: 8, max_memory_mb: 1024 }));
    const beyond = retarget(advice, 0.95);
    assert.deepEqual([beyond.nodes_needed, beyond.max_memory_mb_needed, beyond.target_hit_rate], [null, null, 0.95]);
    assert.deepEqual(beyond.rows, advice.rows);
    const any = retarget(advice, 0.01);
    assert.equal(any.nodes_needed, 4, "no fewer nodes hit at all");
  });

  it("a fleet with no merged log is refused with NoRequestLog", () => {
    assert.throws(() => fleetAdvice({ ...input({}), state: null }), NoRequestLog);
  });

  it("a fleet node whose own log is empty still answers the fleet's part; with neither log, NoRequestLog", async () => {
    const fleet = input({ max_cached_models: 1, max_memory_mb: 8192 });
    const config = cacheSchema.parse({ eviction_policy: "lru", max_cached_models: 1, max_memory_mb: 8192 });
    const report = await adviseOn({ state: null, config, fleet });
    assert.deepEqual([report.rows, report.recommendation, report.log.requests], [[], null, 0]);
    assert.match(report.notes[0] ?? "", /^this node: /);
    assert.equal(report.current.max_cached_models, 1);
    assert.equal(report.fleet?.nodes_needed, 4, "the same answer as the fleet's replay alone");
    await assert.rejects(adviseOn({ state: null, config, fleet: { ...fleet, state: null } }), NoRequestLog);
  });

  it("node counts: every one up to 8, then a spread, the current among them, at most 64", () => {
    assert.deepEqual(nodeRange(2, 4), [1, 2, 3, 4]);
    assert.deepEqual(nodeRange(5, 1), [1, 2, 3, 4, 5]);
    assert.deepEqual(nodeRange(3, 20), [1, 2, 3, 4, 5, 6, 7, 8, 12, 18, 20]);
    assert.equal(Math.max(...nodeRange(2, 1000)), MAX_REPLAYED_NODES);
  });

  it("memory per node: a half to four times the current and room for all, never below the largest model", () => {
    assert.deepEqual(memoryPerNodeRange(1024, 1024, 4096, 2), [1536, 2048, 3072, 4096]);
    assert.deepEqual(memoryPerNodeRange(1024, 512, 1000, 4), [512, 768, 1536, 2048, 3072, 4096]);
    assert.deepEqual(memoryPerNodeRange(0, 512, 1000, 4), []);
  });
});
