/**
 * Scenario tests of issue 9's promises, on the fake backend and a manual clock: nothing lost (missing models, an absent
 * models folder, two caches sharing one store), limits that hold, pins that need force, the cheap hit, honest counts.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeBackend } from "../../src/backends/fake.js";
import { ManualClock } from "../../src/cache/clock.js";
import { FINGERPRINT_CHECK_INTERVAL_MS } from "../../src/cache/model-cache.js";
import { combineFrequencies, mergeDelta } from "../../src/cache/persistence/merge.js";
import type { StateDelta } from "../../src/cache/persistence/types.js";
import { emptyCounters } from "../../src/cache/state-view.js";
import type { CacheEvents } from "../../src/cache/types.js";
import { configSchema } from "../../src/config/schema.js";
import { B_GROWS_ON_LOAD, harness, loadedNames, MemoryStateStore, MIB } from "../../testkit/cache-harness.js";
import { FakeModelSource } from "../../testkit/fake-models.js";

const DAY = 24 * 3600_000;

describe("nothing lost", () => {
  it("two caches on one store (two processes, one cache_dir), each using different models: both histories in the file", async () => {
    const store = new MemoryStateStore();
    const clock = new ManualClock();
    const one = await harness({ store, clock, models: ["a.gguf", "b.gguf"] });
    const two = await harness({ store, clock, models: ["a.gguf", "b.gguf"] });
    for (let i = 0; i < 3; i++) await clock.run(one.cache.getModel("a.gguf"));
    for (let i = 0; i < 5; i++) await clock.run(two.cache.getModel("b.gguf"));
    await one.cache.saveCache();
    await two.cache.saveCache();
    const saved = store.state;
    assert.ok(saved);
    assert.deepEqual(saved.models.map((m) => [m.name, m.usage.requests]).sort(), [
      ["a.gguf", 3],
      ["b.gguf", 5],
    ]);
    assert.deepEqual([saved.counters.hits, saved.counters.misses, saved.counters.loads], [6, 2, 2]);
    // Both use a.gguf later and save again: the counts add, nothing is counted twice.
    await clock.run(two.cache.getModel("a.gguf"));
    await two.cache.saveCache();
    await one.cache.saveCache();
    const again = store.state;
    assert.equal(again?.models.find((m) => m.name === "a.gguf")?.usage.requests, 4);
    assert.equal(again?.models.find((m) => m.name === "b.gguf")?.usage.requests, 5);
    assert.equal(again?.counters.loads, 3);
    await one.cache.close();
    await two.cache.close();
    assert.equal(
      store.state?.counters.evictions.shutdown,
      3,
      "both final saves added their shutdown evictions (a; a and b)",
    );
  });

  it("merge: last use takes the latest, decayed frequencies combine by their timestamps, samples append", () => {
    const hour = 3600_000;
    assert.deepEqual(combineFrequencies({ value: 4, at: 0 }, { value: 1, at: 24 * hour }, 24), {
      value: 3,
      at: 24 * hour,
    });
    const model = (requests: number, lastUsed: number, samples: number[]) => ({
      key: "/m/a.gguf",
      name: "a.gguf",
      format: "gguf" as const,
      fingerprint: { size: 1, mtimeMs: 1 },
      metadata: { memory_bytes: samples.length > 0 ? 5 : null },
      usage: {
        requests,
        hits: 0,
        misses: requests,
        loads: samples.length,
        last_used_at: lastUsed,
        frequency: { value: requests, at: lastUsed },
        load_ms_total: samples.reduce((a, b) => a + b, 0),
        load_ms_samples: samples,
      },
      priority: 0,
      pinned: false,
    });
    const delta = (m: ReturnType<typeof model>, at: number): StateDelta => ({
      at,
      half_life_hours: 24,
      reset_all: false,
      removed: [],
      counters: { ...emptyCounters(), misses: m.usage.requests },
      models: [m],
    });
    const first = mergeDelta(null, delta(model(2, 10 * hour, [100]), 10 * hour));
    const merged = mergeDelta(first, delta(model(1, 5 * hour, []), 11 * hour));
    const a = merged.models[0];
    assert.equal(a?.usage.requests, 3);
    assert.equal(a?.usage.last_used_at, 10 * hour, "the later use wins, whoever saved last");
    assert.equal(a?.metadata.memory_bytes, 5, "a process that never loaded it keeps the other's measurement");
    assert.deepEqual(a?.usage.load_ms_samples, [100]);
    assert.ok(Math.abs((a?.usage.frequency?.value ?? 0) - (2 + 2 ** (-5 / 24))) < 1e-9);
    assert.equal(merged.counters.misses, 3);
  });

  it("restore with the models folder absent changes nothing (one warning); present again: history intact", async () => {
    const clock = new ManualClock();
    const store = new MemoryStateStore();
    const source = new FakeModelSource(["a.gguf", "b.gguf"]);
    const first = await harness({ store, clock, source });
    for (let i = 0; i < 4; i++) await clock.run(first.cache.getModel("a.gguf"));
    await clock.run(first.cache.getModel("b.gguf"));
    await first.cache.close();
    const before = store.state;

    source.folderPresent = false;
    const absent = await harness({ store, clock, source });
    assert.equal(absent.logger.warnings.filter((w) => /models directory is not available/.test(w)).length, 1);
    assert.deepEqual(
      absent.cache.stats().models.map((m) => [m.name, m.requests, m.missing]),
      [
        ["a.gguf", 4, false],
        ["b.gguf", 1, false],
      ],
    );
    assert.equal(absent.cache.stats().unsaved_changes, false);
    await clock.advance(400 * DAY);
    await absent.cache.close();
    assert.deepEqual(
      store.state?.models.map((m) => [m.name, m.usage.requests]),
      before?.models.map((m) => [m.name, m.usage.requests]),
    );

    source.folderPresent = true;
    const back = await harness({ store, clock, source });
    assert.deepEqual(
      back.cache.stats().models.map((m) => [m.name, m.requests, m.missing]),
      [
        ["a.gguf", 4, false],
        ["b.gguf", 1, false],
      ],
    );
    await back.cache.close();
  });

  it("a missing model keeps its statistics marked missing, in stats and in the file, and is dropped after missing_retention_days", async () => {
    const clock = new ManualClock();
    const store = new MemoryStateStore();
    const source = new FakeModelSource(["a.gguf", "b.gguf"]);
    const first = await harness({ store, clock, source });
    await clock.run(first.cache.getModel("a.gguf"));
    await clock.run(first.cache.getModel("b.gguf"));
    await first.cache.close();

    source.remove("b.gguf");
    const config = { missing_retention_days: 10 };
    const second = await harness({ store, clock, source, cache: config });
    assert.deepEqual(
      second.cache.stats().models.map((m) => [m.name, m.missing]),
      [
        ["a.gguf", false],
        ["b.gguf", true],
      ],
    );
    await second.cache.close();
    const missingSince = store.state?.models.find((m) => m.name === "b.gguf")?.missing_since;
    assert.equal(missingSince, clock.now(), "the file records since when it is missing");

    await clock.advance(9 * DAY);
    const third = await harness({ store, clock, source, cache: config });
    assert.equal(
      third.cache.stats().models.find((m) => m.name === "b.gguf")?.missing,
      true,
      "still within the retention",
    );
    await third.cache.close();
    assert.equal(
      store.state?.models.find((m) => m.name === "b.gguf")?.missing_since,
      missingSince,
      "the first sighting stands",
    );

    await clock.advance(2 * DAY);
    const fourth = await harness({ store, clock, source, cache: config });
    assert.deepEqual(
      fourth.cache.stats().models.map((m) => m.name),
      ["a.gguf"],
    );
    await fourth.cache.close();
    assert.deepEqual(
      store.state?.models.map((m) => m.name),
      ["a.gguf"],
    );
  });
});

describe("limits that hold", () => {
  it("a model measured larger than estimated while another is leased: the memory limit holds again as soon as the lease ends", async () => {
    const { cache, clock } = await harness({
      ...B_GROWS_ON_LOAD,
      cache: { max_memory_mb: 100, model_ttl_seconds: 3600 },
    });
    const a = await clock.run(cache.acquire("a.gguf"));
    const b = await clock.run(cache.acquire("b.gguf"));
    assert.equal(cache.stats().memory_bytes, 120 * MIB, "both leased: over the limit while no lease allows otherwise");
    await clock.advance(3600_000 / 2);
    assert.equal(cache.stats().memory_bytes, 120 * MIB);
    a.release();
    await clock.advance(0);
    const stats = cache.stats();
    assert.ok(
      stats.memory_bytes <= stats.memory_limit_bytes,
      `${stats.memory_bytes} ≤ ${stats.memory_limit_bytes} once the lease ended`,
    );
    assert.deepEqual(loadedNames(cache), ["b.gguf"]);
    assert.equal(stats.evictions.capacity_memory, 1);
    b.release();
  });

  it("evict of a pinned model needs force, like clear", async () => {
    const { cache, clock } = await harness({ cache: { always_warm: ["a.gguf"], enable_warmup: true } });
    await clock.run(cache.warmupDone);
    await assert.rejects(cache.evict("a.gguf"), { code: "model_pinned" });
    assert.equal(cache.loadedModels().length, 1);
    assert.equal(await cache.evict("a.gguf", { force: true }), true);
    assert.equal(cache.loadedModels().length, 0);
  });

  it("more pins than max_cached_models is refused by validation, naming both keys", () => {
    const parsed = configSchema.safeParse({
      cache: { max_cached_models: 1, always_warm: ["a.gguf"], models: { "b.gguf": { pinned: true } } },
    });
    assert.equal(parsed.success, false);
    const issue = parsed.error?.issues[0];
    assert.deepEqual(issue?.path, ["cache", "always_warm"]);
    assert.match(
      issue?.message ?? "",
      /pins 2 models \(cache\.always_warm and pinned = true\) but cache\.max_cached_models is 1/,
    );
    assert.equal(
      configSchema.safeParse({ cache: { max_cached_models: 2, always_warm: ["a.gguf", "b.gguf"] } }).success,
      true,
    );
  });

  it("a request that needs a text model is refused before anything is loaded or evicted", async () => {
    const clock = new ManualClock();
    const onnx = new FakeBackend({ timers: clock, format: "onnx" });
    const { cache } = await harness({
      clock,
      models: ["a.gguf", "ocr.onnx"],
      cache: { max_cached_models: 1 },
      backends: { onnx },
    });
    await clock.run(cache.getModel("a.gguf"));
    await assert.rejects(
      cache.acquire("ocr.onnx", { capability: "text", task: "chat completions" }),
      (e: Error & { code: string }) => {
        assert.equal(e.code, "model_capability_missing");
        assert.match(e.message, /ocr\.onnx is an ONNX tensor model and cannot do chat completions/);
        return true;
      },
    );
    assert.equal(onnx.counts.started, 0, "nothing loaded");
    assert.deepEqual(loadedNames(cache), ["a.gguf"], "nothing evicted");
    await cache.close();
  });
});

describe("the cheap hit", () => {
  it("a hit on a ready model resolves nothing, stats nothing and arms no timer; expiry is checked lazily", async () => {
    const { cache, clock, source } = await harness({ cache: { model_ttl_seconds: 60 } });
    (await clock.run(cache.acquire("a.gguf"))).release();
    const calls = { ...source.calls };
    const timers = clock.pendingTimers;
    for (let i = 0; i < 1000; i++) (await cache.acquire("a.gguf")).release();
    for (let i = 0; i < 1000; i++) await cache.getModel("a.gguf");
    assert.equal(source.calls.resolve, calls.resolve, "no resolve");
    assert.equal(source.calls.fingerprint, calls.fingerprint, "no stat");
    assert.equal(clock.pendingTimers, timers, "no timer armed per hit");
    assert.equal(cache.stats().hits, 2000);
    // Used 30 s into its 60 s TTL: the first timer finds it busy-recently and waits the rest.
    await clock.advance(30_000);
    await cache.getModel("a.gguf");
    await clock.advance(45_000);
    assert.equal(cache.loadedModels().length, 1, "75 s after load but only 45 s idle");
    await clock.advance(20_000);
    assert.equal(cache.loadedModels().length, 0);
    const expired = (await Promise.resolve(cache.stats())).evictions.ttl;
    assert.equal(expired, 1);
  });

  it("a hit is counted at once and timed when its use ends; statistics and saves read in between time it as of then", async () => {
    const store = new MemoryStateStore();
    const { cache, clock } = await harness({ store, cache: { persist_cache: true } });
    (await clock.run(cache.acquire("a.gguf"))).release();
    const lastUsed = () => cache.stats().models.find((m) => m.name === "a.gguf")?.last_used;
    await clock.advance(1000);
    const lease = await cache.acquire("a.gguf");
    assert.equal(cache.summary().hits, 1, "counted at once");
    await clock.advance(2000);
    assert.equal(lastUsed(), new Date(clock.now()).toISOString(), "a use still leased counts as of now");
    await clock.advance(3000);
    lease.release();
    assert.equal(lastUsed(), new Date(clock.now()).toISOString(), "timed when the lease ended");
    // Overlapping leases that never all end: the file check (once per interval) times their uses.
    const held = await cache.acquire("a.gguf");
    for (let i = 0; i < 3; i++) {
      await clock.advance(FINGERPRINT_CHECK_INTERVAL_MS);
      (await clock.run(cache.acquire("a.gguf"))).release();
    }
    assert.equal((await cache.saveCache()).ok, true);
    const saved = (await store.load()).state?.models.find((m) => m.name === "a.gguf");
    assert.equal(saved?.usage.requests, 6);
    assert.equal(saved?.usage.last_used_at, clock.now(), "the save times what is still leased");
    held.release();
    await cache.close();
  });

  it("the file check runs at most once per interval, on the slow path or when the model is idle, and a changed file is still noticed", async () => {
    const { cache, clock, source, backend } = await harness();
    (await clock.run(cache.acquire("a.gguf"))).release();
    source.touch("a.gguf");
    const before = source.calls.fingerprint;
    // The idle model's check falls due within the interval (and finds the change); the requests after it find the reload.
    await clock.advance(FINGERPRINT_CHECK_INTERVAL_MS);
    await clock.run(Promise.all([cache.getModel("a.gguf"), cache.getModel("a.gguf")]));
    await clock.run(cache.getModel("a.gguf"));
    assert.equal(source.calls.fingerprint - before, 1, "one check for the interval");
    assert.equal(backend.counts.loaded, 2, "the changed file was reloaded");
  });
  it("a model that can crash (a hosted one) takes the same hit path; once it crashed, hits get the reloaded model", async () => {
    const { cache, clock, source, backend } = await harness();
    (await clock.run(cache.acquire("a.gguf"))).release();
    const first = [...backend.live][0];
    assert.ok(first);
    let calls = { ...source.calls };
    for (let i = 0; i < 100; i++) (await cache.acquire("a.gguf")).release();
    assert.equal(source.calls.resolve, calls.resolve, "no resolve: the synchronous hit");
    first.crash();
    await clock.advance(0);
    const lease = await clock.run(cache.acquire("a.gguf"));
    assert.notEqual(lease.model, first, "never the crashed model");
    lease.release();
    assert.equal(backend.loadCount("a.gguf"), 2);
    calls = { ...source.calls };
    for (let i = 0; i < 100; i++) assert.equal((await cache.getModel("a.gguf")) === first, false);
    assert.equal(source.calls.resolve, calls.resolve, "the reloaded model is hit synchronously again");
    assert.equal(cache.stats().evictions.crashed, 1);
    await cache.close();
  });
});

describe("honest counts and events", () => {
  it("load time excludes the runtime's one-time start-up (Backend.ready)", async () => {
    const loads: number[] = [];
    const { cache, clock, backend } = await harness({
      models: ["a.gguf"],
      defaults: { loadMs: 300 },
      metrics: { load: (e) => loads.push(e.durationMs) },
    });
    let started = false;
    Object.assign(backend, {
      ready: () =>
        started
          ? Promise.resolve()
          : new Promise<void>((resolve) => clock.setTimeout(() => ((started = true), resolve()), 2000)),
    });
    await clock.run(cache.getModel("a.gguf"));
    assert.deepEqual(loads, [300]);
    assert.equal(cache.stats().models[0]?.avg_load_ms, 300);
    await cache.close();
  });

  it("evict events tell how long the model was idle and resident; expiry has its own event first", async () => {
    const { cache, clock, events } = await harness({ cache: { model_ttl_seconds: 10 } });
    (await clock.run(cache.acquire("a.gguf"))).release();
    await clock.advance(10_000);
    const types = events.map((e) => e.event).filter((e) => e === "expired" || e === "evict");
    assert.deepEqual(types, ["expired", "evict"]);
    const evict = events.find((e) => e.event === "evict")?.payload as CacheEvents["evict"];
    assert.equal(evict.reason, "ttl");
    assert.equal(evict.idleSeconds, 10);
    assert.equal(evict.residentSeconds, 10);
  });

  it("onAny delivers every event with its type; a load failure carries the error's code", async () => {
    const { cache, clock, events } = await harness({ behaviours: { "a.gguf": { failAlways: true } } });
    await assert.rejects(clock.run(cache.getModel("a.gguf")));
    const failed = events.find((e) => e.event === "load_failed")?.payload as CacheEvents["load_failed"];
    assert.equal(failed.code, "model_load_failed");
  });

  it("an unwritable store is reported at start: one warning, last_save.error set, the cache works in memory", async () => {
    const store = Object.assign(new MemoryStateStore(), {
      probe: async () => new Error("cannot save the cache state in /ro: permission denied"),
    });
    const { cache, clock, logger } = await harness({ models: ["a.gguf"], store });
    assert.equal(logger.warnings.length, 1);
    assert.equal(cache.stats().last_save.ok, false);
    assert.match(cache.stats().last_save.error ?? "", /permission denied/);
    await clock.run(cache.getModel("a.gguf"));
    assert.equal(cache.stats().loads, 1);
    await cache.close();
  });

  it("a state read that never finishes cannot stop a start: one warning, an empty cache that works", async () => {
    const store = { path: "memory:hung", load: () => new Promise<never>(() => {}), save: async () => ({ bytes: 0 }) };
    const { cache, clock, logger } = await harness({ models: ["a.gguf"], store, storeTimeoutMs: 50 });
    assert.equal(logger.warnings.length, 1);
    assert.match(logger.warnings[0] ?? "", /did not finish within 0\.05 s; the cache starts empty/);
    await clock.run(cache.getModel("a.gguf"));
    assert.equal(cache.stats().loads, 1);
    await cache.close();
  });

  it("a store that hangs cannot hang a save or shutdown: each call is bounded", async () => {
    const store = {
      path: "memory:hung",
      load: async () => ({ state: null, warning: null }),
      save: () => new Promise<never>(() => {}),
    };
    const { cache } = await harness({ models: ["a.gguf"], store, storeTimeoutMs: 50 });
    await cache.close();
    assert.equal(cache.stats().last_save.ok, false);
    assert.match(cache.stats().last_save.error ?? "", /did not finish within 0\.05 s/);
  });
});
