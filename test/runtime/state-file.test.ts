/** The CLI's file mode (`StateFile`) keeps no pin rules of its own: names and pins resolve as a server resolves them. */
import assert from "node:assert/strict";
import { realpath, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { it, type TestContext } from "node:test";
import { FileStateStore } from "../../src/cache/persistence/file-store.js";
import { replacingDelta } from "../../src/cache/persistence/merge.js";
import type { CacheState } from "../../src/cache/persistence/types.js";
import { emptyCounters } from "../../src/cache/state-view.js";
import { configSchema, type InfernoConfig } from "../../src/config/schema.js";
import { StateFile } from "../../src/runtime/state-file.js";
import { tinyModelsDir } from "../helpers/models.js";
import { tempDir } from "../helpers/tmp.js";

async function setup(t: TestContext): Promise<{ file: StateFile; key: string }> {
  const { dir } = await tinyModelsDir(t, { gguf: { "llama/tiny.gguf": {}, "other.gguf": {} } });
  const cacheDir = await tempDir(t);
  const parsed = configSchema.parse({ models_dir: dir, cache: { always_warm: ["tiny"] } });
  const config: InfernoConfig = { ...parsed, cache: { ...parsed.cache, cache_dir: cacheDir } };
  const now = Date.now();
  const entry = async (name: string) => {
    const key = await realpath(join(dir, name));
    const info = await stat(key);
    return {
      key,
      name,
      format: "gguf" as const,
      fingerprint: { size: info.size, mtimeMs: info.mtimeMs },
      metadata: { memory_bytes: 1024 },
      usage: {
        requests: 3,
        hits: 2,
        misses: 1,
        loads: 1,
        last_used_at: now,
        frequency: { value: 3, at: now },
        load_ms_total: 10,
        load_ms_samples: [10],
      },
      priority: 1,
      pinned: false,
    };
  };
  const state: CacheState = {
    saved_at: now,
    counters: emptyCounters(),
    models: [await entry("llama/tiny.gguf"), await entry("other.gguf")],
  };
  await new FileStateStore(cacheDir).save(replacingDelta(state));
  return { file: new StateFile(config), key: state.models[0]?.key as string };
}

it('a stem-named pin (always_warm = ["tiny"], file llama/tiny.gguf) is pinned in stats, planned as pinned, protected from clear and evict', async (t) => {
  const { file } = await setup(t);
  const stats = await file.stats();
  assert.deepEqual(
    stats.models.map((m) => [m.name, m.pinned]),
    [
      ["llama/tiny.gguf", true],
      ["other.gguf", false],
    ],
  );
  const plan = await file.warmupPlan({ strategy: "priority" });
  assert.equal(plan.plan[0], "llama/tiny.gguf");
  const cleared = await file.clear();
  assert.deepEqual(cleared.removed, ["other.gguf"], "clear without --force keeps the pinned model's statistics");
  await assert.rejects(file.clear({ model: "tiny" }), { code: "model_pinned" });
  await assert.rejects(file.evict("tiny"), { code: "model_pinned" });
  assert.equal(await file.evict("tiny", { force: true }), "llama/tiny.gguf");
  assert.deepEqual((await file.stats()).models, []);
});

it("with the file gone, a stem names the saved model for pins and for evict alike (one name matcher)", async (t) => {
  const { file, key } = await setup(t);
  await rm(key);
  const stats = await file.stats();
  assert.equal(stats.models.find((m) => m.name === "llama/tiny.gguf")?.pinned, true, "the pin still holds");
  await assert.rejects(file.evict("tiny"), { code: "model_pinned" });
  assert.equal(await file.evict("tiny", { force: true }), "llama/tiny.gguf");
  await assert.rejects(file.evict("tiny", { force: true }), { code: "model_not_found" });
});
