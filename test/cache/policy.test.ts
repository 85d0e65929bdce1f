/** Table tests of the pure policy functions: eviction choice, decayed frequency, warm-up planning. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  addUse,
  cacheShare,
  chooseVictims,
  countOfRate,
  decayedValue,
  type EvictionCandidate,
  evictionOrder,
  fleetFrequency,
  fleetLoadTimes,
  gdsfPriority,
  leastLossCover,
  nextInflation,
  perHour,
  planWarmup,
  reloadCostValue,
  settledLoadTimes,
  takeVictims,
  unmeasured,
  weightedMedian,
  type WarmupCandidate,
  type WarmupHistory,
  type WarmupInputs,
  type WarmupLimits,
  warmupLimits,
  warmupPlan,
} from "../../src/cache/policy/index.js";
import type { WarmupStrategy } from "../../src/cache/types.js";
import { MIB } from "../../src/units.js";

const HOUR = 3600_000;

function candidate(key: string, c: Partial<EvictionCandidate> = {}): EvictionCandidate {
  return { key, lastUsedAt: 0, memoryBytes: 100 * MIB, loadMs: 1000, frequency: 1, inflation: 0, ...c };
}

describe("decayed frequency", () => {
  const table: Array<[string, Array<number>, number, number]> = [
    // [case, use times (h), at (h), expected decayed count] with a 1 h half-life
    ["no use", [], 0, 0],
    ["one use, now", [0], 0, 1],
    ["one use, one half-life ago", [0], 1, 0.5],
    ["two uses an hour apart, read at the second", [0, 1], 1, 1.5],
    ["two uses, read two half-lives later", [0, 0], 2, 0.5],
  ];
  for (const [name, uses, at, expected] of table) {
    it(name, () => {
      let count = null;
      for (const u of uses) count = addUse(count, u * HOUR, 1);
      assert.ok(Math.abs(decayedValue(count, at * HOUR, 1) - expected) < 1e-12);
    });
  }
  it("a steady rate r per hour reads back as about r per hour", () => {
    let count = null;
    for (let minute = 0; minute < 48 * 60; minute += 10) count = addUse(count, minute * 60_000, 6);
    assert.ok(Math.abs(perHour(count, 48 * HOUR, 6) - 6) < 0.3);
  });
  it("a clock that steps back never inflates the count", () => {
    const count = addUse(null, 10 * HOUR, 1);
    assert.equal(decayedValue(count, 5 * HOUR, 1), 1);
  });
});

describe("eviction order", () => {
  const table: Array<[string, EvictionCandidate[], string[], string[]]> = [
    // [case, candidates, lru order, cost-aware order]
    [
      "recency only differs",
      [candidate("old", { lastUsedAt: 1 }), candidate("new", { lastUsedAt: 2 })],
      ["old", "new"],
      ["old", "new"],
    ],
    [
      "slow-to-load model is kept by cost-aware",
      [candidate("slow", { lastUsedAt: 1, loadMs: 30_000 }), candidate("fast", { lastUsedAt: 2, loadMs: 100 })],
      ["slow", "fast"],
      ["fast", "slow"],
    ],
    [
      "large model goes first under cost-aware",
      [
        candidate("big", { lastUsedAt: 2, memoryBytes: 4000 * MIB }),
        candidate("small", { lastUsedAt: 1, memoryBytes: 50 * MIB }),
      ],
      ["small", "big"],
      ["big", "small"],
    ],
    [
      "frequently used model is kept by cost-aware",
      [candidate("often", { lastUsedAt: 1, frequency: 50 }), candidate("once", { lastUsedAt: 2, frequency: 1 })],
      ["often", "once"],
      ["once", "often"],
    ],
    [
      "inflation ages out a once-valuable model",
      [
        candidate("stale", { lastUsedAt: 1, frequency: 5, inflation: 0 }),
        candidate("fresh", { lastUsedAt: 2, frequency: 1, inflation: 1000 }),
      ],
      ["stale", "fresh"],
      ["stale", "fresh"],
    ],
    [
      "never used goes first under lru",
      [candidate("used", { lastUsedAt: 5 }), candidate("never", { lastUsedAt: null })],
      ["never", "used"],
      ["never", "used"],
    ],
  ];
  for (const [name, candidates, lru, cost] of table) {
    it(name, () => {
      assert.deepEqual(
        evictionOrder(candidates, "lru").map((c) => c.key),
        lru,
      );
      assert.deepEqual(
        evictionOrder(candidates, "cost-aware").map((c) => c.key),
        cost,
      );
    });
  }
});

describe("reload-cost order", () => {
  // A 1000 MiB memory limit and 4 places: a model of 250 MiB or less takes one place's share (1/4), a bigger one its bytes' share.
  const limits = { maxModels: 4, maxMemoryBytes: 1000 * MIB };
  const table: Array<[string, EvictionCandidate[], string[]]> = [
    // [case, candidates, reload-cost order]
    [
      "rarely used goes first",
      [candidate("often", { frequency: 5 }), candidate("rare", { frequency: 1 })],
      ["rare", "often"],
    ],
    [
      "quick to reload goes first",
      [candidate("slow", { loadMs: 9000 }), candidate("quick", { loadMs: 300 })],
      ["quick", "slow"],
    ],
    [
      "under the memory limit, bytes count: 500 MiB at twice the use is worth the same as 250 MiB; ties go by last use",
      [
        candidate("big", { memoryBytes: 500 * MIB, frequency: 2, lastUsedAt: 2 }),
        candidate("half", { memoryBytes: 250 * MIB, frequency: 1, lastUsedAt: 1 }),
      ],
      ["half", "big"],
    ],
    [
      "below a place's share, size no longer helps: a tiny model pays a whole place",
      [
        candidate("tiny", { memoryBytes: 10 * MIB, loadMs: 100 }),
        candidate("place", { memoryBytes: 250 * MIB, loadMs: 2000 }),
      ],
      ["tiny", "place"],
    ],
    [
      "GDSF's inflation plays no part",
      [candidate("inflated", { inflation: 1e9, frequency: 1 }), candidate("used", { inflation: 0, frequency: 2 })],
      ["inflated", "used"],
    ],
    [
      "an unmeasured model counts the default load time",
      [candidate("unknown", { loadMs: null }), candidate("measured", { loadMs: 1001 })],
      ["unknown", "measured"],
    ],
  ];
  for (const [name, candidates, expected] of table) {
    it(name, () => {
      assert.deepEqual(
        evictionOrder(candidates, "reload-cost", limits).map((c) => c.key),
        expected,
      );
    });
  }
  it("a model's share is the larger of its bytes' and one place's share of the limits", () => {
    assert.equal(cacheShare(100 * MIB, limits), 0.25);
    assert.equal(cacheShare(500 * MIB, limits), 0.5);
    assert.equal(cacheShare(500 * MIB, { maxModels: 4, maxMemoryBytes: 0 }), 0.25);
    assert.equal(reloadCostValue({ frequency: 2, loadMs: 3000, memoryBytes: 500 * MIB }, limits), 12_000);
  });
  it("it evicts the set that loses the least expected reload time, not the first ones in value order", () => {
    const models = [
      candidate("a", { memoryBytes: 100 * MIB, frequency: 1, loadMs: 200 }), // value 800, loss 200
      candidate("b", { memoryBytes: 500 * MIB, frequency: 1, loadMs: 1000 }), // value 2000, loss 1000
      candidate("c", { memoryBytes: 400 * MIB, frequency: 2, loadMs: 800 }), // value 4000, loss 1600
    ];
    const table: Array<[string, { count: number; bytes: number }, string[], string[]]> = [
      // [case, shortfall, reload-cost victims, what value order alone would take]
      ["450 MiB: b alone (loss 1000) rather than a then b (1200)", { count: 0, bytes: 450 * MIB }, ["b"], ["a", "b"]],
      ["two places: a and b (1200) rather than a and c (1800)", { count: 2, bytes: 0 }, ["a", "b"], ["a", "b"]],
      ["1000 MiB: all three", { count: 0, bytes: 1000 * MIB }, ["a", "b", "c"], ["a", "b", "c"]],
    ];
    for (const [name, shortfall, victims, inOrder] of table) {
      assert.deepEqual(
        chooseVictims(models, shortfall, "reload-cost", limits).victims.map((v) => v.key),
        victims,
        name,
      );
      assert.deepEqual(
        takeVictims(evictionOrder(models, "reload-cost", limits), shortfall, () => 0).victims.map((v) => v.key),
        inOrder,
        name,
      );
    }
    assert.equal(leastLossCover(models, { count: 0, bytes: 2000 * MIB }), null, "nothing covers more than all");
    assert.equal(chooseVictims(models, { count: 0, bytes: 2000 * MIB }, "reload-cost", limits).covers, false);
  });
  it("its victims never raise GDSF's inflation", () => {
    const { victims } = chooseVictims(
      [candidate("x", { frequency: 3 })],
      { count: 1, bytes: 0 },
      "reload-cost",
      limits,
    );
    assert.equal(nextInflation(5, victims), 5);
  });
});

describe("chooseVictims", () => {
  const three = [
    candidate("a", { lastUsedAt: 1, memoryBytes: 30 * MIB }),
    candidate("b", { lastUsedAt: 2, memoryBytes: 30 * MIB }),
    candidate("c", { lastUsedAt: 3, memoryBytes: 30 * MIB }),
  ];
  const table: Array<[string, { count: number; bytes: number }, Array<[string, string]>, boolean]> = [
    ["nothing short", { count: 0, bytes: 0 }, [], true],
    ["one model too many", { count: 1, bytes: -10 * MIB }, [["a", "capacity_count"]], true],
    [
      "50 MiB short: two victims, both for memory",
      { count: 0, bytes: 50 * MIB },
      [
        ["a", "capacity_memory"],
        ["b", "capacity_memory"],
      ],
      true,
    ],
    ["count and 10 MiB: one victim covers both", { count: 1, bytes: 10 * MIB }, [["a", "capacity_memory"]], true],
    [
      "two too many, 20 MiB: memory first, then count",
      { count: 2, bytes: 20 * MIB },
      [
        ["a", "capacity_memory"],
        ["b", "capacity_count"],
      ],
      true,
    ],
    [
      "more than all of them",
      { count: 0, bytes: 100 * MIB },
      [
        ["a", "capacity_memory"],
        ["b", "capacity_memory"],
        ["c", "capacity_memory"],
      ],
      false,
    ],
  ];
  for (const [name, shortfall, expected, covers] of table) {
    it(name, () => {
      const result = chooseVictims(three, shortfall, "lru");
      assert.deepEqual(
        result.victims.map((v) => [v.key, v.reason]),
        expected,
      );
      assert.equal(result.covers, covers);
    });
  }
  it("GDSF inflation rises to the evicted value and never falls", () => {
    const { victims } = chooseVictims([candidate("x", { frequency: 3 })], { count: 1, bytes: 0 }, "cost-aware");
    const value = gdsfPriority(candidate("x", { frequency: 3 }));
    assert.equal(nextInflation(0, victims), value);
    assert.equal(nextInflation(value * 2, victims), value * 2);
  });
});

describe("warm-up plan", () => {
  const now = 100 * HOUR;
  const limits: WarmupLimits = {
    now,
    maxModels: 3,
    memoryLimitBytes: 0,
    restoreWindowMs: 24 * HOUR,
    residentCount: 0,
    residentBytes: 0,
  };
  const model = (name: string, c: Partial<WarmupCandidate> = {}): WarmupCandidate => ({
    key: `/m/${name}`,
    name,
    pinned: false,
    alwaysWarmIndex: null,
    lastUsedAt: now - HOUR,
    frequency: 1,
    avgLoadMs: 1000,
    memoryBytes: 10 * MIB,
    fileChanged: false,
    loaded: false,
    ...c,
  });
  const models = [
    model("busy", { frequency: 10, lastUsedAt: now - 5 * HOUR }),
    model("slow", { frequency: 2, avgLoadMs: 20_000, lastUsedAt: now - 4 * HOUR }),
    model("recent", { frequency: 1, lastUsedAt: now - 60_000 }),
    model("unmeasured", { frequency: 50, avgLoadMs: null, lastUsedAt: now - 2 * HOUR }),
    model("pin2", { pinned: true, alwaysWarmIndex: 1, lastUsedAt: null, frequency: 0 }),
    model("pin1", { pinned: true, alwaysWarmIndex: 0, lastUsedAt: null, frequency: 0 }),
    model("ancient", { frequency: 100, lastUsedAt: now - 48 * HOUR }),
    model("changed", { frequency: 100, fileChanged: true }),
    model("never", { lastUsedAt: null, frequency: 0 }),
  ];
  const table: Array<[WarmupStrategy, string[]]> = [
    ["usage", ["pin1", "pin2", "unmeasured"]],
    ["recent", ["pin1", "pin2", "recent"]],
    ["hybrid", ["pin1", "pin2", "slow"]],
    ["priority", ["pin1", "pin2"]],
    ["none", ["pin1", "pin2"]],
  ];
  for (const [strategy, expected] of table) {
    it(`${strategy}: pinned first in always_warm order, then the strategy, cut at the limits`, () => {
      const { plan, skipped } = planWarmup(models, strategy, limits);
      assert.deepEqual(
        plan.map((c) => c.name),
        expected,
      );
      const why = Object.fromEntries(skipped.map((s) => [s.name, s.reason]));
      assert.equal(why.ancient, "not used within the restore window");
      assert.equal(why.changed, "file changed since last use");
      assert.equal(why.never, "never used");
    });
  }
  it("usage ranks by frequency x load time", () => {
    const { plan } = planWarmup(
      models.filter((m) => !m.pinned),
      "usage",
      { ...limits, maxModels: 10 },
    );
    assert.deepEqual(
      plan.map((c) => c.name),
      ["unmeasured", "slow", "busy", "recent"],
    );
  });
  it("never exceeds the memory limit, but a smaller model after a big one may still fit", () => {
    const sized = [
      model("a", { frequency: 9, memoryBytes: 60 * MIB }),
      model("b", { frequency: 8, memoryBytes: 60 * MIB }),
      model("c", { frequency: 7, memoryBytes: 30 * MIB }),
    ];
    const { plan, skipped } = planWarmup(sized, "usage", { ...limits, memoryLimitBytes: 100 * MIB });
    assert.deepEqual(
      plan.map((c) => c.name),
      ["a", "c"],
    );
    assert.deepEqual(skipped, [{ name: "b", reason: "would exceed the memory limit" }]);
  });
  it("counts models already resident against the limits; restore window 0 = no limit", () => {
    const { plan } = planWarmup([model("x", { lastUsedAt: 0 }), model("y", { lastUsedAt: 0 })], "recent", {
      ...limits,
      restoreWindowMs: 0,
      residentCount: 2,
    });
    assert.deepEqual(
      plan.map((c) => c.name),
      ["x"],
    );
  });
});

describe("warm-up plan from saved statistics (the live cache's and the CLI's file mode's one planner)", () => {
  const now = 1_000 * HOUR;
  const limits = warmupLimits({ max_cached_models: 3, restore_window_hours: 24 }, now, 100 * MIB);
  const used = (key: string, h: Partial<WarmupHistory> = {}): WarmupHistory => ({
    key,
    name: `${key}.gguf`,
    lastUsedAt: now - HOUR,
    frequency: 1,
    avgLoadMs: 1000,
    memoryBytes: 10 * MIB,
    ...h,
  });
  const inputs = (i: Partial<WarmupInputs>): WarmupInputs => ({
    history: [],
    pinned: new Map(),
    files: new Map(),
    changed: new Set(),
    resident: new Set(),
    estimates: new Map(),
    ...i,
  });
  const files = (...keys: string[]) => new Map(keys.map((k) => [k, `now/${k}.gguf`]));

  // [case, inputs, strategy, plan (names), skipped (name: reason)]
  const table: Array<[string, WarmupInputs, WarmupStrategy, string[], Record<string, string>]> = [
    [
      "a used model whose file is gone is skipped under its saved name; the plan names files as they are now",
      inputs({ history: [used("a"), used("gone", { name: "old/gone.gguf" })], files: files("a") }),
      "usage",
      ["now/a.gguf"],
      { "old/gone.gguf": "model file not found" },
    ],
    [
      "a resident (or loading) model is neither planned nor skipped",
      inputs({ history: [used("a"), used("b")], files: files("a", "b"), resident: new Set(["a"]) }),
      "usage",
      ["now/b.gguf"],
      {},
    ],
    [
      "a pinned model never used is planned first, with its estimate; a pin whose file is gone is skipped",
      inputs({
        history: [used("a", { frequency: 50 })],
        pinned: new Map([
          ["p", 0],
          ["lost", 1],
        ]),
        files: files("a", "p"),
        estimates: new Map([["p", 80 * MIB]]),
      }),
      "usage",
      ["now/p.gguf", "now/a.gguf"],
      { lost: "model file not found" },
    ],
    [
      "an estimate counts against the memory limit like a measured figure",
      inputs({
        history: [used("a", { memoryBytes: null }), used("b")],
        files: files("a", "b"),
        estimates: new Map([["a", 95 * MIB]]),
      }),
      "recent",
      ["now/a.gguf"],
      { "now/b.gguf": "would exceed the memory limit" },
    ],
    [
      "a model whose file changed is not warmed",
      inputs({ history: [used("a"), used("b")], files: files("a", "b"), changed: new Set(["b"]) }),
      "usage",
      ["now/a.gguf"],
      { "now/b.gguf": "file changed since last use" },
    ],
  ];
  for (const [name, given, strategy, plan, skipped] of table) {
    it(name, () => {
      const result = warmupPlan(given, strategy, limits);
      assert.deepEqual(
        result.plan.map((c) => c.name),
        plan,
      );
      assert.deepEqual(Object.fromEntries(result.skipped.map((s) => [s.name, s.reason])), skipped);
    });
  }

  it("asks for estimates only of models it may plan that were never measured", () => {
    const given = inputs({
      history: [used("measured"), used("never", { memoryBytes: null }), used("gone", { memoryBytes: null })],
      pinned: new Map([
        ["pin", 0],
        ["resident", 1],
      ]),
      files: files("measured", "never", "pin", "resident"),
      resident: new Set(["resident"]),
    });
    assert.deepEqual(unmeasured(given), ["never", "pin"]);
  });

  it("counts what is resident against the limits", () => {
    const full = warmupLimits({ max_cached_models: 3, restore_window_hours: 24 }, now, 0, { count: 3, bytes: 0 });
    const { plan, skipped } = warmupPlan(inputs({ history: [used("a")], files: files("a") }), "usage", full);
    assert.deepEqual(plan, []);
    assert.deepEqual(skipped, [{ name: "now/a.gguf", reason: "would exceed max_cached_models" }]);
  });
});

/** A candidate with a measured load time (`loads` of them), of 100 MiB unless given. */
function model(key: string, loadMs: number | null, loads?: number, memoryBytes = 100 * MIB): EvictionCandidate {
  return {
    key,
    lastUsedAt: 0,
    memoryBytes,
    loadMs,
    ...(loads === undefined ? {} : { loads }),
    frequency: 1,
    inflation: 0,
  };
}

