/** The library form of SPEC.md, through the public entry point, with the real backends and the state file. */
import assert from "node:assert/strict";
import { access } from "node:fs/promises";
import { join } from "node:path";
import { it } from "node:test";
import { loadConfig, ModelCache, ModelManager } from "../../src/index.js";
import { tinyModelsDir } from "../helpers/models.js";
import { tempDir } from "../helpers/tmp.js";

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
    return m.kind === "text" ? m.complete("Hello", { maxTokens: 3 }) : null;
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
