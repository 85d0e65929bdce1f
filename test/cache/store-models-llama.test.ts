/**
 * Store models through the cache on the real llama.cpp backend: an Ollama blob (a GGUF without the `.gguf` extension)
 * and a split GGUF in the Hugging Face cache (parts symlinked into `blobs/`) load, generate, are pinned and warmed by
 * their store names, and keep their statistics across a restart, exactly as files in a models directory do.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createBackends } from "../../src/backends/index.js";
import { ModelCache } from "../../src/cache/model-cache.js";
import { FileStateStore } from "../../src/cache/persistence/file-store.js";
import { tinyLlamaGguf, tinyLlamaGgufSplit } from "../../src/models/gguf-writer.js";
import { ModelManager } from "../../src/models/manager.js";
import { splitPartName } from "../../src/models/split.js";
import { cacheConfig, RecordingLogger } from "../../testkit/cache-harness.js";
import { TEST_BACKEND, tinyModelsDir } from "../../testkit/models.js";
import { hubFile, ollamaModel } from "../../testkit/stores.js";
import { tempDir } from "../../testkit/tmp.js";

describe("store models on llama.cpp", () => {
  it("an Ollama blob and a Hugging Face split GGUF load, generate, pin, warm and keep statistics", async (t) => {
    const ollama = await tempDir(t);
    const hub = await tempDir(t);
    const cacheDir = await tempDir(t);
    const { dir } = await tinyModelsDir(t, { gguf: {} });
    await ollamaModel(ollama, "tiny", "latest", tinyLlamaGguf());
    for (const [i, bytes] of tinyLlamaGgufSplit(2, { seed: 3 }).entries()) {
      await hubFile(hub, "org/split-GGUF", "rev", splitPartName("m", i + 1, 2), bytes);
    }
    const stores = [
      { store: "ollama" as const, root: ollama },
      { store: "huggingface" as const, root: hub },
    ];
    await using backends = createBackends(TEST_BACKEND);
    const open = async (cache: Parameters<typeof cacheConfig>[0]) => {
      const logger = new RecordingLogger();
      const manager = new ModelManager(dir, { stores, digestFile: `${cacheDir}/file_digests.json` });
      const created = await ModelCache.create({ ...cacheConfig(cache), cache_dir: cacheDir }, TEST_BACKEND, manager, {
        backends,
        store: new FileStateStore(cacheDir),
        logger,
      });
      return { cache: created, logger, warm: await created.warmupDone };
    };
    const complete = (cache: ModelCache, name: string) =>
      cache.withModel(name, async (model) =>
        model.kind === "text" ? (await model.complete("Once upon", { maxTokens: 4, temperature: 0 })).text : "",
      );

    // Pinned by Ollama's short name: loaded at start, before any request.
    const first = await open({ enable_warmup: true, always_warm: ["tiny"] });
    assert.deepEqual(first.logger.warnings, []);
    assert.deepEqual(first.warm.loaded, ["tiny:latest"]);
    const ollamaText = await complete(first.cache, "tiny:latest");
    assert.ok(ollamaText.length > 0, "the extension-less blob generates");
    const splitText = await complete(first.cache, "org/split-GGUF/m");
    assert.ok(splitText.length > 0, "both parts of the split model were loaded");
    await complete(first.cache, "tiny");
    const stats = first.cache.stats();
    const byName = new Map(stats.models.map((m) => [m.name, m]));
    assert.deepEqual(
      [byName.get("tiny:latest")?.pinned, byName.get("tiny:latest")?.hits, byName.get("tiny:latest")?.loaded],
      [true, 2, true],
      "the warm-up load, then two hits under two spellings of one model",
    );
    assert.deepEqual([byName.get("org/split-GGUF/m-00001-of-00002.gguf")?.misses, stats.loads], [1, 2]);
    await first.cache.close();

    // Restarted without the pin: usage warms both store models again, and the first request is a hit.
    const second = await open({ enable_warmup: true, warmup_strategy: "usage", restore_window_hours: 0 });
    assert.deepEqual(second.logger.warnings, []);
    assert.deepEqual([...second.warm.loaded].sort(), ["org/split-GGUF/m-00001-of-00002.gguf", "tiny:latest"]);
    assert.equal(
      await complete(second.cache, "org/split-GGUF/m"),
      splitText,
      "greedy: the same text after the restart",
    );
    const after = second.cache.stats();
    assert.equal(after.models.find((m) => m.name === "org/split-GGUF/m-00001-of-00002.gguf")?.hits, 1);
    await second.cache.close();
  });
});