describe("settled load times: a model loaded once counts at most what the node's reloads take per byte", () => {
  const cases: Array<{ name: string; candidates: EvictionCandidate[]; want: Array<number | null> }> = [
    {
      name: "a slow first load beside a reloaded model of the same size: the reloads' time",
      candidates: [model("cold", 250, 1), model("hot", 20, 6)],
      want: [20, 20],
    },
    {
      name: "scaled to its size",
      candidates: [model("cold", 250, 1, 200 * MIB), model("hot", 20, 6)],
      want: [40, 20],
    },
    {
      name: "a first load faster than the reloads stays as measured",
      candidates: [model("quick", 10, 1), model("hot", 20, 6)],
      want: [10, 20],
    },
    {
      name: "the median of the reloaded models' rates",
      candidates: [model("cold", 250, 1), model("a", 10, 2), model("b", 30, 3), model("c", 90, 4)],
      want: [30, 10, 30, 90],
    },
    { name: "nothing reloaded: unchanged", candidates: [model("a", 250, 1), model("b", 20, 1)], want: [250, 20] },
    {
      name: "never measured stays unknown",
      candidates: [model("new", null, 0), model("hot", 20, 6)],
      want: [null, 20],
    },
    {
      name: "no count (a caller that does not know it): taken as settled",
      candidates: [model("a", 250), model("b", 20, 1)],
      want: [250, 20],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.deepEqual(
        settledLoadTimes(c.candidates).map((m) => m.loadMs),
        c.want,
      );
    });
  }

  it("reload-cost then evicts the rarely used model, not the hot one", () => {
    const limits = { maxModels: 2, maxMemoryBytes: 0 };
    const candidates = [
      { ...model("tail", 250, 1), frequency: 1 },
      { ...model("hot", 20, 6), frequency: 6 },
    ];
    const raw = chooseVictims(candidates, { count: 1, bytes: 0 }, "reload-cost", limits);
    assert.deepEqual(
      raw.victims.map((v) => v.key),
      ["hot"],
      "the measured first load alone keeps the tail model",
    );
    const settled = chooseVictims(settledLoadTimes(candidates), { count: 1, bytes: 0 }, "reload-cost", limits);
    assert.deepEqual(
      settled.victims.map((v) => v.key),
      ["tail"],
    );
  });
});

