/**
 * Decoding a state file is bounded in memory, not only its decompression (issue 23, item 4): a 2 KB file that
 * decompresses to 60 MiB of `[` (inside the 64 MiB cap) is refused before the JSON parser builds anything, with a peak
 * RSS near the cap's size (it was 2.9 GB); a valid state of the same order still decodes, fast.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { it } from "node:test";
import { fileURLToPath } from "node:url";
import { checkStructure, decodeState, STATE_STRUCTURE } from "../../src/cache/persistence/codec.js";
import { STATE_FILE_NAME } from "../../src/cache/persistence/file-store.js";
import { zstdCompress } from "../../src/cache/persistence/zstd.js";
import { StateCorrupt } from "../../src/errors/index.js";
import { validDocument } from "../../testkit/out-of-range.js";
import { tempDir } from "../../testkit/tmp.js";

const LOADER = fileURLToPath(new URL("../../testkit/load-state.ts", import.meta.url));
const MIB = 1024 * 1024;

function loadInProcess(dir: string): { models: number | null; warning: string | null; peakRssBytes: number } {
  const out = execFileSync(process.execPath, ["--import", import.meta.resolve("tsx"), LOADER, dir], {
    encoding: "utf8",
  });
  return JSON.parse(out.trim().split("\n").at(-1) as string) as ReturnType<typeof loadInProcess>;
}

it("a 2 KB state file of 60 MiB of '[': refused as corrupt, peak RSS within a small multiple of the cap", async (t) => {
  const dir = await tempDir(t, "inferno-bomb-");
  const bomb = await zstdCompress(Buffer.alloc(60 * MIB, "["), 19);
  assert.ok(bomb.length < 8192, `${bomb.length} bytes`);
  await writeFile(join(dir, STATE_FILE_NAME), bomb);
  const result = loadInProcess(dir);
  assert.equal(result.models, null);
  assert.match(result.warning ?? "", /nests deeper than any state/);
  // The decompressed 60 MiB, the runtime and tsx: well under 4x the 64 MiB cap (it was 2.9 GB).
  assert.ok(result.peakRssBytes < 4 * 64 * MIB, `peak RSS ${Math.round(result.peakRssBytes / MIB)} MiB`);
});

it("flat floods of arrays and objects are refused; real documents, nested or large, pass", () => {
  const flood = Buffer.from(`{"models":[${"[],".repeat(2 * MIB)}[]]}`);
  assert.throws(
    () => checkStructure(flood),
    (e: Error) => e instanceof StateCorrupt && /more objects/.test(e.message),
  );
  assert.throws(() => checkStructure(Buffer.from("[".repeat(STATE_STRUCTURE.maxDepth + 1))), StateCorrupt);
  // Brackets inside strings are text.
  checkStructure(Buffer.from(JSON.stringify({ name: '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\"{{{{{{{{{{{{{{{{{{{{{{{' })));

  const now = Date.now();
  const document = validDocument(now) as { models: Array<Record<string, unknown>> };
  const [template] = document.models;
  document.models = Array.from({ length: 20_000 }, (_, i) => ({ ...template, key: `/m/${i}.gguf`, name: `${i}.gguf` }));
  const bytes = Buffer.from(JSON.stringify(document));
  const started = performance.now();
  assert.equal(decodeState(bytes, now).models.length, 20_000);
  const ms = performance.now() - started;
  assert.ok(ms < 10_000, `decoded 20,000 models in ${Math.round(ms)} ms`);
});

it("the largest state the codec accepts (100,000 models, ~50 MiB of JSON) loads with peak RSS within 8x the cap", async (t) => {
  const dir = await tempDir(t, "inferno-large-state-");
  const now = Date.now();
  const document = validDocument(now) as { models: Array<Record<string, unknown>> };
  const [template] = document.models;
  document.models = Array.from({ length: 100_000 }, (_, i) => ({
    ...template,
    key: `/models/some/longer/path/model-${i}.gguf`,
    name: `model-${i}.gguf`,
  }));
  const json = Buffer.from(`${JSON.stringify(document)}\n`);
  assert.ok(json.length > 40 * MIB && json.length < 64 * MIB, `${Math.round(json.length / MIB)} MiB`);
  await writeFile(join(dir, STATE_FILE_NAME), await zstdCompress(json, 3), { mode: 0o600 });
  const result = loadInProcess(dir);
  assert.equal(result.models, 100_000, result.warning ?? "");
  // The decompressed text, the parsed document, the checked state, the runtime and tsx (~80 MiB alone).
  assert.ok(result.peakRssBytes < 8 * 64 * MIB, `peak RSS ${Math.round(result.peakRssBytes / MIB)} MiB`);
});
