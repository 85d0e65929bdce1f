/** A node's record from its cache's statistics. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ModelStats } from "../../src/cache/types.js";
import type { EvictionCandidate } from "../../src/cache/policy/eviction.js";
import {
  busyLadder,
  evictionLadder,
  fleetLoadRate,
  fleetWarmSaving,
  LOAD_RATE_WINDOW,
  LoadRates,
  nodeRecordOf,
  publishedUsage,
  RequestRate,
  USAGE_PUBLISHED,
} from "../../src/fleet/record.js";
import { GIB } from "../../src/units.js";

function model(name: string, loaded: boolean, lastUsed: string | null): ModelStats {
  return {
    name,
    key: `/models/${name}`,
    loaded,
    pinned: false,
    requests: 1,
    hits: 1,
    misses: 0,
    loads: 1,
    avg_load_ms: 10,
    p95_load_ms: 10,
    last_used: lastUsed,
    frequency_per_hour: 1,
    priority: 1,
    memory_bytes: 100,
    expires_at: null,
    missing: false,
  };
}

const facts = {
  url: "http://10.0.0.5:8080",
  version: "0.1.0",
  started_at: 5,
  loading: 1,
  load_slots: 2,
  rpm: 30,
  draining: false,
  serves: { "a.gguf": { size: 10, bytes: 100 } },
};

test("the record takes the cache's limits and use, and the oldest last use among loaded models as its LRU time", () => {
  const record = nodeRecordOf(
    {
      memory_bytes: 300,
      memory_limit_bytes: 1000,
      max_cached_models: 4,
      models_loaded: 2,
      models: [
        model("a.gguf", true, "2026-01-01T00:10:00.000Z"),
        model("b.gguf", true, "2026-01-01T00:05:00.000Z"),
        model("c.gguf", false, "2026-01-01T00:01:00.000Z"), // not resident: not the node's LRU entry
        model("d.gguf", true, null),
      ],
    },
    facts,
  );
  assert.deepEqual(record, {
    ...facts,
    memory_capacity: 1000,
    memory_used: 300,
    model_capacity: 4,
    model_count: 2,
    lru_time: Date.UTC(2026, 0, 1, 0, 5),
  });
});

test("nothing resident: no LRU time", () => {
  const stats = { memory_bytes: 0, memory_limit_bytes: 1000, max_cached_models: 4, models_loaded: 0, models: [] };
  assert.equal(nodeRecordOf(stats, facts).lru_time, null);
});

test("requests per minute count the last 60 seconds only", () => {
  const rate = new RequestRate();
  const t0 = 1_000_000_000;
  for (let i = 0; i < 5; i++) rate.count(t0 + i * 100);
  rate.count(t0 + 30_000);
  assert.equal(rate.perMinute(t0 + 30_000), 6);
  assert.equal(rate.perMinute(t0 + 59_999), 6, "the first second still counts");
  assert.equal(rate.perMinute(t0 + 60_000), 1, "a minute later the first five are gone");
  assert.equal(rate.perMinute(t0 + 10 * 60_000), 0, "after a silence, nothing");
  rate.count(t0 + 10 * 60_000);
  assert.equal(rate.perMinute(t0 + 10 * 60_000 + 500), 1);
});

test("a node's load rate: the median of its recent loads per GiB, over the last LOAD_RATE_WINDOW", () => {
  const rates = new LoadRates();
  assert.equal(rates.published(), undefined, "nothing loaded yet");
  rates.add(20, GIB);
  rates.add(600, 2 * GIB);
  rates.add(10, GIB / 2);
  rates.add(50, 0);
  assert.deepEqual(rates.published(), { ms_per_gib: 20, loads: 3 }, "a load of unknown size is left out");
  for (let i = 0; i < LOAD_RATE_WINDOW; i++) rates.add(5, GIB);
  assert.deepEqual(rates.published(), { ms_per_gib: 5, loads: LOAD_RATE_WINDOW });
});

test("a node's load rate apart for warm and cold reloads; first loads in neither", () => {
  const rates = new LoadRates();
  rates.add(2500, GIB);
  assert.deepEqual(rates.published(), { ms_per_gib: 2500, loads: 1 }, "a first load only");
  rates.add(900, GIB, "cold");
  rates.add(1100, GIB, "cold");
  assert.deepEqual(
    rates.published(),
    { ms_per_gib: 1100, loads: 3, cold: { ms_per_gib: 900, loads: 2 } },
    "no warm load yet",
  );
  rates.add(300, GIB, "warm");
  assert.deepEqual(rates.published(), {
    ms_per_gib: 900,
    loads: 4,
    warm: { ms_per_gib: 300, loads: 1 },
    cold: { ms_per_gib: 900, loads: 2 },
  });
});

test("what a warm file saves: the nodes' cold median less their warm one, never below 0", () => {
  const rate = (cold: number, warm: number, loads = 4) => ({
    ms_per_gib: cold,
    loads,
    cold: { ms_per_gib: cold, loads },
    warm: { ms_per_gib: warm, loads },
  });
  const table: Array<[string, Parameters<typeof fleetWarmSaving>[0], number | null]> = [
    ["no node measured both", [{ ms_per_gib: 20, loads: 4, cold: { ms_per_gib: 20, loads: 2 } }, undefined], null],
    [
      "warm on one node, cold on another",
      [
        { ms_per_gib: 900, loads: 2, cold: { ms_per_gib: 900, loads: 2 } },
        { ms_per_gib: 300, loads: 2, warm: { ms_per_gib: 300, loads: 2 } },
      ],
      600 / GIB,
    ],
    ["one node", [rate(900, 300)], 600 / GIB],
    ["files that never leave the page cache save nothing", [rate(20, 22)], 0],
    ["weighted by the loads", [rate(900, 300, 60), rate(100, 90, 2)], 600 / GIB],
  ];
  for (const [name, rates, want] of table) assert.equal(fleetWarmSaving(rates), want, name);
});

test("the fleet's load rate: the nodes' rates weighted by their loads", () => {
  const table: Array<[string, Parameters<typeof fleetLoadRate>[0], number | null]> = [
    ["no node loaded anything", [undefined, undefined], null],
    ["one node", [{ ms_per_gib: 20, loads: 4 }], 20 / GIB],
    [
      "two nodes whose few loads were slow do not outweigh the one that loaded much",
      [
        { ms_per_gib: 18, loads: 64 },
        { ms_per_gib: 370, loads: 2 },
        { ms_per_gib: 400, loads: 2 },
      ],
      18 / GIB,
    ],
  ];
  for (const [name, rates, want] of table) assert.equal(fleetLoadRate(rates), want, name);
});

test("a node publishes its most used models' usage, rounded, none unused", () => {
  const used = (name: string, frequency_per_hour: number) => ({ name, frequency_per_hour });
  assert.deepEqual(publishedUsage([used("a", 1.23456), used("b", 0), used("c", 0.0288539)]), {
    a: 1.23,
    c: 0.0289,
  });
  const many = Array.from({ length: USAGE_PUBLISHED + 5 }, (_, i) => used(`m${i}`, i + 1));
  const published = publishedUsage(many);
  assert.equal(Object.keys(published).length, USAGE_PUBLISHED);
  assert.ok(!("m0" in published) && `m${USAGE_PUBLISHED + 4}` in published, "the least used are left out");
});

test("a busy model is left out of the ladder; those it would have put before an idle one are named", () => {
  // Same size and load time: reload-cost ranks by uses, fewest first.
  const candidate = (key: string, frequency: number): EvictionCandidate => ({
    key,
    lastUsedAt: 0,
    memoryBytes: GIB,
    loadMs: 20,
    frequency,
    inflation: 0,
  });
  const models = [candidate("hot", 90), candidate("warm", 20), candidate("cold", 5)];
  const limits = { maxModels: 3, maxMemoryBytes: 0 };
  const ladder = (busy: string[]) => busyLadder(models, "reload-cost", limits, new Set(busy));
  const all = evictionLadder(models, "reload-cost", limits);
  assert.deepEqual(
    all.map((s) => s.loss),
    [100, 400, 1800],
  );
  const cases: Array<[busy: string[], losses: number[], leftOut: string[]]> = [
    [[], [100, 400, 1800], []],
    // The model just loaded, serving its request: room here costs 400 now, 100 once it ends.
    [["cold"], [400, 1800], ["cold"]],
    [["cold", "warm"], [1800], ["cold", "warm"]],
    // A busy model that would go last anyway changes nothing placement reads.
    [["hot"], [100, 400], []],
    [["hot", "warm"], [100], []],
    [["cold", "hot"], [400], ["cold"]],
    // Nothing idle: nothing to name (and nothing to place by).
    [["cold", "warm", "hot"], [], []],
  ];
  for (const [busy, losses, leftOut] of cases) {
    const result = ladder(busy);
    assert.deepEqual(
      result.ladder.map((s) => s.loss),
      losses,
      `busy ${busy.join(",")}`,
    );
    assert.deepEqual(result.leftOut, leftOut, `busy ${busy.join(",")}`);
  }
});
