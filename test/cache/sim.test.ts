/**
 * The cache simulator and the offline optimum: the simulator replays a trace exactly as the real `ModelCache` does
 * (same policy code, fake backend, manual clock); the integer program's optimum equals a brute-force search over every
 * eviction schedule on tiny traces; the LP bound sits below it and every policy above it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeBackend } from "../../src/backends/fake.js";
import { ManualClock } from "../../src/cache/clock.js";
import { ModelCache } from "../../src/cache/model-cache.js";
import type { EvictionCandidate, EvictionPolicy } from "../../src/cache/policy/eviction.js";
import { offlineOptimum } from "../../src/cache/sim/optimum.js";
import { peerOrder, safeCountLimit } from "../../src/cache/sim/peers.js";
import { type SimMiss, type SimPolicy, simulate } from "../../src/cache/sim/simulate.js";
import type { SimSettings, Trace } from "../../src/cache/sim/types.js";
import { backendSchema, cacheSchema } from "../../src/config/schema.js";
import { seededRandom } from "../../src/models/gguf-writer.js";
import { highsSolver } from "../../src/runtime/lp-solver.js";
import { MIB } from "../../src/units.js";
import { FakeModelSource } from "../../testkit/fake-models.js";

const START = Date.UTC(2026, 0, 1);

/**
 * A random trace: `models` models of 100–900 MiB (load ms ∝ size, warm 3x faster; with `unevenLoads`, each model's
 * load time per MiB drawn between 2.5 and 40 ms, as measured load times of small real models are), `count` requests
 * `gapMs` apart on average.
 */
function randomTrace(seed: number, models: number, count: number, gapMs: number, unevenLoads = false): Trace {
  const rand = seededRandom(seed);
  const list = Array.from({ length: models }, (_, i) => {
    const mib = 100 * (1 + Math.floor(rand() * 9));
    const loadMs = unevenLoads ? Math.round(mib * 2.5 * 16 ** rand()) : mib * 10;
    return { key: `m${i}`, memoryBytes: mib * MIB, loadMs, warmLoadMs: Math.round(loadMs / 3) };
  });
  let at = START;
  const requests = Array.from({ length: count }, () => {
    at += Math.round(gapMs / 2 + rand() * gapMs);
    // Skewed: low indices are asked for more often.
    return { at, key: `m${Math.floor(rand() ** 2 * models)}` };
  });
  return { models: list, requests };
}

/**
 * Every eviction schedule, searched exhaustively: at each request, and at each moment one warm window before a
 * model's next request, any set of resident models may be unloaded; a request loads its model if absent (warm when
 * unloaded within the window); the limits must hold after every load. Returns the least total load time.
 */
function bruteForceOptimum(trace: Trace, settings: SimSettings): number {
  const models = new Map(trace.models.map((m) => [m.key, m]));
  type Event = { at: number; key: string | null };
  const events: Event[] = trace.requests.map((r) => ({ at: r.at, key: r.key }));
  if (settings.warmWindowMs > 0) {
    const last = new Map<string, number>();
    for (const r of trace.requests) {
      const before = last.get(r.key);
      const moment = r.at - settings.warmWindowMs;
      if (before !== undefined && moment > before) events.push({ at: moment, key: null });
      last.set(r.key, r.at);
    }
  }
  // At one moment, unloading comes before a request (both may unload; only the request loads).
  events.sort((a, b) => a.at - b.at || (a.key === null ? -1 : 1) - (b.key === null ? -1 : 1));
  const memo = new Map<string, number>();
  const best = (i: number, resident: readonly string[], unloaded: ReadonlyMap<string, number>): number => {
    if (i === events.length) return 0;
    const memoKey = `${i}|${resident.join(",")}|${[...unloaded].sort().join(",")}`;
    const known = memo.get(memoKey);
    if (known !== undefined) return known;
    const event = events[i] as Event;
    let result = Infinity;
    for (let mask = 0; mask < 1 << resident.length; mask++) {
      const kept = resident.filter((_, b) => !(mask & (1 << b)));
      const gone = new Map(unloaded);
      resident.forEach((key, b) => mask & (1 << b) && gone.set(key, event.at));
      let cost = 0;
      if (event.key !== null && !kept.includes(event.key)) {
        const model = models.get(event.key)!;
        const at = gone.get(event.key);
        const warm = settings.warmWindowMs > 0 && at !== undefined && event.at - at <= settings.warmWindowMs;
        cost = warm ? model.warmLoadMs : model.loadMs;
        kept.push(event.key);
        kept.sort();
      }
      const bytes = kept.reduce((sum, key) => sum + models.get(key)!.memoryBytes, 0);
      if (kept.length > settings.maxModels || (settings.maxMemoryBytes > 0 && bytes > settings.maxMemoryBytes))
        continue;
      // Only unload times of absent models matter later.
      for (const key of kept) gone.delete(key);
      result = Math.min(result, cost + best(i + 1, kept, gone));
    }
    memo.set(memoKey, result);
    return result;
  };
  return best(0, [], new Map());
}

