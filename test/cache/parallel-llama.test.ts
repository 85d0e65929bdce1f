/**
 * `backend.parallel = 0` (auto) resolved per model load on real llama.cpp: a memory limit with room for one sequence's
 * KV cache loads one, a roomy one loads the machine rule's number; the loaded model's info says which.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { createBackends } from "../../src/backends/index.js";
import { ModelCache } from "../../src/cache/model-cache.js";
import { backendSchema } from "../../src/config/schema.js";
import { ModelTooLarge } from "../../src/errors/index.js";
import { parallelCount } from "../../src/models/load-settings.js";
import { ggufSequenceCost, ModelManager } from "../../src/models/manager.js";
import type { GgufMetadata } from "../../src/models/types.js";
import { cacheConfig } from "../../testkit/cache-harness.js";
import { tinyModelsDir } from "../../testkit/models.js";
import { MIB } from "../../src/units.js";

it("auto loads as many sequences as the memory limit has room for", async (t) => {
  // The small llama at 8192 tokens: 8 MiB of KV cache per sequence, so a limit in whole MiB sits between one sequence's
  // measured figure (llama.cpp counts ~2.5 MiB more buffers than the estimate here) and two sequences' estimate.
  const { dir } = await tinyModelsDir(t, { gguf: { "tiny.gguf": { preset: "small" } } });
  const backendConfig = backendSchema.parse({
    context_size: 8192,
    batch_size: 128,
    threads: 1,
    gpu: false,
    isolation: "in-process",
  });
  await using backends = createBackends(backendConfig);
  const manager = new ModelManager(dir);
  const metadata = (await manager.info("tiny")).metadata as GgufMetadata;
  const { fixedBytes, perSequenceBytes } = ggufSequenceCost(metadata, backendConfig);
  assert.ok(perSequenceBytes >= 2 * MIB, `${perSequenceBytes} B per sequence`);
  const loaded = async (maxMemoryMb: number) => {
    const cache = await ModelCache.create(
      cacheConfig({ max_memory_mb: maxMemoryMb, persist_cache: false }),
      backendConfig,
      manager,
      { backends },
    );
    t.after(() => cache.close());
    await cache.getModel("tiny");
    const [info] = cache.loadedModels();
    await cache.close();
    return info;
  };

  const tight = await loaded(Math.floor((fixedBytes + 1.5 * perSequenceBytes) / MIB));
  const roomy = await loaded(Math.ceil((fixedBytes + 8 * perSequenceBytes) / MIB));
  assert.equal(tight?.sequences, 1);
  assert.equal(roomy?.sequences, parallelCount(0));
  // The load took them: llama.cpp's own figure for the context grows by the KV caches of the extra sequences.
  const extra = (parallelCount(0) - 1) * perSequenceBytes;
  assert.ok(
    (roomy?.memory_bytes as number) - (tight?.memory_bytes as number) >= 0.9 * extra,
    `${tight?.memory_bytes} B with 1 sequence, ${roomy?.memory_bytes} B with ${parallelCount(0)}`,
  );

  // With no room even for one, the refusal names backend.parallel's auto and how far it came down.
  const none = await ModelCache.create(
    cacheConfig({ max_memory_mb: Math.floor(fixedBytes / MIB), persist_cache: false }),
    backendConfig,
    manager,
    { backends },
  );
  t.after(() => none.close());
  await assert.rejects(none.getModel("tiny"), (error: unknown) => {
    assert.ok(error instanceof ModelTooLarge);
    assert.match(error.message, /with 1 sequence \(backend\.parallel = 0, auto, came down from \d\b/);
    return true;
  });
});
