/**
 * Warm restart end to end with real GGUF models on llama.cpp: generated tiny llamas, the real ModelManager, the real
 * backends and the real file store. The first request after a warm restart is a hit, and the warmed model generates.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createBackends } from "../../src/backends/index.js";
import { ModelCache } from "../../src/cache/model-cache.js";
import { FileStateStore } from "../../src/cache/persistence/file-store.js";
import { backendSchema } from "../../src/config/schema.js";
import { ModelManager } from "../../src/models/manager.js";
import { cacheConfig, RecordingLogger } from "../../testkit/cache-harness.js";
import { tinyModelsDir } from "../../testkit/models.js";
import { tempDir } from "../../testkit/tmp.js";

describe("warm restart on llama.cpp", () => {
  it("restores statistics, warms the used model, and the first request after restart is a hit", async (t) => {
    const { dir } = await tinyModelsDir(t, { gguf: { "tiny.gguf": {} } });
    const cacheDir = await tempDir(t);
    const backendConfig = backendSchema.parse({ context_size: 256, threads: 1, isolation: "in-process" });
    await using backends = createBackends(backendConfig);
    const open = async () => {
      const logger = new RecordingLogger();
      const cache = await ModelCache.create(
        { ...cacheConfig({ enable_warmup: true, warmup_strategy: "hybrid" }), cache_dir: cacheDir },
        backendConfig,
        new ModelManager(dir),
        { backends, store: new FileStateStore(cacheDir), logger },
      );
      return { cache, logger, warm: await cache.warmupDone };
    };

    const first = await open();
    const text = await first.cache.withModel("tiny", async (model) => {
      assert.equal(model.kind, "text");
      return model.kind === "text" ? (await model.complete("Hello", { maxTokens: 4, seed: 1 })).text : "";
    });
    assert.ok(text.length > 0);
    await first.cache.getModel("tiny.gguf");
    await first.cache.close();
    const before = first.cache.stats();
    assert.deepEqual([before.hits, before.misses, before.loads], [1, 1, 1]);
    assert.ok((before.models[0]?.avg_load_ms ?? 0) > 0, "a real load time was measured");

    const second = await open();
    assert.deepEqual(second.logger.warnings, []);
    assert.deepEqual(second.warm.loaded, ["tiny.gguf"]);
    const restored = second.cache.stats();
    assert.deepEqual([restored.hits, restored.misses, restored.loads, restored.warmups], [1, 1, 2, 1]);
    assert.deepEqual(
      restored.models.map((m) => [m.name, m.requests, m.hits, m.misses]),
      before.models.map((m) => [m.name, m.requests, m.hits, m.misses]),
    );
    const again = await second.cache.withModel("tiny", async (model) =>
      model.kind === "text" ? (await model.complete("Hello", { maxTokens: 4, seed: 1 })).text : "",
    );
    assert.equal(again, text, "same seed, same text after the restart");
    assert.equal(second.cache.stats().hits, 2, "the first request after the warm restart is a hit");
    assert.ok(second.cache.stats().memory_bytes > 0, "the measured memory of the llama model is counted");
    await second.cache.close();
  });
});
