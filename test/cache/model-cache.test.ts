/** Scenario tests of the cache's promises, on the fake backend and a manual clock (issue 4, points 1–8). */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeBackend, type FakeModelBehaviour } from "../../src/backends/fake.js";
import type { TextModel } from "../../src/backends/types.js";
import { ManualClock } from "../../src/cache/clock.js";
import type { FleetEviction } from "../../src/cache/limits.js";
import { FINGERPRINT_CHECK_INTERVAL_MS, ModelCache } from "../../src/cache/model-cache.js";
import type { CacheEvents, Lease } from "../../src/cache/types.js";
import { backendSchema } from "../../src/config/schema.js";
import {
  B_GROWS_ON_LOAD,
  cacheConfig,
  harness,
  loadedNames,
  MemoryStateStore,
  MIB,
} from "../../testkit/cache-harness.js";
import { FakeModelSource } from "../../testkit/fake-models.js";

/** An evict event's identity and reason (its idle and resident seconds are checked where they matter). */
function reasonOf(payload: unknown): { name: string; key: string; reason: string } {
  const { name, key, reason } = payload as CacheEvents["evict"];
  return { name, key, reason };
}

describe("single flight (one model, one entry, one load)", () => {
  it("20 concurrent requests share one load: one miss, 19 coalesced; the next request is a hit", async () => {
    const { cache, clock, backend } = await harness({ defaults: { loadMs: 2000 } });
    const all = Promise.all(Array.from({ length: 20 }, () => cache.getModel("a.gguf")));
    const models = await clock.run(all);
    assert.equal(backend.counts.started, 1);
    assert.ok(models.every((m) => m === models[0]));
    await cache.getModel("a.gguf");
    const stats = cache.stats();
    assert.deepEqual([stats.misses, stats.coalesced, stats.hits, stats.loads], [1, 19, 1, 1]);
    assert.equal(stats.hit_rate, 0.5, "coalesced requests count neither as hits nor as misses");
    assert.equal(stats.models[0]?.requests, 21);
  });

  it("every spelling of one file is one entry", async () => {
    const { cache, clock, backend } = await harness();
    await clock.run(
      Promise.all([cache.getModel("a.gguf"), cache.getModel("./a.gguf"), cache.getModel("/models/a.gguf")]),
    );
    assert.equal(backend.counts.started, 1);
    assert.equal(cache.loadedModels().length, 1);
    assert.equal(cache.stats().models.length, 1);
  });

  it("a failed load rejects every waiter with the cause, leaves no entry, then cools down", async () => {
    const { cache, clock, backend } = await harness({
      behaviours: { "a.gguf": { failNext: 1, loadMs: 500 } },
      cache: { load_failure_cooldown_seconds: 30 },
    });
    const waiters = Array.from({ length: 5 }, () => cache.getModel("a.gguf"));
    const outcomes = await clock.run(Promise.allSettled(waiters));
    assert.equal(backend.counts.started, 1);
    for (const outcome of outcomes) {
      assert.equal(outcome.status, "rejected");
      assert.match(String((outcome as PromiseRejectedResult).reason.message), /fake load failure for a\.gguf/);
    }
    assert.equal(cache.loadedModels().length, 0);
    assert.equal(cache.stats().load_failures, 1);
    await assert.rejects(cache.getModel("a.gguf"), (e: { code: string; details: { retry_after_seconds: number } }) => {
      assert.equal(e.code, "model_load_cooldown");
      assert.equal(e.details.retry_after_seconds, 30);
      return true;
    });
    assert.equal(backend.counts.started, 1);
    await clock.advance(30_000);
    await clock.run(cache.getModel("a.gguf"));
    assert.equal(backend.counts.loaded, 1);
  });

  it("a cooldown is lifted when the file changes: the fixed file loads at once", async () => {
    const { cache, clock, backend, source } = await harness({
      behaviours: { "a.gguf": { failNext: 1 } },
      cache: { load_failure_cooldown_seconds: 30 },
    });
    await assert.rejects(clock.run(cache.getModel("a.gguf")), /fake load failure/);
    await assert.rejects(cache.getModel("a.gguf"), { code: "model_load_cooldown" });
    source.touch("a.gguf");
    await clock.run(cache.getModel("a.gguf"));
    assert.equal(backend.counts.loaded, 1, "loaded without waiting out the cooldown");
  });

  it("a name that resolves to no model counts as unknown_model_requests, not as a miss", async () => {
    const { cache, events } = await harness();
    await assert.rejects(cache.getModel("nope.gguf"), { code: "model_not_found" });
    await assert.rejects(cache.acquire("nope.gguf"), { code: "model_not_found" });
    assert.equal(cache.stats().misses, 0);
    assert.equal(cache.stats().unknown_model_requests, 2);
    assert.equal(cache.stats().hit_rate, 0);
    assert.deepEqual(
      events.filter((e) => e.event === "miss"),
      [],
    );
    assert.deepEqual(events.filter((e) => e.event === "unknown_model")[0], {
      event: "unknown_model",
      payload: { name: "nope.gguf", code: "model_not_found" },
    });
  });

  it("a request that gives up (abort) does not cancel the shared load", async () => {
    const { cache, clock, backend } = await harness({ defaults: { loadMs: 1000 } });
    const controller = new AbortController();
    const giving = cache.acquire("a.gguf", { signal: controller.signal });
    const staying = cache.acquire("a.gguf");
    await clock.advance(10);
    controller.abort();
    await assert.rejects(giving, { code: "aborted" });
    const lease = await clock.run(staying);
    assert.equal(backend.counts.loaded, 1);
    assert.equal(cache.loadedModels()[0]?.leases, 1);
    lease.release();
  });
});