describe("fleet load times: the fleet's typical load time per byte, scaled to each model's size", () => {
  /** 20 ms per 100 MiB. */
  const rate = 20 / (100 * MIB);
  const cases: Array<{
    name: string;
    candidates: EvictionCandidate[];
    rate: number | null;
    want: Array<number | null>;
  }> = [
    {
      name: "slow loads on a node whose every load was slow: the fleet's rate",
      candidates: [model("a", 450, 1), model("b", 290, 1)],
      rate,
      want: [20, 20],
    },
    {
      name: "a model measured fast weighs as much as any other of its size",
      candidates: [model("quick", 9, 5), model("slow", 250, 2)],
      rate,
      want: [20, 20],
    },
    { name: "scaled to the model's size", candidates: [model("big", 450, 3, 300 * MIB)], rate, want: [60] },
    {
      name: "rate unknown yet: settled only",
      candidates: [model("cold", 250, 1), model("hot", 30, 6)],
      rate: null,
      want: [30, 30],
    },
    { name: "never measured stays unknown", candidates: [model("new", null, 0)], rate, want: [null] },
    { name: "no size: as measured", candidates: [model("sizeless", 70, 2, 0)], rate, want: [70] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.deepEqual(
        fleetLoadTimes(c.candidates, c.rate).map((m) => m.loadMs),
        c.want,
      );
    });
  }

  const medians: Array<[string, Array<{ value: number; weight: number }>, number | null]> = [
    ["nothing", [], null],
    ["no weight", [{ value: 5, weight: 0 }], null],
    ["one value", [{ value: 5, weight: 3 }], 5],
    [
      "the value that holds half the weight",
      [
        { value: 30, weight: 2 },
        { value: 10, weight: 126 },
        { value: 40, weight: 2 },
      ],
      10,
    ],
    [
      "an even split: the lower",
      [
        { value: 1, weight: 1 },
        { value: 2, weight: 1 },
      ],
      1,
    ],
    [
      "odd count",
      [
        { value: 3, weight: 1 },
        { value: 1, weight: 1 },
        { value: 2, weight: 1 },
      ],
      2,
    ],
  ];
  for (const [name, values, want] of medians) {
    it(`weighted median: ${name}`, () => assert.equal(weightedMedian(values), want));
  }
});

