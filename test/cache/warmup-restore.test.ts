/** Warm-up, restore and periodic saving of the cache core, with an in-memory store going through the real codec. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ManualClock } from "../../src/cache/clock.js";
import type { CacheState, PersistedModel } from "../../src/cache/persistence/types.js";
import { EVICTION_REASONS } from "../../src/cache/types.js";
import { harness, loadedNames, MemoryStateStore, MIB } from "../../testkit/cache-harness.js";
import { FakeModelSource } from "../../testkit/fake-models.js";

const HOUR = 3600_000;
const clockStart = Date.UTC(2026, 0, 1);

function saved(
  name: string,
  usage: { requests: number; lastUsedHoursAgo: number; avgLoadMs?: number; size?: number },
): PersistedModel {
  const lastUsed = clockStart - usage.lastUsedHoursAgo * HOUR;
  return {
    key: `/models/${name}`,
    name,
    format: "gguf",
    fingerprint: { size: usage.size ?? 1000, mtimeMs: Date.UTC(2025, 0, 1) },
    metadata: { memory_bytes: MIB },
    usage: {
      requests: usage.requests,
      hits: usage.requests - 1,
      misses: 1,
      loads: 1,
      last_used_at: lastUsed,
      frequency: { value: usage.requests, at: lastUsed },
      load_ms_total: usage.avgLoadMs ?? 1000,
      load_ms_samples: [usage.avgLoadMs ?? 1000],
    },
    priority: 0,
    pinned: false,
  };
}

function state(models: PersistedModel[]): CacheState {
  const evictions = Object.fromEntries(EVICTION_REASONS.map((r) => [r, 1])) as CacheState["counters"]["evictions"];
  return {
    saved_at: clockStart - HOUR,
    counters: {
      hits: 40,
      misses: 9,
      loads: 9,
      load_failures: 2,
      evictions,
      warmups: 3,
      unknown_model_requests: 0,
      coalesced: 0,
    },
    models,
  };
}

const history = state([
  saved("a.gguf", { requests: 30, lastUsedHoursAgo: 1 }),
  saved("b.gguf", { requests: 10, lastUsedHoursAgo: 2 }),
  saved("c.gguf", { requests: 5, lastUsedHoursAgo: 3 }),
  saved("d.gguf", { requests: 50, lastUsedHoursAgo: 30 }),
]);

describe("restore", () => {
  it("restores counters and per-model statistics without double-counting, and loads nothing without warm-up", async () => {
    const store = new MemoryStateStore(history);
    const { cache } = await harness({ store });
    const stats = cache.stats();
    assert.deepEqual([stats.hits, stats.misses, stats.loads, stats.load_failures, stats.warmups], [40, 9, 9, 2, 3]);
    assert.equal(stats.evictions.ttl, 1);
    assert.deepEqual(
      stats.models.map((m) => [m.name, m.requests, m.loaded]),
      [
        ["a.gguf", 30, false],
        ["b.gguf", 10, false],
        ["c.gguf", 5, false],
        ["d.gguf", 50, false],
      ],
    );
    assert.equal(stats.memory_bytes, 0);
    assert.equal(stats.unsaved_changes, false);
    assert.equal(store.loads, 1);
  });

  it("keeps a missing model's statistics marked missing; a changed file keeps its statistics, takes the new fingerprint and is not warmed", async () => {
    const source = new FakeModelSource(["a.gguf", "b.gguf", "c.gguf", "d.gguf"]);
    source.touch("a.gguf");
    source.remove("c.gguf");
    const store = new MemoryStateStore(history);
    const { cache, clock } = await harness({ store, source, cache: { enable_warmup: true, warmup_strategy: "usage" } });
    const warm = await clock.run(cache.warmupDone);
    assert.deepEqual(
      cache.stats().models.map((m) => [m.name, m.missing]),
      [
        ["a.gguf", false],
        ["b.gguf", false],
        ["c.gguf", true],
        ["d.gguf", false],
      ],
    );
    assert.equal(cache.stats().models[2]?.requests, 5, "the missing model's history is intact");
    assert.deepEqual(cache.restored, { models: 4, missing: 1, warning: null });
    assert.equal(cache.stats().models[0]?.requests, 30);
    assert.deepEqual(warm.loaded, ["b.gguf"]);
    assert.ok(warm.skipped.some((s) => s.name === "a.gguf" && s.reason === "file changed since last use"));
    assert.equal(cache.stats().unsaved_changes, true);
    await cache.saveCache();
    const a = store.state?.models.find((m) => m.name === "a.gguf");
    assert.equal(a?.fingerprint.size, 1001);
  });
});

describe("warm-up", () => {
  it("warms the most valuable models used within the window, within the limits, in order", async () => {
    const store = new MemoryStateStore(history);
    const { cache, clock, events } = await harness({
      store,
      cache: { enable_warmup: true, warmup_strategy: "usage", max_cached_models: 2 },
    });
    const result = await clock.run(cache.warmupDone);
    assert.deepEqual(result.loaded, ["a.gguf", "b.gguf"]);
    assert.ok(result.skipped.some((s) => s.name === "d.gguf" && s.reason === "not used within the restore window"));
    assert.ok(result.skipped.some((s) => s.name === "c.gguf" && s.reason === "would exceed max_cached_models"));
    const stats = cache.stats();
    assert.equal(stats.warmups, 5);
    assert.equal(stats.models_loaded, 2);
    assert.deepEqual([stats.hits, stats.misses], [40, 9], "warm-up is not a request");
    assert.deepEqual(
      events.filter((e) => e.event === "warmup").map((e) => (e.payload as { loaded: string[] }).loaded),
      [["a.gguf", "b.gguf"]],
    );
  });

  it("at start-up, waits for the backends to settle, then warms each model it loaded, before it ends", async () => {
    const store = new MemoryStateStore(history);
    const { cache, clock, backend } = await harness({
      store,
      cache: { enable_warmup: true, warmup_strategy: "usage", max_cached_models: 2 },
    });
    let settled!: () => void;
    backend.settling = new Promise((resolve) => (settled = resolve));
    let done = false;
    void cache.warmupDone.then(() => (done = true));
    await clock.advance(1000);
    const models = [...backend.live];
    assert.deepEqual(models.map((m) => m.descriptor.name).sort(), ["a.gguf", "b.gguf"]);
    assert.equal(backend.settles, 1);
    assert.deepEqual(
      models.map((m) => m.warmed),
      [0, 0],
      "models are warmed once the backends have settled",
    );
    assert.equal(done, false);
    settled();
    const result = await cache.warmupDone;
    assert.deepEqual(result.loaded, ["a.gguf", "b.gguf"]);
    assert.deepEqual(
      models.map((m) => m.warmed),
      [1, 1],
    );
    assert.equal(cache.stats().hits + cache.stats().misses, 49, "warming is not a request");
  });

  it("a warm-up run on request warms what it loads and does not wait for the backends", async () => {
    const { cache, clock, backend } = await harness({ cache: { enable_warmup: false } });
    await clock.run(cache.warmupDone);
    const settles = backend.settles;
    backend.settling = new Promise(() => {});
    const result = await clock.run(cache.warmup({ models: ["c.gguf"] }));
    assert.deepEqual(result.loaded, ["c.gguf"]);
    assert.deepEqual(
      [...backend.live].map((m) => m.warmed),
      [1],
    );
    assert.equal(backend.settles, settles);
  });

  it("a model that cannot be warmed still counts as loaded, with a warning", async () => {
    const { cache, clock, backend, logger } = await harness({ cache: { enable_warmup: false } });
    await clock.run(cache.warmupDone);
    const load = backend.load.bind(backend);
    backend.load = async (descriptor, options) => {
      const model = await load(descriptor, options);
      model.warm = () => Promise.reject(new Error("the first evaluation failed"));
      return model;
    };
    const result = await clock.run(cache.warmup({ models: ["c.gguf"] }));
    assert.deepEqual(result.loaded, ["c.gguf"]);
    assert.equal(cache.stats().models_loaded, 1);
    assert.deepEqual(logger.warnings, ["warm-up could not warm a model"]);
  });

  it("loads warmup_concurrency models at a time", async () => {
    const store = new MemoryStateStore(history);
    const { cache, clock, backend } = await harness({
      store,
      defaults: { loadMs: 1000 },
      cache: { enable_warmup: true, warmup_strategy: "recent", warmup_concurrency: 2 },
    });
    await clock.advance(500);
    assert.equal(backend.counts.started, 2);
    await clock.advance(1000);
    assert.equal(backend.counts.started, 3);
    await clock.run(cache.warmupDone);
    assert.equal(backend.counts.loaded, 3);
  });

  it("a request arriving during warm-up joins the in-flight load; warming a loaded model is a no-op", async () => {
    const store = new MemoryStateStore(history);
    const { cache, clock, backend } = await harness({
      store,
      defaults: { loadMs: 5000 },
      cache: { enable_warmup: true, warmup_strategy: "usage" },
    });
    await clock.advance(100);
    const model = await clock.run(cache.getModel("a.gguf"));
    assert.equal(backend.loadCount("a.gguf"), 1);
    assert.equal(model.disposed, false);
    await clock.run(cache.warmupDone);
    const again = await clock.run(cache.warmup({ models: ["a.gguf", "b.gguf"] }));
    assert.deepEqual(again.loaded, []);
    assert.deepEqual(
      again.skipped.map((s) => s.reason),
      ["already loaded", "already loaded"],
    );
    assert.equal(backend.counts.started, 3);
  });

  it("never evicts to warm: no room → skipped", async () => {
    const { cache, clock } = await harness({ cache: { max_cached_models: 1 } });
    await clock.run(cache.getModel("c.gguf"));
    const result = await clock.run(cache.warmup({ models: ["a.gguf", "nope.gguf"] }));
    assert.deepEqual(result.skipped, [{ name: "a.gguf", reason: "no room without evicting another model" }]);
    assert.equal(result.failed[0]?.name, "nope.gguf");
    assert.deepEqual(loadedNames(cache), ["c.gguf"]);
  });

  it("enable_warmup = false loads nothing at start", async () => {
    const { cache, clock, backend } = await harness({
      store: new MemoryStateStore(history),
      cache: { enable_warmup: false },
    });
    await clock.run(cache.warmupDone);
    assert.equal(backend.counts.started, 0);
  });

  it("warmupPlan tells what a warm-up would load, loading nothing", async () => {
    const { cache, backend } = await harness({ store: new MemoryStateStore(history), cache: { max_cached_models: 5 } });
    assert.deepEqual((await cache.warmupPlan("recent")).plan, ["a.gguf", "b.gguf", "c.gguf"]);
    assert.equal(backend.counts.started, 0);
  });
});

describe("periodic save", () => {
  it("saves every interval only when something changed, the first one an interval after start (after restore)", async () => {
    const store = new MemoryStateStore(history);
    const clock = new ManualClock();
    const { cache } = await harness({ store, clock, cache: { persist_interval_seconds: 60 } });
    assert.equal(store.loads, 1);
    assert.equal(store.saves, 0);
    await clock.advance(60_000);
    assert.equal(store.saves, 0, "nothing changed since the restore");
    await clock.run(cache.getModel("a.gguf"));
    await clock.advance(59_000);
    assert.equal(store.saves, 0);
    await clock.advance(1000);
    assert.equal(store.saves, 1);
    assert.equal(cache.stats().unsaved_changes, false);
    assert.equal(cache.stats().last_save.ok, true);
    await clock.advance(600_000);
    assert.equal(store.saves, 1);
    await cache.close();
    assert.equal(store.saves, 2, "close saves");
    assert.equal(store.state?.counters.misses, 10);
  });

  it("emits save and restore events; a failed save is reported, not thrown", async () => {
    const store = new MemoryStateStore(history);
    const { cache, events, logger } = await harness({ store });
    store.failSaves = true;
    const result = await cache.saveCache();
    assert.deepEqual([result.ok, result.error], [false, "disk full"]);
    await cache.saveCache();
    assert.equal(logger.warnings.length, 1);
    assert.equal(events.filter((e) => e.event === "save").length, 2);
  });
});

describe("warm-up and shutdown", () => {
  it("closing during warm-up stops it quietly: the load in flight is aborted, nothing is reported as failed", async () => {
    const store = new MemoryStateStore(history);
    const { cache, clock, backend, logger } = await harness({
      store,
      defaults: { loadMs: 60_000 },
      cache: { enable_warmup: true, warmup_strategy: "usage" },
    });
    await clock.advance(1000);
    await cache.close();
    const result = await cache.warmupDone;
    assert.deepEqual(result.failed, []);
    assert.ok(result.skipped.some((s) => s.reason === "the cache is closing"));
    assert.equal(backend.counts.aborted, 1);
    assert.equal(backend.live.size, 0);
    assert.deepEqual(logger.warnings, []);
  });

  it("closing while the backends settle ends the warm-up at once, without warming", async () => {
    const store = new MemoryStateStore(history);
    const { cache, clock, backend, logger } = await harness({
      store,
      cache: { enable_warmup: true, warmup_strategy: "usage" },
    });
    backend.settling = new Promise(() => {});
    await clock.advance(1000);
    assert.equal(backend.settles, 1);
    const models = [...backend.live];
    await cache.close();
    const result = await cache.warmupDone;
    assert.ok(result.loaded.length > 0);
    assert.deepEqual(
      models.map((m) => m.warmed).filter((n) => n > 0),
      [],
    );
    assert.deepEqual(logger.warnings, []);
  });
});