describe("leases", () => {
  it("a leased model survives pressure: the new load waits until the lease ends", async () => {
    const { cache, clock, events } = await harness({ cache: { max_cached_models: 1 } });
    const a = await clock.run(cache.acquire("a.gguf"));
    let bReady = false;
    const b = cache.acquire("b.gguf").then((lease) => {
      bReady = true;
      return lease;
    });
    await clock.advance(5000);
    assert.equal(bReady, false);
    assert.equal(a.model.disposed, false);
    a.release();
    const bLease = await clock.run(b);
    assert.equal(a.model.disposed, true);
    assert.deepEqual(
      events.filter((e) => e.event === "evict").map((e) => reasonOf(e.payload)),
      [{ name: "a.gguf", key: "/models/a.gguf", reason: "capacity_count" }],
    );
    bLease.release();
  });

  it("waits only so long: CacheBusy when every resident model stays leased", async () => {
    const { cache, clock } = await harness({ cache: { max_cached_models: 1 }, busyWaitMs: 3000 });
    const a = await clock.run(cache.acquire("a.gguf"));
    await assert.rejects(clock.run(cache.acquire("b.gguf")), { code: "cache_busy" });
    assert.equal(a.model.disposed, false);
    assert.deepEqual(loadedNames(cache), ["a.gguf"]);
    a.release();
  });

  it("the idle TTL counts from the moment the last lease ends", async () => {
    const { cache, clock } = await harness({ cache: { model_ttl_seconds: 60 } });
    const first = await clock.run(cache.acquire("a.gguf"));
    const second = await cache.acquire("a.gguf");
    await clock.advance(600_000);
    assert.equal(cache.loadedModels().length, 1, "leased: never expires");
    first.release();
    await clock.advance(600_000);
    assert.equal(cache.loadedModels().length, 1, "one lease still held");
    second.release();
    assert.equal(cache.loadedModels()[0]?.expires_at, new Date(clock.now() + 60_000).toISOString());
    await clock.advance(59_999);
    assert.equal(cache.loadedModels().length, 1);
    await clock.advance(1);
    assert.equal(cache.loadedModels().length, 0);
    assert.equal(cache.stats().evictions.ttl, 1);
  });

  it("keep_alive per request: -1 forever, 0 at once, N seconds; it replaces the TTL until the next one", async () => {
    const { cache, clock } = await harness({ cache: { model_ttl_seconds: 60 } });
    (await clock.run(cache.acquire("a.gguf", { keepAlive: "forever" }))).release();
    await clock.advance(10 * 3600_000);
    assert.equal(cache.loadedModels().length, 1);
    (await cache.acquire("a.gguf")).release();
    await clock.advance(10 * 3600_000);
    assert.equal(cache.loadedModels().length, 1, "the -1 still holds: no new keep_alive was given");
    (await cache.acquire("a.gguf", { keepAlive: { afterSeconds: 5 } })).release();
    await clock.advance(5000);
    assert.equal(cache.loadedModels().length, 0);
    const lease = await clock.run(cache.acquire("b.gguf", { keepAlive: { afterSeconds: 0 } }));
    assert.equal(cache.loadedModels().length, 1);
    lease.release();
    await clock.advance(0);
    assert.equal(cache.loadedModels().length, 0);
    await assert.rejects(cache.acquire("a.gguf", { keepAlive: { afterSeconds: -5 } }), { code: "bad_request" });
  });

  it("a per-model ttl_seconds override applies to that model only", async () => {
    const { cache, clock } = await harness({
      cache: { model_ttl_seconds: 3600, models: { "a.gguf": { ttl_seconds: 10 } } },
    });
    await clock.run(Promise.all([cache.getModel("a.gguf"), cache.getModel("b.gguf")]));
    await clock.advance(10_000);
    assert.deepEqual(loadedNames(cache), ["b.gguf"]);
  });

  it("withModel releases the lease also when the function throws; a lease releases once", async () => {
    const { cache, clock } = await harness();
    await assert.rejects(clock.run(cache.withModel("a.gguf", () => Promise.reject(new Error("boom")))), /boom/);
    assert.equal(cache.loadedModels()[0]?.leases, 0);
    const lease: Lease = await cache.acquire("a.gguf");
    lease.release();
    lease.release();
    {
      using scoped = await cache.acquire("a.gguf");
      assert.equal(scoped.model.descriptor.name, "a.gguf");
      assert.equal(cache.loadedModels()[0]?.leases, 1);
    }
    assert.equal(cache.loadedModels()[0]?.leases, 0);
  });
});

/** The loaded fake model of a name. */
function live(backend: FakeBackend, name: string) {
  const model = [...backend.live].find((m) => m.descriptor.name === name);
  assert.ok(model, `${name} is loaded`);
  return model;
}