const POLICIES: SimPolicy[] = ["lru", "cost-aware", "lru-count", "ollama", "largest-first"];

describe("offline optimum", () => {
  const cases: Array<[string, number, Partial<SimSettings>]> = [
    ["count limit only, no warm tier", 1, { maxModels: 2, maxMemoryBytes: 0, warmWindowMs: 0 }],
    ["memory limit, no warm tier", 2, { maxModels: 4, maxMemoryBytes: 1200 * MIB, warmWindowMs: 0 }],
    ["both limits and a warm tier", 3, { maxModels: 2, maxMemoryBytes: 1200 * MIB, warmWindowMs: 2500 }],
    ["memory limit and a warm tier", 4, { maxModels: 4, maxMemoryBytes: 1000 * MIB, warmWindowMs: 4000 }],
    ["tight memory, long warm window", 5, { maxModels: 3, maxMemoryBytes: 900 * MIB, warmWindowMs: 8000 }],
  ];
  for (const [name, seed, limits] of cases) {
    it(`the integer program's optimum equals brute force: ${name}`, async () => {
      const solver = await highsSolver();
      for (let round = 0; round < 4; round++) {
        const trace = randomTrace(seed * 100 + round, 4, 10, 1000);
        trace.models = trace.models.map((m) => ({
          ...m,
          memoryBytes: Math.min(m.memoryBytes, limits.maxMemoryBytes || Infinity),
        }));
        const settings: SimSettings = {
          maxModels: 2,
          maxMemoryBytes: 0,
          warmWindowMs: 0,
          usageHalfLifeHours: 1,
          ...limits,
        };
        const exact = offlineOptimum(trace, settings, solver, { integer: true });
        const bound = offlineOptimum(trace, settings, solver, { integer: false });
        const brute = bruteForceOptimum(trace, settings);
        assert.ok(
          Math.abs(exact.loadMsTotal - brute) < 1e-6,
          `round ${round}: ILP ${exact.loadMsTotal} vs brute force ${brute}`,
        );
        assert.ok(
          bound.loadMsTotal <= exact.loadMsTotal + 1e-6,
          `LP bound ${bound.loadMsTotal} above the optimum ${exact.loadMsTotal}`,
        );
        for (const policy of POLICIES) {
          if (policy === "lru-count") continue; // runs under other limits (count only)
          const online = simulate(trace, settings, policy).loadMsTotal;
          assert.ok(
            online >= exact.loadMsTotal - 1e-6,
            `${policy} (${online}) beat the optimum (${exact.loadMsTotal})`,
          );
        }
      }
    });
  }

  it("with room for every model, the optimum pays each model's first load only", async () => {
    const solver = await highsSolver();
    const trace = randomTrace(9, 5, 40, 1000);
    const settings: SimSettings = { maxModels: 5, maxMemoryBytes: 0, warmWindowMs: 1000, usageHalfLifeHours: 1 };
    const firstLoads = [...new Set(trace.requests.map((r) => r.key))].reduce(
      (sum, key) => sum + trace.models.find((m) => m.key === key)!.loadMs,
      0,
    );
    assert.equal(offlineOptimum(trace, settings, solver, { integer: false }).loadMsTotal, firstLoads);
    assert.equal(simulate(trace, settings, "lru").loadMsTotal, firstLoads);
  });
});

