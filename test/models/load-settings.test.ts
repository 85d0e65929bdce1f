/** Variant names and keys (models/load-settings.ts): what a suffix spells, round trips, and the file key under it. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { backendSchema } from "../../src/config/schema.js";
import { differing, fileKeyOf, parseVariant, variantSuffix, withLoadSettings } from "../../src/models/load-settings.js";

test("a variant suffix spells the settings and parses back; anything else is part of the name", () => {
  const table: Array<[string, string, Record<string, unknown>]> = [
    ["tiny", "tiny", {}],
    ["tiny#ctx=4096", "tiny", { context_size: 4096 }],
    ["/m/tiny.gguf#ctx=4096,threads=2", "/m/tiny.gguf", { context_size: 4096, threads: 2 }],
    [
      "/m/tiny.gguf#preset=fast:v1,ctx=384,parallel=2",
      "/m/tiny.gguf",
      { preset: "fast:v1", context_size: 384, parallel: 2 },
    ],
    ["phi3:mini#gpu_layers=0", "phi3:mini", { gpu_layers: 0 }],
    // Not a suffix: a '#' in a file name, a setting Inferno does not know, a value that is no number.
    ["/m/a#b.gguf", "/m/a#b.gguf", {}],
    ["tiny#rope=2", "tiny#rope=2", {}],
    ["tiny#ctx=big", "tiny#ctx=big", {}],
  ];
  for (const [name, base, settings] of table) {
    const parsed = parseVariant(name);
    assert.deepEqual(parsed, { base, settings }, name);
    assert.equal(fileKeyOf(name), base, name);
    assert.equal(`${base}${variantSuffix(parsed.settings)}`, name, `${name} round trip`);
  }
});

test("only settings that differ from [backend] make a variant; a variant loads with its settings", () => {
  const backend = backendSchema.parse({ context_size: 2048, threads: 1 });
  assert.deepEqual(differing({ context_size: 2048, threads: 1 }, backend), {});
  assert.deepEqual(differing({ context_size: 4096, threads: 1, gpu_layers: 0 }, backend), {
    context_size: 4096,
    gpu_layers: 0,
  });
  const loaded = withLoadSettings(backend, { context_size: 4096, parallel: 2 });
  assert.deepEqual([loaded.context_size, loaded.parallel, loaded.threads], [4096, 2, 1]);
  assert.equal(withLoadSettings(backend, undefined), backend);
});