describe("fleet frequency: the fleet's usage shared over the copies, or this node's own when higher", () => {
  const table: Array<[string, number, number, number, number]> = [
    // [case, local, elsewhere, copies, expected]
    ["a single node (nothing elsewhere, one copy): the local count", 7, 0, 1, 7],
    ["a hot model new here: its uses on the node that held it count", 1, 40, 1, 41],
    ["two copies share the fleet's usage", 10, 30, 2, 20],
    ["a copy that serves more than its share keeps its own count", 30, 6, 3, 30],
    ["not counted as a copy yet (a load just ended): taken as one", 2, 10, 0, 12],
  ];
  for (const [name, local, elsewhere, copies, expected] of table) {
    it(name, () => assert.equal(fleetFrequency(local, elsewhere, copies), expected));
  }

  it("a published rate becomes the count that settles at it", () => {
    let count = null;
    for (let h = 0; h < 24 * 30; h++) count = addUse(count, h * HOUR, 24);
    const now = 24 * 30 * HOUR;
    const settled = decayedValue(count, now, 24);
    assert.ok(Math.abs(countOfRate(perHour(count, now, 24), 24) - settled) < 1e-9);
  });

  it("reload-cost keeps the hot model that moved here and evicts the one used only here, rarely", () => {
    const limits = { maxModels: 2, maxMemoryBytes: 0 };
    const moved = { key: "moved", lastUsedAt: 0, memoryBytes: 100 * MIB, loadMs: 20, frequency: 1, inflation: 0 };
    const tail = { ...moved, key: "tail", frequency: 5 };
    const local = chooseVictims([moved, tail], { count: 1, bytes: 0 }, "reload-cost", limits);
    assert.deepEqual(
      local.victims.map((v) => v.key),
      ["moved"],
    );
    const fleet = [
      { ...moved, frequency: fleetFrequency(1, 40, 1) },
      { ...tail, frequency: fleetFrequency(5, 0, 1) },
    ];
    assert.deepEqual(
      chooseVictims(fleet, { count: 1, bytes: 0 }, "reload-cost", limits).victims.map((v) => v.key),
      ["tail"],
    );
  });
});
