/**
 * One name matcher. A pin naming a saved model whose file is gone used to be matched by a rule of its own (pins.ts's
 * `stemOf`, which cut any dot and took the first model that fit); it now uses the model manager's (`matchSaved`, over
 * `NameIndex`'s stages): the model a pin keeps is the one a request, `/v1/models` and the CLI mean by that name.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Pins } from "../../src/cache/limits.js";
import { ModelNotFound } from "../../src/errors/index.js";
import { matchSaved, NameIndex } from "../../src/models/name-index.js";

const saved = (names: string[]) => names.map((name) => ({ key: `/models/${name}`, name }));

/** The model a pin resolves to when no file answers any more (the state file's entries stand in), or null. */
async function pinnedWhileMissing(pin: string, names: string[]): Promise<string | null> {
  const gone = () => Promise.reject(new ModelNotFound(`model "${pin}" not found`));
  const pins = await Pins.resolve({ always_warm: [pin], models: {} }, gone, saved(names));
  const [key] = [...pins.keys()];
  return key === undefined ? null : (pins.names.get(key) ?? null);
}

/** What the model manager's index says the name means among the same models as files (one: that model; else null). */
function resolvedAsFiles(pin: string, names: string[]): string | null {
  const hits = new NameIndex(saved(names)).match(pin);
  return hits.length === 1 ? (hits[0]?.name ?? null) : null;
}

// [pin, saved model names, what the old `stemOf` rule picked, what the one matcher picks (and why)]
const CASES: Array<[string, string[], string | null, string | null, string]> = [
  // Disagreed before.
  ["llama3", ["llama3.2:latest"], "llama3.2:latest", null, "a store tag's dot is no extension"],
  ["qwen2.5:0", ["qwen2.5:0.5b"], "qwen2.5:0.5b", null, "a dot inside a tag is no extension"],
  ["tiny", ["a/tiny.gguf", "b/tiny.gguf"], "a/tiny.gguf", null, "ambiguous: no silent pick"],
  ["tiny.gguf", ["x/tiny.gguf", "tiny.gguf"], "x/tiny.gguf", "tiny.gguf", "the exact path ranks first"],
  ["tiny", ["x/tiny.gguf", "tiny.gguf"], "x/tiny.gguf", "tiny.gguf", "the path without extension ranks first"],
  // Agreed before, and still do.
  ["llama/tiny", ["llama/tiny.gguf", "other.gguf"], "llama/tiny.gguf", "llama/tiny.gguf", "path without extension"],
  ["tiny", ["llama/tiny.gguf", "other.gguf"], "llama/tiny.gguf", "llama/tiny.gguf", "file stem"],
  ["tiny.gguf", ["llama/tiny.gguf"], "llama/tiny.gguf", "llama/tiny.gguf", "file name"],
  ["/models/a.onnx", ["a.onnx"], "a.onnx", "a.onnx", "the key (absolute path)"],
  ["b", ["a.gguf"], null, null, "no such model"],
];

describe("pins match a saved model by the model manager's rule", () => {
  for (const [pin, names, before, now, why] of CASES) {
    it(`${JSON.stringify(pin)} among ${names.join(", ")} → ${now ?? "nothing"} (${why}; before: ${before ?? "nothing"})`, async () => {
      assert.equal(await pinnedWhileMissing(pin, names), now);
      // The same name over the same models as files present: what a request, `/v1/models` and the CLI resolve.
      if (!pin.startsWith("/")) assert.equal(resolvedAsFiles(pin, names), now);
    });
  }

  it("an ambiguous name matches every model it could mean, so the caller can say which names to use", () => {
    assert.deepEqual(
      matchSaved("tiny", saved(["a/tiny.gguf", "b/tiny.gguf", "c/other.gguf"])).map((m) => m.name),
      ["a/tiny.gguf", "b/tiny.gguf"],
    );
  });
});
