/**
 * Warm restart on real files: generated GGUF models, the real ModelManager (discovery, canonical keys, fingerprints,
 * memory estimates) and the real file store. Loading goes through the fake backend here (fast, and it counts loads);
 * restart-llama.test.ts does the same with llama.cpp.
 */
import assert from "node:assert/strict";
import { utimes } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { FakeBackend } from "../../src/backends/fake.js";
import { ModelCache } from "../../src/cache/model-cache.js";
import { FileStateStore } from "../../src/cache/persistence/file-store.js";
import { backendSchema } from "../../src/config/schema.js";
import { ModelManager } from "../../src/models/manager.js";
import { cacheConfig, RecordingLogger } from "../../testkit/cache-harness.js";
import { tinyModelsDir } from "../../testkit/models.js";
import { tempDir } from "../../testkit/tmp.js";

async function start(modelsDir: string, cacheDir: string) {
  const backend = new FakeBackend();
  const logger = new RecordingLogger();
  const config = { ...cacheConfig({ enable_warmup: true, warmup_strategy: "hybrid" }), cache_dir: cacheDir };
  const cache = await ModelCache.create(config, backendSchema.parse({}), new ModelManager(modelsDir), {
    backends: { gguf: backend },
    store: new FileStateStore(cacheDir),
    logger,
  });
  return { cache, backend, logger, warm: await cache.warmupDone };
}

describe("warm restart with real model files", () => {
  it("the first request after a warm restart is a hit; a file changed meanwhile keeps its statistics and is not warmed", async (t) => {
    const { dir } = await tinyModelsDir(t, {
      gguf: { "a.gguf": {}, "sub/b.gguf": { seed: 2 }, "c.gguf": { seed: 3 } },
    });
    const cacheDir = await tempDir(t);

    const first = await start(dir, cacheDir);
    assert.deepEqual(first.warm.loaded, [], "nothing to warm on a first start");
    for (const name of ["a", "a.gguf", join(dir, "a.gguf"), "sub/b.gguf", "c"]) await first.cache.getModel(name);
    assert.equal(first.backend.counts.loaded, 3, "every spelling of a.gguf is one entry");
    await first.cache.close();
    const before = first.cache.stats();

    // c.gguf is rewritten (its mtime moves) while the server is down.
    await utimes(join(dir, "c.gguf"), new Date(), new Date(Date.now() + 60_000));

    const second = await start(dir, cacheDir);
    assert.deepEqual(second.logger.warnings, []);
    assert.deepEqual(second.warm.loaded.sort(), ["a.gguf", "sub/b.gguf"]);
    assert.ok(second.warm.skipped.some((s) => s.name === "c.gguf" && s.reason === "file changed since last use"));
    const hitsBefore = second.cache.stats().hits;
    await second.cache.getModel("a.gguf");
    assert.equal(second.cache.stats().hits, hitsBefore + 1, "first request after restart is a hit");
    assert.equal(second.backend.loadCount("a.gguf"), 1, "loaded once, by warm-up");
    const c = second.cache.stats().models.find((m) => m.name === "c.gguf");
    assert.equal(c?.requests, 1, "statistics of the changed file are kept");
    const perModel = (s: typeof before) => s.models.map((m) => [m.name, m.requests, m.hits, m.misses]);
    assert.deepEqual(
      perModel(second.cache.stats()).filter(([n]) => n !== "a.gguf"),
      perModel(before).filter(([n]) => n !== "a.gguf"),
    );
    await second.cache.close();
  });

  it("the state file keeps each GGUF model's header facts from the model source; a changed file drops them until reloaded", async (t) => {
    const { dir } = await tinyModelsDir(t, { gguf: { "a.gguf": {}, "q.gguf": { type: "q8_0", seed: 2 } } });
    const cacheDir = await tempDir(t);
    const manager = new ModelManager(dir);
    const expected = async (name: string) => {
      const m = await manager.metadata(await manager.resolve(name));
      assert.equal(m.format, "gguf");
      return {
        architecture: m.architecture,
        quantization: m.quantization,
        parameter_count: m.parameterCount,
        context_length: m.contextLength,
      };
    };
    const saved = async (name: string) => {
      const file = await new FileStateStore(cacheDir).read();
      return file?.state.models.find((m) => m.name === name);
    };

    const first = await start(dir, cacheDir);
    await first.cache.getModel("a.gguf");
    await first.cache.getModel("q.gguf");
    await first.cache.close();
    const a = await saved("a.gguf");
    assert.equal(a?.format, "gguf");
    assert.deepEqual(a?.metadata.gguf, await expected("a.gguf"));
    assert.equal(a?.metadata.gguf?.architecture, "llama");
    assert.deepEqual((await saved("q.gguf"))?.metadata.gguf, await expected("q.gguf"));
    assert.notEqual(a?.metadata.gguf?.quantization, (await saved("q.gguf"))?.metadata.gguf?.quantization);
    assert.ok((a?.metadata.memory_bytes ?? 0) > 0, "memory_bytes is still there");

    await utimes(join(dir, "q.gguf"), new Date(), new Date(Date.now() + 60_000));
    const second = await start(dir, cacheDir);
    await second.cache.saveCache();
    assert.deepEqual(
      (await saved("a.gguf"))?.metadata.gguf,
      await expected("a.gguf"),
      "restored and saved again unchanged",
    );
    assert.equal((await saved("q.gguf"))?.metadata.gguf, undefined, "facts of the old file version are dropped");
    await second.cache.getModel("q.gguf");
    await second.cache.close();
    assert.deepEqual((await saved("q.gguf"))?.metadata.gguf, await expected("q.gguf"), "the reload brings them back");
  });
});