describe("simulator", () => {
  it("counts every request, and warm reloads cost the warm time", () => {
    const trace: Trace = {
      models: [
        { key: "a", memoryBytes: 100, loadMs: 30, warmLoadMs: 10 },
        { key: "b", memoryBytes: 100, loadMs: 60, warmLoadMs: 20 },
      ],
      requests: [
        { at: 0, key: "a" },
        { at: 1000, key: "b" }, // evicts a
        { at: 2000, key: "a" }, // a unloaded 1 s ago: warm (10); evicts b
        { at: 9000, key: "b" }, // b unloaded 7 s ago: cold (60)
        { at: 9001, key: "b" }, // hit
      ],
    };
    const misses: SimMiss[] = [];
    const result = simulate(
      trace,
      { maxModels: 1, maxMemoryBytes: 0, warmWindowMs: 5000, usageHalfLifeHours: 1 },
      "lru",
      { onMiss: (miss) => misses.push(miss) },
    );
    // Each miss as it was decided: the request, its cost, and who made room (the first fitted without an eviction).
    assert.deepEqual(
      misses.map((m) => [m.index, m.key, m.cost, m.warm, m.candidates.map((c) => c.key), m.victims]),
      [
        [0, "a", 30, false, [], []],
        [1, "b", 60, false, ["a"], ["a"]],
        [2, "a", 10, true, ["b"], ["b"]],
        [3, "b", 60, false, ["a"], ["a"]],
      ],
    );
    assert.deepEqual(result, {
      requests: 5,
      hits: 1,
      misses: 4,
      loads: 4,
      warmLoads: 1,
      loadMsTotal: 30 + 60 + 10 + 60,
      evictions: 3,
    });
  });

  const cases: Array<{ policy: EvictionPolicy; ttlSeconds: number; unevenLoads?: boolean }> = [
    ...(["lru", "cost-aware", "reload-cost"] as const).map((policy) => ({ policy, ttlSeconds: 0 })),
    // With the idle TTL on (`inferno cache advise` replays it): models idle 150 s are unloaded between requests.
    { policy: "reload-cost", ttlSeconds: 150 },
    // Load times not proportional to size: the cache settles a model loaded once to its reloaded models' time per byte
    // (`settledLoadTimes`), and so must the simulator.
    { policy: "reload-cost", ttlSeconds: 0, unevenLoads: true },
  ];
  for (const { policy, ttlSeconds, unevenLoads = false } of cases) {
    it(`reproduces the real ModelCache's loads and load time exactly (${policy}${ttlSeconds ? `, idle TTL ${ttlSeconds} s` : ""}${unevenLoads ? ", uneven load times" : ""}, fake backend, manual clock)`, async () => {
      const trace = randomTrace(42, 6, 150, 60_000, unevenLoads);
      const settings: SimSettings = {
        maxModels: 3,
        maxMemoryBytes: 1500 * MIB,
        warmWindowMs: 0,
        usageHalfLifeHours: 0.5,
        ttlMs: ttlSeconds * 1000,
      };
      const clock = new ManualClock(START);
      const source = new FakeModelSource(trace.models.map((m) => ({ name: m.key, estimateBytes: m.memoryBytes })));
      const backend = new FakeBackend({
        timers: clock,
        models: Object.fromEntries(trace.models.map((m) => [m.key, { loadMs: m.loadMs, memoryBytes: m.memoryBytes }])),
      });
      const config = {
        ...cacheSchema.parse({
          eviction_policy: policy,
          max_memory_mb: settings.maxMemoryBytes / MIB,
          max_cached_models: settings.maxModels,
          model_ttl_seconds: ttlSeconds,
          enable_warmup: false,
          persist_cache: false,
          usage_half_life_hours: settings.usageHalfLifeHours,
        }),
        cache_dir: "/nonexistent",
      };
      const cache = await ModelCache.create(config, backendSchema.parse({}), source, {
        backends: { gguf: backend },
        clock,
      });
      let loads = 0;
      let loadMs = 0;
      cache.on("load", ({ durationMs }) => {
        loads++;
        loadMs += durationMs;
      });
      for (const { at, key } of trace.requests) {
        assert.ok(clock.now() <= at, "loads never push the trace's clock (gaps exceed load times)");
        await clock.advance(at - clock.now());
        await clock.run(cache.getModel(key));
      }
      const stats = cache.stats();
      await cache.close();
      const sim = simulate(trace, settings, policy);
      assert.ok(sim.evictions > 10, `the trace makes the policy choose (${sim.evictions} evictions)`);
      assert.equal(sim.loads, loads);
      assert.equal(sim.loadMsTotal, loadMs);
      assert.equal(sim.hits, stats.hits);
      assert.equal(sim.misses, stats.misses);
      assert.equal(sim.evictions, stats.evictions.capacity_count + stats.evictions.capacity_memory);
      if (ttlSeconds > 0) assert.ok(stats.evictions.ttl > 10, `the TTL unloaded models (${stats.evictions.ttl})`);
    });
  }
});

describe("other runners' rules", () => {
  const c = (key: string, lastUsedAt: number, mib: number): EvictionCandidate => ({
    key,
    lastUsedAt,
    memoryBytes: mib * MIB,
    loadMs: 1000,
    frequency: 1,
    inflation: 0,
  });
  const candidates = [c("b", 1, 500), c("a", 3, 100), c("c", 2, 500)];
  const table: Array<[Parameters<typeof peerOrder>[1], string[]]> = [
    ["lru-count", ["b", "c", "a"]],
    ["ollama", ["a", "b", "c"]],
    ["largest-first", ["b", "c", "a"]],
  ];
  for (const [policy, expected] of table) {
    it(`${policy} evicts in its order`, () => {
      assert.deepEqual(
        peerOrder(candidates, policy).map((x) => x.key),
        expected,
      );
    });
  }
  it("a count-only runner gets the count whose largest models fit in memory", () => {
    assert.equal(safeCountLimit([8, 1, 4, 2], 5, 12), 2);
    assert.equal(safeCountLimit([8, 1, 4, 2], 5, 0), 5);
    assert.equal(safeCountLimit([8, 1, 4, 2], 1, 100), 1);
    assert.equal(safeCountLimit([8], 3, 4), 1);
  });
});