describe("limits", () => {
  const sized = [
    { name: "a.gguf", estimateBytes: 30 * MIB },
    { name: "b.gguf", estimateBytes: 30 * MIB },
    { name: "c.gguf", estimateBytes: 30 * MIB },
    { name: "d.gguf", estimateBytes: 60 * MIB },
    { name: "huge.gguf", estimateBytes: 200 * MIB },
  ];
  const measured = {
    "a.gguf": { memoryBytes: 30 * MIB },
    "b.gguf": { memoryBytes: 30 * MIB },
    "c.gguf": { memoryBytes: 30 * MIB },
    "d.gguf": { memoryBytes: 60 * MIB },
    "huge.gguf": { memoryBytes: 200 * MIB },
  };
  /** The sized models under a 100 MiB LRU limit, a.gguf then b.gguf loaded a second apart. */
  async function aThenBUnder100MiB() {
    const loaded = await harness({
      models: sized,
      behaviours: measured,
      cache: { max_memory_mb: 100, eviction_policy: "lru" },
    });
    await loaded.clock.run(loaded.cache.getModel("a.gguf"));
    await loaded.clock.advance(1000);
    await loaded.clock.run(loaded.cache.getModel("b.gguf"));
    return loaded;
  }

  it("evicts idle models until BOTH the count and the memory limit hold", async () => {
    const { cache, clock, events } = await harness({
      models: sized,
      behaviours: measured,
      cache: { max_cached_models: 3, max_memory_mb: 100, eviction_policy: "lru" },
    });
    for (const name of ["a.gguf", "b.gguf", "c.gguf"]) {
      await clock.run(cache.getModel(name));
      await clock.advance(1000);
    }
    await clock.run(cache.getModel("d.gguf"));
    const stats = cache.stats();
    assert.deepEqual(loadedNames(cache), ["c.gguf", "d.gguf"]);
    assert.ok(stats.memory_bytes <= stats.memory_limit_bytes);
    assert.ok(stats.models_loaded <= stats.max_cached_models);
    assert.deepEqual(
      events.filter((e) => e.event === "evict").map((e) => reasonOf(e.payload)),
      [
        { name: "a.gguf", key: "/models/a.gguf", reason: "capacity_memory" },
        { name: "b.gguf", key: "/models/b.gguf", reason: "capacity_memory" },
      ],
    );
    assert.equal(stats.evictions.capacity_memory, 2);
  });

  it("counts a count-only eviction as capacity_count", async () => {
    const { cache, clock } = await harness({ cache: { max_cached_models: 2, eviction_policy: "lru" } });
    for (const name of ["a.gguf", "b.gguf", "c.gguf"]) {
      await clock.run(cache.getModel(name));
      await clock.advance(1000);
    }
    assert.deepEqual(loadedNames(cache), ["b.gguf", "c.gguf"]);
    assert.equal(cache.stats().evictions.capacity_count, 1);
  });

  it("in a fleet, a spare copy goes before the model the policy would evict", async () => {
    const { cache, clock } = await harness({ cache: { max_cached_models: 2, eviction_policy: "lru" } });
    for (const name of ["a.gguf", "b.gguf", "b.gguf"]) {
      await clock.run(cache.getModel(name));
      await clock.advance(1000);
    }
    // LRU would evict a.gguf; b.gguf is held elsewhere in the fleet and not needed here.
    cache.setFleet({
      isSpare: (name) => name === "b.gguf",
      loadRate: () => null,
      usageElsewhere: () => ({ perHour: 0, copies: 1 }),
    });
    await clock.run(cache.getModel("c.gguf"));
    assert.deepEqual(loadedNames(cache), ["a.gguf", "c.gguf"]);
    cache.setFleet(null);
    await clock.run(cache.getModel("b.gguf"));
    assert.deepEqual(loadedNames(cache), ["b.gguf", "c.gguf"], "without spares, the policy's choice again");
  });

  it("in a fleet, eviction weighs the other nodes' usage and the fleet's load rate", async () => {
    const fleet = (o: Partial<FleetEviction> = {}): FleetEviction => ({
      isSpare: () => false,
      loadRate: () => null,
      usageElsewhere: () => ({ perHour: 0, copies: 1 }),
      ...o,
    });
    const memory = { memoryBytes: 30 * MIB };
    const twoThenC = async (behaviours: Record<string, FakeModelBehaviour>, uses: Record<string, number>) => {
      const { cache, clock } = await harness({ behaviours, cache: { max_cached_models: 2 } });
      for (const [name, count] of Object.entries(uses)) {
        for (let i = 0; i < count; i++) await clock.run(cache.getModel(name));
        await clock.advance(1000);
      }
      return { cache, clock };
    };
    const even = { "a.gguf": { ...memory, loadMs: 100 }, "b.gguf": { ...memory, loadMs: 100 } };

    // b.gguf moved here (one use) from a node where it was used much: a.gguf, used 5 times here only, goes.
    const moved = await twoThenC(even, { "a.gguf": 5, "b.gguf": 1 });
    moved.cache.setFleet(fleet({ usageElsewhere: (name) => ({ perHour: name === "b.gguf" ? 5 : 0, copies: 1 }) }));
    await moved.clock.run(moved.cache.getModel("c.gguf"));
    assert.deepEqual(loadedNames(moved.cache), ["b.gguf", "c.gguf"]);
    const local = await twoThenC(even, { "a.gguf": 5, "b.gguf": 1 });
    await local.clock.run(local.cache.getModel("c.gguf"));
    assert.deepEqual(loadedNames(local.cache), ["a.gguf", "c.gguf"], "on a single node, the local counts");

    // a.gguf's one load took 50× the fleet's rate (a busy moment): capped, it goes before b.gguf, used more.
    const slow = { "a.gguf": { ...memory, loadMs: 5000 }, "b.gguf": { ...memory, loadMs: 100 } };
    const capped = await twoThenC(slow, { "a.gguf": 2, "b.gguf": 3 });
    capped.cache.setFleet(fleet({ loadRate: () => 100 / (30 * MIB) }));
    await capped.clock.run(capped.cache.getModel("c.gguf"));
    assert.deepEqual(loadedNames(capped.cache), ["b.gguf", "c.gguf"]);
    const measuredOnly = await twoThenC(slow, { "a.gguf": 2, "b.gguf": 3 });
    await measuredOnly.clock.run(measuredOnly.cache.getModel("c.gguf"));
    assert.deepEqual(loadedNames(measuredOnly.cache), ["a.gguf", "c.gguf"], "on a single node, as measured");
  });

  it("reserves the estimate before loading: concurrent loads never overcommit memory", async () => {
    const { cache, clock, backend } = await harness({
      models: sized,
      behaviours: measured,
      defaults: { loadMs: 1000 },
      cache: { max_cached_models: 5, max_memory_mb: 100 },
    });
    let peak = 0;
    cache.on("load", () => {
      const live = [...backend.live].reduce((sum, m) => sum + m.memoryBytes, 0);
      peak = Math.max(peak, live);
    });
    const all = ["a.gguf", "b.gguf", "c.gguf", "d.gguf", "a.gguf", "d.gguf"].map((n) => cache.getModel(n));
    await clock.run(Promise.all(all));
    assert.ok(peak <= 100 * MIB, `peak ${peak / MIB} MiB`);
    assert.ok(cache.stats().memory_bytes <= 100 * MIB);
  });

  it("replaces the estimate with the measured figure", async () => {
    const { cache, clock } = await harness({
      models: [{ name: "a.gguf", estimateBytes: 10 * MIB }],
      behaviours: { "a.gguf": { memoryBytes: 25 * MIB } },
      cache: { max_memory_mb: 100 },
    });
    let whileLoading = 0;
    const loading = cache.getModel("a.gguf");
    await clock.advance(50);
    whileLoading = cache.stats().memory_bytes;
    await clock.run(loading);
    assert.equal(whileLoading, 10 * MIB);
    assert.equal(cache.stats().memory_bytes, 25 * MIB);
    assert.equal(cache.stats().models[0]?.memory_bytes, 25 * MIB);
  });

  it("accounts a model's re-measured memory figure: a model that grew makes room for the next load by eviction", async () => {
    const { cache, clock, backend } = await aThenBUnder100MiB();
    const a = live(backend, "a.gguf");
    a.memoryBytes = 50 * MIB; // its host's resident memory grew after the load
    assert.equal(cache.stats().memory_bytes, 80 * MIB);
    assert.equal(cache.loadedModels().find((m) => m.name === "a.gguf")?.memory_bytes, 50 * MIB);
    // 80 + 30 > 100: the next load evicts, counted on the new figure (with the load-time figures it would all fit).
    await clock.run(cache.getModel("c.gguf"));
    assert.deepEqual(loadedNames(cache), ["b.gguf", "c.gguf"]);
    assert.equal(cache.stats().evictions.capacity_memory, 1);
  });

  it("a re-measured figure that puts the cache over max_memory_mb makes idle models leave at once; a leased one stays", async () => {
    const { cache, clock, backend } = await aThenBUnder100MiB();
    await clock.advance(1000);
    const lease = await clock.run(cache.acquire("c.gguf"));
    const c = live(backend, "c.gguf");
    c.memoryBytes = 50 * MIB; // 30 + 30 + 50 > 100: the least recently used idle model goes, without any request
    await clock.advance(0);
    assert.deepEqual(loadedNames(cache), ["b.gguf", "c.gguf"]);
    assert.equal(cache.stats().memory_bytes, 80 * MIB);
    assert.equal(cache.stats().evictions.capacity_memory, 1);
    lease.release();
    await cache.close();
  });

  it("a model still being unloaded counts as gone: a lease released meanwhile evicts no second model", async () => {
    const { cache, clock } = await harness({
      models: sized,
      behaviours: { "a.gguf": { memoryBytes: 60 * MIB, disposeMs: 1000 }, "b.gguf": { memoryBytes: 60 * MIB } },
      cache: { max_memory_mb: 100 },
    });
    await clock.run(cache.getModel("a.gguf"));
    await clock.advance(1000);
    // b's estimate fits beside a; its measured 60 MiB does not: a (idle) is evicted, and takes 1 s to end.
    const lease = await clock.run(cache.acquire("b.gguf"));
    assert.deepEqual(
      cache.loadedModels().map((m) => [m.name, m.state]),
      [
        ["a.gguf", "unloading"],
        ["b.gguf", "ready"],
      ],
    );
    lease.release(); // still over the limit until a's memory is back, but a is on its way out
    await clock.advance(1000);
    assert.deepEqual(loadedNames(cache), ["b.gguf"]);
    assert.equal(cache.stats().evictions.capacity_memory, 1);
    await cache.close();
  });

  it("refuses a model that can never fit, without emptying the cache", async () => {
    const { cache, clock, backend } = await harness({
      models: sized,
      behaviours: measured,
      cache: { max_memory_mb: 100 },
    });
    await clock.run(cache.getModel("a.gguf"));
    await assert.rejects(clock.run(cache.getModel("huge.gguf")), (e: { code: string; message: string }) => {
      assert.equal(e.code, "model_too_large");
      assert.match(e.message, /huge\.gguf needs 200 MiB but the cache's memory limit is 100 MiB/);
      return true;
    });
    assert.deepEqual(loadedNames(cache), ["a.gguf"]);
    assert.equal(backend.counts.started, 1);
    assert.equal(cache.stats().load_failures, 0);
  });

  it("max_memory_mb = 0 means half the system memory, or no limit when unknown", async () => {
    const { cache } = await harness({ cache: { max_memory_mb: 0 } });
    assert.equal(cache.stats().memory_limit_bytes, 0);
  });
});

describe("eviction policy in the cache", () => {
  it("cost-aware and reload-cost keep the slow-to-load model that lru would drop", async () => {
    const run = async (policy: "lru" | "cost-aware" | "reload-cost") => {
      const { cache, clock } = await harness({
        behaviours: { "a.gguf": { loadMs: 30_000 }, "b.gguf": { loadMs: 100 }, "c.gguf": { loadMs: 100 } },
        cache: { max_cached_models: 2, eviction_policy: policy },
      });
      await clock.run(cache.getModel("a.gguf"));
      await clock.advance(1000);
      await clock.run(cache.getModel("b.gguf"));
      await clock.advance(1000);
      await clock.run(cache.getModel("c.gguf"));
      return loadedNames(cache);
    };
    assert.deepEqual(await run("lru"), ["b.gguf", "c.gguf"]);
    assert.deepEqual(await run("cost-aware"), ["a.gguf", "c.gguf"]);
    assert.deepEqual(await run("reload-cost"), ["a.gguf", "c.gguf"]);
  });

  it("reload-cost keeps a big, often used model that lru and cost-aware (value per byte) drop when a place is short", async () => {
    // 1000 MiB and 3 places. a (600 MiB, used twice) takes 0.6 of the memory, b and c (100 MiB) a place (1/3) each:
    // value a 2/0.6 ≈ 3.3, b and c 1/(1/3) = 3 (per second of load). d (300 MiB) needs one place and 100 MiB: b alone
    // covers it at the least loss. lru drops a (the least recent); GDSF per MiB drops a (2/600 < 1/100).
    const sizes = { "a.gguf": 600, "b.gguf": 100, "c.gguf": 100, "d.gguf": 300 };
    const run = async (policy: "lru" | "cost-aware" | "reload-cost") => {
      const { cache, clock } = await harness({
        models: Object.entries(sizes).map(([name, mib]) => ({ name, estimateBytes: mib * MIB })),
        behaviours: Object.fromEntries(
          Object.entries(sizes).map(([name, mib]) => [name, { loadMs: 1000, memoryBytes: mib * MIB }]),
        ),
        cache: { max_cached_models: 3, max_memory_mb: 1000, eviction_policy: policy },
      });
      for (const name of ["a.gguf", "a.gguf", "b.gguf", "c.gguf", "d.gguf"]) {
        await clock.run(cache.getModel(name));
        await clock.advance(1000);
      }
      return cache
        .loadedModels()
        .map((m) => m.name)
        .sort();
    };
    assert.deepEqual(await run("reload-cost"), ["a.gguf", "c.gguf", "d.gguf"]);
    assert.deepEqual(await run("lru"), ["b.gguf", "c.gguf", "d.gguf"]);
    assert.deepEqual(await run("cost-aware"), ["b.gguf", "c.gguf", "d.gguf"]);
  });
});

describe("file changes", () => {
  it("a hit notices a changed file (at most every few seconds) and reloads it once leases end", async () => {
    const { cache, clock, backend, source } = await harness();
    const old = await clock.run(cache.acquire("a.gguf"));
    for (let i = 0; i < 50; i++) (await cache.acquire("a.gguf")).release();
    assert.equal(source.calls.fingerprint, 0, "no stat per hit");
    source.touch("a.gguf");
    await clock.advance(FINGERPRINT_CHECK_INTERVAL_MS);
    const fresh = cache.acquire("a.gguf");
    await clock.advance(1000);
    assert.equal(old.model.disposed, false, "the in-flight request keeps its model");
    old.release();
    const lease = await clock.run(fresh);
    assert.notEqual(lease.model, old.model);
    assert.equal(old.model.disposed, true);
    assert.equal(backend.counts.loaded, 2);
    assert.equal(cache.stats().evictions.file_changed, 1);
    assert.equal(source.calls.fingerprint, 1);
    lease.release();
    await clock.advance(FINGERPRINT_CHECK_INTERVAL_MS);
    (await cache.acquire("a.gguf")).release();
    assert.equal(backend.counts.loaded, 2, "the reloaded file is not seen as changed again");
  });

  it("a deleted file: the model is unloaded once its last lease ends, long before its TTL", async () => {
    const { cache, clock, source } = await harness();
    const loaded = () => loadedNames(cache);
    const lease = await clock.run(cache.acquire("a.gguf"));
    source.remove("a.gguf");
    await clock.advance(FINGERPRINT_CHECK_INTERVAL_MS * 2);
    assert.deepEqual(loaded(), ["a.gguf"], "in use: kept");
    lease.release();
    await clock.advance(1);
    assert.deepEqual(loaded(), [], "gone once idle");
    assert.equal(cache.stats().evictions.file_changed, 1);

    // Released within the check interval: the check waits out the interval, then unloads.
    (await clock.run(cache.acquire("b.gguf"))).release();
    source.remove("b.gguf");
    // The load took 100 ms of the interval (the check counts from the load's start).
    await clock.advance(FINGERPRINT_CHECK_INTERVAL_MS - 300);
    assert.deepEqual(loaded(), ["b.gguf"]);
    await clock.advance(400);
    assert.deepEqual(loaded(), []);
    assert.equal(cache.stats().evictions.file_changed, 2);
  });

  it("a models folder that is gone altogether (unmounted) unloads nothing", async () => {
    const { cache, clock, source } = await harness();
    (await clock.run(cache.acquire("a.gguf"))).release();
    source.folderPresent = false;
    await clock.advance(FINGERPRINT_CHECK_INTERVAL_MS * 3);
    assert.deepEqual(loadedNames(cache), ["a.gguf"]);
    assert.equal(cache.stats().evictions.file_changed, 0);
    source.folderPresent = true;
  });
});

describe("crashes", () => {
  it("a crashed model leaves at once (reason crashed), even leased; others stay; the next request loads it again", async () => {
    const { cache, clock, backend, events } = await harness();
    await clock.run(cache.getModel("b.gguf"));
    const lease = await clock.run(cache.acquire("a.gguf"));
    live(backend, "a.gguf").crash();
    await clock.advance(0);
    await assert.rejects((lease.model as TextModel).complete("x"), { code: "model_crashed" });
    assert.deepEqual(loadedNames(cache), ["b.gguf"]);
    assert.equal(cache.stats().evictions.crashed, 1);
    assert.deepEqual(
      events.filter((e) => e.event === "evict").map((e) => e.payload),
      [
        { name: "a.gguf", key: "/models/a.gguf", reason: "crashed", idleSeconds: 0, residentSeconds: 0 }, // leased: idle 0
      ],
    );
    lease.release(); // the request's lease ends after the model is gone: nothing breaks
    const again = await clock.run(cache.getModel("a.gguf"));
    assert.equal((await (again as TextModel).complete("hello")).text, "hello");
    assert.equal(backend.loadCount("a.gguf"), 2);
    assert.equal(cache.stats().load_failures, 0);
  });

  it("a second crash within load_failure_cooldown_seconds starts the cooldown, so a crashing model cannot crash-loop", async () => {
    const { cache, clock, backend } = await harness({ cache: { load_failure_cooldown_seconds: 30 } });
    await clock.run(cache.getModel("a.gguf"));
    live(backend, "a.gguf").crash();
    await clock.advance(40_000);
    await clock.run(cache.getModel("a.gguf")); // a crash long after the last one: reloads at once
    live(backend, "a.gguf").crash();
    await clock.advance(1000);
    await clock.run(cache.getModel("a.gguf"));
    live(backend, "a.gguf").crash(); // 1 s after the previous crash: repeated
    await clock.advance(0);
    await assert.rejects(
      cache.getModel("a.gguf"),
      (error: Error & { code?: string; details?: Record<string, unknown> }) => {
        assert.equal(error.code, "model_load_cooldown");
        assert.equal(error.details?.retry_after_seconds, 30);
        return true;
      },
    );
    await clock.advance(30_000);
    await clock.run(cache.getModel("a.gguf"));
    assert.equal(cache.stats().evictions.crashed, 3);
  });

  it("a crash of a model already unloaded, or after close, is ignored", async () => {
    const { cache, clock, backend } = await harness();
    await clock.run(cache.getModel("a.gguf"));
    const model = live(backend, "a.gguf");
    assert.equal(await cache.evict("a.gguf"), true);
    model.crash();
    await clock.advance(0);
    await cache.close();
    assert.equal(cache.stats().evictions.crashed, 0);
    assert.equal(cache.stats().evictions.manual, 1);
  });
});

describe("evict, clear, pins", () => {
  it("evict unloads with reason manual once leases end; false when not loaded", async () => {
    const { cache, clock } = await harness();
    assert.equal(await cache.evict("a.gguf"), false);
    const lease = await clock.run(cache.acquire("a.gguf"));
    let evicted = false;
    const evicting = cache.evict("a.gguf").then((r) => (evicted = r));
    await clock.advance(1000);
    assert.equal(evicted, false);
    lease.release();
    assert.equal(await evicting, true);
    assert.equal(cache.stats().evictions.manual, 1);
    assert.equal(lease.model.disposed, true);
  });

  it("evicting a loading model aborts the load; its waiters load it afresh", async () => {
    const { cache, clock, backend } = await harness({ defaults: { loadMs: 5000 } });
    const waiting = cache.getModel("a.gguf");
    await clock.advance(100);
    assert.equal(await cache.evict("a.gguf"), true);
    const model = await clock.run(waiting);
    assert.equal(backend.counts.aborted, 1);
    assert.equal(backend.counts.loaded, 1);
    assert.equal(model.disposed, false);
  });

  it("pinned (always_warm) models load at start, are never evicted, and clear needs force", async () => {
    const { cache, clock, backend } = await harness({
      cache: { always_warm: ["a.gguf"], models: { "b.gguf": { pinned: true } }, max_cached_models: 3 },
    });
    const warm = await clock.run(cache.warmupDone);
    assert.deepEqual(warm.loaded, ["a.gguf", "b.gguf"]);
    for (const name of ["c.gguf", "d.gguf", "c.gguf", "d.gguf"]) {
      await clock.run(cache.getModel(name));
    }
    assert.deepEqual(
      cache.loadedModels().map((m) => [m.name, m.pinned]),
      [
        ["a.gguf", true],
        ["b.gguf", true],
        ["d.gguf", false],
      ],
    );
    await clock.advance(10 * 3600_000);
    assert.equal(cache.loadedModels().filter((m) => m.pinned).length, 2, "no TTL for pinned models");
    assert.deepEqual(await cache.clear(), []);
    await assert.rejects(cache.clear({ model: "a.gguf" }), { code: "model_pinned" });
    assert.deepEqual(await cache.clear({ model: "a.gguf", force: true }), ["a.gguf"]);
    assert.equal(backend.live.size, 1);
    assert.deepEqual(await cache.clear({ force: true, stats: true }), ["b.gguf"]);
    const stats = cache.stats();
    assert.deepEqual([stats.hits, stats.misses, stats.models.length, stats.models_loaded], [0, 0, 0, 0]);
  });

  it("a pinned model that fills every place refuses others with ModelTooLarge", async () => {
    const { cache, clock } = await harness({ cache: { always_warm: ["a.gguf"], max_cached_models: 1 } });
    await clock.run(cache.warmupDone);
    await assert.rejects(clock.run(cache.getModel("b.gguf")), { code: "model_too_large" });
  });
});

describe("statistics", () => {
  it("has exactly SPEC.md's fields, with frequency, average and p95 load time", async () => {
    const { cache, clock } = await harness({ cache: { usage_half_life_hours: 1, model_ttl_seconds: 1 } });
    // Three rounds of load (100 ms on the fake) then TTL expiry: three measured loads.
    for (let round = 0; round < 3; round++) {
      await clock.run(cache.getModel("a.gguf"));
      await clock.advance(1000);
    }
    const stats = cache.stats();
    assert.deepEqual(
      Object.keys(stats).sort(),
      [
        "evictions",
        "hit_rate",
        "hits",
        "last_save",
        "load_failures",
        "loads",
        "max_cached_models",
        "memory_bytes",
        "memory_limit_bytes",
        "misses",
        "models",
        "models_loaded",
        "state_file",
        "unsaved_changes",
        "warmups",
        "unknown_model_requests",
        "coalesced",
        "prompt_cache",
      ].sort(),
    );
    // SPEC order: the fields added in the second round come after the existing ones, the third round's after those.
    assert.deepEqual(Object.keys(stats).slice(-4), ["models", "unknown_model_requests", "coalesced", "prompt_cache"]);
    assert.deepEqual(Object.keys(stats.evictions), [
      "capacity_count",
      "capacity_memory",
      "ttl",
      "manual",
      "file_changed",
      "clear",
      "shutdown",
      "crashed",
    ]);
    assert.deepEqual(Object.keys(stats.last_save).sort(), ["at", "bytes", "duration_ms", "error", "ok"]);
    const model = stats.models[0];
    assert.ok(model);
    assert.deepEqual(
      Object.keys(model).sort(),
      [
        "avg_load_ms",
        "expires_at",
        "frequency_per_hour",
        "hits",
        "key",
        "last_used",
        "loaded",
        "loads",
        "memory_bytes",
        "misses",
        "name",
        "p95_load_ms",
        "pinned",
        "priority",
        "requests",
        "missing",
      ].sort(),
    );
    assert.equal(Object.keys(model).at(-1), "missing");
    assert.equal(model.loads, 3);
    assert.equal(model.avg_load_ms, 100);
    assert.equal(model.p95_load_ms, 100);
    assert.equal(stats.hit_rate, 0);
    assert.ok(model.frequency_per_hour > 0);
  });

  it("decays the frequency with the configured half-life and updates last_used on every use", async () => {
    const { cache, clock } = await harness({ cache: { usage_half_life_hours: 2, model_ttl_seconds: 0 } });
    await clock.run(cache.getModel("a.gguf"));
    const before = cache.stats().models[0]?.frequency_per_hour ?? 0;
    await clock.advance(2 * 3600_000);
    const after = cache.stats().models[0]?.frequency_per_hour ?? 0;
    assert.ok(Math.abs(after - before / 2) < 1e-12);
    await cache.getModel("a.gguf");
    assert.equal(cache.stats().models[0]?.last_used, new Date(clock.now()).toISOString());
    assert.equal(cache.stats().hit_rate, 0.5);
  });
});

describe("lifecycle", () => {
  it("close unloads everything (shutdown), is idempotent, and later use throws Disposed", async () => {
    const { cache, clock, backend } = await harness();
    const lease = await clock.run(cache.acquire("a.gguf"));
    await clock.run(cache.getModel("b.gguf"));
    await Promise.all([cache.close(), cache.close()]);
    assert.equal(backend.live.size, 0);
    assert.equal(lease.model.disposed, true);
    assert.equal(cache.stats().evictions.shutdown, 2);
    await assert.rejects(cache.getModel("a.gguf"), { code: "disposed" });
    await cache[Symbol.asyncDispose]();
  });

  it("`await using` a cache: leaving the block unloads every model (reason shutdown) and saves the state", async () => {
    const clock = new ManualClock();
    const backend = new FakeBackend({ timers: clock });
    const store = new MemoryStateStore();
    const source = new FakeModelSource(["a.gguf", "b.gguf"]);
    const evictions: Array<CacheEvents["evict"]> = [];
    let escaped: ModelCache | null = null;
    {
      await using cache = await ModelCache.create(cacheConfig(), backendSchema.parse({}), source, {
        backends: { gguf: backend },
        clock,
        store,
      });
      escaped = cache;
      cache.on("evict", (e) => evictions.push(e));
      await clock.run(cache.getModel("a.gguf"));
      await clock.run(cache.getModel("b.gguf"));
      assert.equal(backend.live.size, 2);
      assert.equal(store.saves, 0);
    }
    assert.equal(backend.live.size, 0);
    assert.equal(backend.counts.disposed, 2);
    assert.deepEqual(evictions.map((e) => [e.name, e.reason]).sort(), [
      ["a.gguf", "shutdown"],
      ["b.gguf", "shutdown"],
    ]);
    assert.equal(escaped.stats().evictions.shutdown, 2);
    assert.equal(store.saves, 1, "the final save ran");
    assert.equal(store.state?.counters.evictions.shutdown, 2, "saved after the unloads");
    assert.deepEqual(
      store.state?.models.map((m) => m.name),
      ["a.gguf", "b.gguf"],
    );
    await assert.rejects(escaped.getModel("a.gguf"), { code: "disposed" });
  });

  it("`await using` a cache closes it also when the block throws", async () => {
    const clock = new ManualClock();
    const backend = new FakeBackend({ timers: clock });
    const store = new MemoryStateStore();
    await assert.rejects(async () => {
      await using cache = await ModelCache.create(
        cacheConfig(),
        backendSchema.parse({}),
        new FakeModelSource(["a.gguf"]),
        {
          backends: { gguf: backend },
          clock,
          store,
        },
      );
      await clock.run(cache.getModel("a.gguf"));
      throw new Error("the caller failed");
    }, /the caller failed/);
    assert.equal(backend.counts.disposed, 1);
    assert.equal(store.state?.counters.evictions.shutdown, 1);
  });

  it("`using` / `await using` a lease releases it at block end (also on throw); the idle TTL starts then", async () => {
    const { cache, clock } = await harness({ cache: { model_ttl_seconds: 60 } });
    const resident = () => cache.loadedModels()[0];
    {
      using lease = await clock.run(cache.acquire("a.gguf"));
      assert.equal(lease.model.kind, "text");
      assert.equal(resident()?.leases, 1);
      assert.equal(resident()?.expires_at, null, "no TTL while leased");
    }
    assert.equal(resident()?.leases, 0);
    assert.notEqual(resident()?.expires_at, null, "the TTL runs from the release");
    {
      await using lease = await cache.acquire("a.gguf");
      assert.equal(lease.descriptor.name, "a.gguf");
      assert.equal(resident()?.leases, 1);
    }
    assert.equal(resident()?.leases, 0);
    await assert.rejects(async () => {
      using lease = await cache.acquire("a.gguf");
      assert.equal(resident()?.leases, 1);
      throw new Error(`request on ${lease.descriptor.name} failed`);
    }, /request on a\.gguf failed/);
    assert.equal(resident()?.leases, 0);
    await clock.advance(60_000);
    assert.equal(cache.loadedModels().length, 0, "expired 60 s after the last release");
    assert.equal(cache.stats().evictions.ttl, 1);
  });

  it("close aborts a load in flight", async () => {
    const { cache, clock, backend } = await harness({ defaults: { loadMs: 60_000 } });
    const loading = cache.getModel("a.gguf");
    await clock.advance(10);
    await cache.close();
    await assert.rejects(loading, (e: { code: string }) => ["aborted", "disposed"].includes(e.code));
    assert.equal(backend.counts.aborted, 1);
  });
});

describe("loading details", () => {
  it("a model source whose metadata fails does not fail the load; the state then holds memory only", async () => {
    class NoHeaders extends FakeModelSource {
      metadataCalls = 0;
      async metadata(): Promise<never> {
        this.metadataCalls++;
        throw new Error("header unreadable");
      }
    }
    const source = new NoHeaders(["a.gguf"]);
    const store = new MemoryStateStore();
    const { cache, clock } = await harness({ source, store, behaviours: { "a.gguf": { memoryBytes: 2 * MIB } } });
    await clock.run(cache.getModel("a.gguf"));
    await cache.saveCache();
    assert.equal(source.metadataCalls, 1, "asked once, at the load");
    assert.deepEqual(store.state?.models[0]?.metadata, { memory_bytes: 2 * MIB });
  });

  it("load() preloads without counting a request, sets keep-alive and reports the model", async () => {
    const { cache, clock } = await harness({ behaviours: { "a.gguf": { memoryBytes: 3 * MIB, loadMs: 250 } } });
    const info = await clock.run(cache.load("a.gguf", { keepAlive: { afterSeconds: 30 } }));
    assert.deepEqual(
      { ...info, last_used: null },
      {
        name: "a.gguf",
        key: "/models/a.gguf",
        format: "gguf",
        state: "ready",
        size_bytes: 1000,
        memory_bytes: 3 * MIB,
        leases: 0,
        pinned: false,
        last_used: null,
        expires_at: new Date(clock.now() + 30_000).toISOString(),
        load_ms: 250,
        pid: null,
        // The fake model source decides no sequences (`ModelSource.sequences` is the GGUF manager's).
        sequences: null,
      },
    );
    assert.deepEqual([cache.stats().hits, cache.stats().misses, cache.stats().loads], [0, 0, 1]);
    await clock.advance(30_000);
    assert.equal(cache.loadedModels().length, 0);
  });

  it("a model measured larger than estimated makes the cache evict idle models to get back under the limit", async () => {
    const { cache, clock } = await harness({
      ...B_GROWS_ON_LOAD,
      cache: { max_memory_mb: 100 },
    });
    await clock.run(cache.getModel("a.gguf"));
    await clock.run(cache.getModel("b.gguf"));
    await clock.advance(0);
    assert.deepEqual(loadedNames(cache), ["b.gguf"]);
    assert.equal(cache.stats().memory_bytes, 80 * MIB);
    assert.equal(cache.stats().evictions.capacity_memory, 1);
  });

  it("wraps a backend's plain error as ModelLoadFailed with the cause; no backend for a format is a load failure", async () => {
    const broken = new Error("out of file handles");
    const failing = await harness();
    failing.cache["backends"].gguf = {
      format: "gguf",
      load: async () => Promise.reject(broken),
      dispose: async () => {},
    };
    await assert.rejects(failing.cache.getModel("a.gguf"), (e: Error & { code: string }) => {
      assert.equal(e.code, "model_load_failed");
      assert.equal(e.cause, broken);
      assert.match(e.message, /could not load a\.gguf: out of file handles/);
      return true;
    });
    failing.cache["backends"].gguf = undefined;
    await assert.rejects(failing.cache.getModel("b.gguf"), /no backend loads gguf models/);
  });

  it("keeps the restore result for callers that subscribe after create", async () => {
    const { cache } = await harness();
    assert.deepEqual(cache.restored, { models: 0, missing: 0, warning: null });
  });
});

describe("clear with statistics", () => {
  it("clear({ model, stats }) resets that model's statistics only, loaded or not", async () => {
    const { cache, clock } = await harness({ cache: { model_ttl_seconds: 1 } });
    await clock.run(cache.getModel("a.gguf"));
    await clock.run(cache.getModel("b.gguf"));
    await clock.advance(1000);
    assert.equal(cache.loadedModels().length, 0);
    assert.deepEqual(await cache.clear({ model: "a.gguf", stats: true }), []);
    assert.deepEqual(
      cache.stats().models.map((m) => m.name),
      ["b.gguf"],
    );
    assert.equal(cache.stats().misses, 2, "the cache-wide counters stay");
  });
});
