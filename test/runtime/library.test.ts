/** The library form of SPEC.md, through the public entry point, with the real backends and the state file. */
import assert from "node:assert/strict";
import { access } from "node:fs/promises";
import { join } from "node:path";
import { it } from "node:test";
import { FakeBackend } from "../../src/backends/fake.js";
import { ManualClock } from "../../src/cache/clock.js";
import { backendSchema } from "../../src/config/schema.js";
import { loadConfig, ModelCache, type ModelCacheOptions, ModelManager } from "../../src/index.js";
import { cacheConfig, MemoryStateStore } from "../../testkit/cache-harness.js";
import { FakeModelSource } from "../../testkit/fake-models.js";
import { tinyModelsDir } from "../../testkit/models.js";
import { tempDir } from "../../testkit/tmp.js";

it("ModelCache.new(config.cache, config.backend, new ModelManager(dir)): load, use with a lease, save, close", async (t) => {
  const { dir } = await tinyModelsDir(t);
  const home = await tempDir(t);
  const config = await loadConfig({
    env: { HOME: home, XDG_CONFIG_HOME: join(home, "xdg") },
    cwd: home,
    flags: [
      { key: "models_dir", value: dir, flag: "--models-dir" },
      { key: "cache.cache_dir", value: join(home, "cache"), flag: "--cache-dir" },
      { key: "backend.context_size", value: 256, flag: "--context-size" },
      { key: "backend.gpu", value: false, flag: "--gpu" },
      { key: "backend.threads", value: 1, flag: "--threads" },
    ],
  });
  const cache = await ModelCache.new(config.cache, config.backend, new ModelManager(config.models_dir));
  assert.ok(cache instanceof ModelCache);
  const model = await cache.getModel("tiny.gguf");
  assert.equal(model.kind, "text");
  const result = await cache.withModel("tiny.gguf", (m) => {
    assert.equal(cache.loadedModels()[0]?.leases, 1, "withModel holds a lease during the call");
    return m.kind === "text" ? m.complete("Hello", { maxTokens: 3, temperature: 0 }) : null;
  });
  assert.ok(result && result.usage.completionTokens > 0);
  assert.equal(cache.loadedModels()[0]?.leases, 0);
  const saved = await cache.saveCache();
  assert.equal(saved.ok, true);
  await access(join(config.cache.cache_dir, "cache_state.bin.zst"));
  const stats = cache.stats();
  assert.equal(stats.misses, 1);
  assert.equal(stats.hits, 1);
  await cache.close();
  assert.equal(cache.stats().evictions.shutdown, 1);
});

it("ModelCache.new(…, { metrics }): listeners given at creation receive the start-up restore and warm-up's load", async () => {
  const source = new FakeModelSource(["a.gguf", "b.gguf"]);
  const store = new MemoryStateStore();
  const clock = new ManualClock();
  const options = () => ({ backends: { gguf: new FakeBackend({ timers: clock }) }, store, clock });
  const first = await ModelCache.new(cacheConfig(), backendSchema.parse({}), source, options());
  await clock.run(first.getModel("a.gguf"));
  await first.close();

  const seen: Array<[string, unknown]> = [];
  const second = await ModelCache.new(
    cacheConfig({ enable_warmup: true, warmup_strategy: "usage" }),
    backendSchema.parse({}),
    source,
    {
      ...options(),
      metrics: {
        restore: (e) => seen.push(["restore", e]),
        load: (e) => seen.push(["load", e.name]),
        warmup: (e) => seen.push(["warmup", e.loaded]),
        hit: (e) => seen.push(["hit", e.name]),
      },
    },
  );
  assert.deepEqual(
    seen[0],
    ["restore", { models: 1, missing: 0, warning: null }],
    "the restore ran inside new(), before it resolved",
  );
  await clock.run(second.warmupDone);
  await second.getModel("a.gguf");
  assert.deepEqual(seen, [
    ["restore", { models: 1, missing: 0, warning: null }],
    ["load", "a.gguf"],
    ["warmup", ["a.gguf"]],
    ["hit", "a.gguf"],
  ]);
  await second.close();
});

it("ModelCache.new(…, { metrics }) refuses an event name that does not exist, naming the ones that do", async () => {
  const metrics = { loaded: () => {} } as unknown as ModelCacheOptions["metrics"];
  await assert.rejects(
    ModelCache.new(cacheConfig(), backendSchema.parse({}), new FakeModelSource([]), {
      backends: {},
      store: null,
      metrics,
    }),
    (e: { code: string; message: string }) => {
      assert.equal(e.code, "bad_request");
      assert.match(
        e.message,
        /no cache event "loaded"; expected one of restore, pinned, warmup, unknown_model, miss, coalesced, hit, loading, load, load_failed, expired, evict, prefix, save/,
      );
      return true;
    },
  );
});

it("cache.on refuses an event name that does not exist (a JavaScript caller's typo), naming the ones that do", async () => {
  const cache = await ModelCache.new(
    cacheConfig({ persist_cache: false }),
    backendSchema.parse({}),
    new FakeModelSource([]),
    {
      backends: {},
      store: null,
    },
  );
  const on = cache.on.bind(cache) as (event: string, listener: unknown) => () => void;
  assert.throws(
    () => on("loaded", () => {}),
    (e: { code: string; message: string }) => {
      assert.equal(e.code, "bad_request");
      assert.match(e.message, /^on: there is no cache event "loaded"; expected one of restore, pinned, .*, save$/);
      return true;
    },
  );
  assert.throws(() => on("load", "not a function"), /load must be a function \(the listener\); found string/);
  assert.equal(typeof on("load", () => {}), "function");
  await cache.close();
});

it("ModelCache.new(cache, backend, manager, listeners): the seed's call shape — a listener object as the 4th argument — fires", async () => {
  const source = new FakeModelSource(["a.gguf"]);
  const seen: string[] = [];
  const cache = await ModelCache.new(cacheConfig({ persist_cache: false }), backendSchema.parse({}), source, {
    miss: (e) => seen.push(`miss ${e.name}`),
    load: (e) => seen.push(`load ${e.name}`),
    hit: (e) => seen.push(`hit ${e.name}`),
    evict: (e) => seen.push(`evict ${e.name} ${e.reason}`),
  });
  // The real backends were created for this cache (no backends option): the fake source's model is not a real file,
  // so only what needs no load is exercised here; the listener object itself must have been subscribed.
  await assert.rejects(cache.getModel("a.gguf"));
  assert.deepEqual(seen, ["miss a.gguf"]);
  await cache.close();
});

it("ModelCache.new refuses a misspelt key in the 4th argument, options or listeners, naming it and the known ones", async () => {
  const source = new FakeModelSource([]);
  const misspelt = [{ backend: {} }, { hits: () => {} }, { store: null, hit: () => {} }];
  for (const argument of misspelt) {
    await assert.rejects(
      ModelCache.new(cacheConfig(), backendSchema.parse({}), source, argument as unknown as ModelCacheOptions),
      (e: { code: string; message: string }) => {
        assert.equal(e.code, "bad_request");
        assert.match(e.message, /ModelCache\.new: (unknown key "(backend|hits)"|the fourth argument mixes)/);
        if (!("store" in argument))
          assert.match(
            e.message,
            /options are backends, store, logger, clock, systemMemoryBytes, metrics; listeners are restore/,
          );
        return true;
      },
    );
  }
});
