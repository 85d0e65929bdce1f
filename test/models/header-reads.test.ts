/**
 * How often a cold load reads a model's header. The cache asks the model manager for the memory estimate and for the
 * GGUF facts it records at once; both need the header, which is read once per file version and shared.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { utimes } from "node:fs/promises";
import { syncBuiltinESMExports } from "node:module";
import { test, type TestContext } from "node:test";
import { FakeBackend } from "../../src/backends/fake.js";
import { ModelCache } from "../../src/cache/model-cache.js";
import { backendSchema } from "../../src/config/schema.js";
import { ModelManager } from "../../src/models/manager.js";
import { cacheConfig } from "../helpers/cache-harness.js";
import { tinyModelsDir } from "../helpers/models.js";

/** Counts the opens of `path` (a header read opens the file once) from every import of node:fs/promises. */
function countOpens(t: TestContext, path: string): { count: number } {
  const opens = { count: 0 };
  const original = fs.promises.open;
  t.mock.method(fs.promises, "open", (file: fs.PathLike, ...rest: [fs.OpenMode?, fs.Mode?]) => {
    if (String(file) === path) opens.count++;
    return original(file, ...rest);
  });
  syncBuiltinESMExports();
  t.after(() => syncBuiltinESMExports());
  return opens;
}

test("a cold load reads the header once; a load of the same file version again reads none; a new version reads once", async (t) => {
  const { dir, path } = await tinyModelsDir(t);
  const opens = countOpens(t, path);
  const backend = new FakeBackend({ defaults: { loadMs: 0 } });
  const cache = await ModelCache.create(cacheConfig(), backendSchema.parse({}), new ModelManager(dir), {
    backends: { gguf: backend },
    store: null,
  });
  t.after(() => cache.close());

  await cache.withModel("tiny", async () => {});
  assert.equal(opens.count, 1, "one read for the estimate and the recorded GGUF facts");
  const saved = cache.snapshot().models.find((m) => m.name === "tiny.gguf");
  assert.equal(saved?.metadata.gguf?.architecture, "llama", "the facts came from that read");

  await cache.evict("tiny");
  await cache.withModel("tiny", async () => {});
  assert.equal(opens.count, 1, "the same file version is not read again");

  const later = new Date(Date.now() + 60_000);
  await utimes(path, later, later);
  await cache.evict("tiny");
  await cache.withModel("tiny", async () => {});
  assert.equal(opens.count, 2, "a changed file is read once more");
});
