import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { chmod, mkdir, open, readFile, rm, stat, symlink, truncate, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { parallelCount } from "../../src/models/load-settings.js";
import { backendSchema } from "../../src/config/schema.js";
import { ModelAmbiguous, ModelInvalid, ModelNotFound, ModelOutsideModelsDir } from "../../src/errors/index.js";
import { encodeGguf, type GgufValue, tinyLlamaGguf } from "../../src/models/gguf-writer.js";
import { readGgufHeader } from "../../src/models/gguf-reader.js";
import { estimateGgufMemory, ModelManager, ONNX_MEMORY_FACTOR } from "../../src/models/manager.js";
import { MODEL_HOST_OVERHEAD_BYTES } from "../../src/models/overhead.js";
import { shortestNames } from "../../src/models/name-index.js";
import type { GgufMetadata } from "../../src/models/types.js";
import { tinyAddOnnx } from "../../testkit/onnx.js";
import { CLASSIFIER_ONNX, tinyModelsDir } from "../../testkit/models.js";

const defaults = backendSchema.parse({});

test("discovery is recursive, case-insensitive on extensions, and skips hidden folders and other files", async (t) => {
  const { dir } = await tinyModelsDir(t, {
    gguf: { "a.gguf": {}, "sub/deep/B.GGUF": {}, ".hidden/c.gguf": {} },
    onnx: ["net.Onnx"],
  });
  await writeFile(join(dir, "notes.txt"), "not a model");
  const manager = new ModelManager(dir);
  const models = await manager.list();
  assert.deepEqual(
    models.map((m) => [m.name, m.format]),
    [
      ["a.gguf", "gguf"],
      ["net.Onnx", "onnx"],
      ["sub/deep/B.GGUF", "gguf"],
    ],
  );
  assert.equal(models[0]?.fingerprint.size, (await readFile(join(dir, "a.gguf"))).length);
});

test("every spelling of one file resolves to one key: path, path without extension, file name, stem", async (t) => {
  const { dir } = await tinyModelsDir(t, { gguf: { "llama/tiny.gguf": {} } });
  const manager = new ModelManager(dir);
  const spellings = [
    "llama/tiny.gguf",
    "llama/tiny",
    "tiny.gguf",
    "tiny",
    join(dir, "llama/tiny.gguf"),
    "llama/../llama/tiny.gguf",
  ];
  const keys = new Set<string>();
  for (const name of spellings) keys.add((await manager.resolve(name)).key);
  assert.equal(keys.size, 1);
  const model = await manager.resolve("tiny");
  assert.equal(model.name, "llama/tiny.gguf");
  assert.equal(model.path, model.key);
});

test("an ambiguous name is refused with its candidates; a more specific name works", async (t) => {
  const { dir } = await tinyModelsDir(t, {
    gguf: { "a/tiny.gguf": {}, "b/tiny.gguf": { seed: 2 } },
    onnx: ["c/tiny.onnx"],
  });
  const manager = new ModelManager(dir);
  await assert.rejects(manager.resolve("tiny.gguf"), (error: unknown) => {
    assert.ok(error instanceof ModelAmbiguous);
    assert.deepEqual(error.details?.candidates, ["a/tiny.gguf", "b/tiny.gguf"]);
    return true;
  });
  await assert.rejects(manager.resolve("tiny"), ModelAmbiguous);
  assert.equal((await manager.resolve("tiny.onnx")).format, "onnx");
  assert.equal((await manager.resolve("b/tiny")).name, "b/tiny.gguf");
});

test("a symlink to a file inside the directory is the same model, not an ambiguity", async (t) => {
  const { dir } = await tinyModelsDir(t, { gguf: { "real/model.gguf": {} } });
  await symlink(join(dir, "real/model.gguf"), join(dir, "alias.gguf"));
  const manager = new ModelManager(dir);
  assert.equal((await manager.resolve("alias")).key, (await manager.resolve("real/model.gguf")).key);
});

test("names that lead outside the models directory are refused unless allowed", async (t) => {
  const { dir } = await tinyModelsDir(t, { gguf: { "models/inside.gguf": {}, "outside.gguf": {} } });
  const modelsDir = join(dir, "models");
  await symlink(join(dir, "outside.gguf"), join(modelsDir, "escape.gguf"));
  const strict = new ModelManager(modelsDir);
  for (const name of ["../outside.gguf", join(dir, "outside.gguf"), "escape.gguf", "escape", "/etc/passwd"]) {
    await assert.rejects(strict.resolve(name), ModelOutsideModelsDir, name);
  }
  assert.deepEqual(
    (await strict.list()).map((m) => m.name),
    ["inside.gguf"],
  );
  const relaxed = new ModelManager(modelsDir, { allowOutsideModelsDir: true });
  assert.equal((await relaxed.resolve("../outside.gguf")).key, join(dir, "outside.gguf"));
  assert.equal((await relaxed.resolve("escape")).key, join(dir, "outside.gguf"));
});

test("an unknown name is ModelNotFound with suggestions", async (t) => {
  const { dir } = await tinyModelsDir(t, { gguf: { "tinyllama.gguf": {} } });
  const manager = new ModelManager(dir);
  await assert.rejects(manager.resolve("tinylama"), (error: unknown) => {
    assert.ok(error instanceof ModelNotFound);
    assert.deepEqual([error.exitCode, error.status], [2, 404], "a usage error for the CLI, still 404 over HTTP");
    assert.deepEqual(error.details?.suggestions, ["tinyllama"]);
    assert.match(error.message, /did you mean "tinyllama"/);
    return true;
  });
  const missing = new ModelManager(join(dir, "nope"));
  assert.deepEqual(await missing.list(), []);
  await assert.rejects(missing.resolve("x"), /does not exist/);
});

test("a file added (or removed) later is seen without a new manager", async (t) => {
  const { dir } = await tinyModelsDir(t, { gguf: { "first.gguf": {} } });
  const manager = new ModelManager(dir);
  assert.equal((await manager.list()).length, 1);
  await assert.rejects(manager.resolve("second"), ModelNotFound);
  await mkdir(join(dir, "later"));
  await writeFile(join(dir, "later", "second.gguf"), tinyLlamaGguf({ seed: 3 }));
  assert.equal((await manager.resolve("second")).name, "later/second.gguf");
  await rm(join(dir, "first.gguf"));
  assert.deepEqual(
    (await manager.list()).map((m) => m.name),
    ["later/second.gguf"],
  );
});

test("after a listing, each model's own name is known to the synchronous lookup; other spellings once resolved", async (t) => {
  const { dir } = await tinyModelsDir(t, { gguf: { "a/x.gguf": {}, "b/x.gguf": {}, "solo.gguf": {} } });
  const manager = new ModelManager(dir);
  assert.equal(manager.lookup("solo.gguf"), undefined);
  const listed = await manager.list();
  for (const model of listed) assert.deepEqual(manager.lookup(model.name), model);
  // Spellings the listing did not use wait for a resolve; an ambiguous one is never answered.
  assert.equal(manager.lookup("solo"), undefined);
  assert.equal(manager.lookup("x.gguf"), undefined);
  assert.equal((await manager.resolve("solo")).name, "solo.gguf");
  assert.equal(manager.lookup("solo")?.name, "solo.gguf");
  await assert.rejects(manager.resolve("x.gguf"), ModelAmbiguous);
  assert.equal(manager.lookup("x.gguf"), undefined);
});

test("the listing is reused until a directory's mtime changes (no rescan per lookup)", async (t) => {
  const { dir } = await tinyModelsDir(t, { gguf: { "first.gguf": {} } });
  const then = new Date("2026-01-01T00:00:00Z");
  await utimes(dir, then, then);
  const manager = new ModelManager(dir);
  await manager.list();
  await writeFile(join(dir, "hidden-by-cache.gguf"), tinyLlamaGguf());
  // Put the directory's mtime back: the remembered scan still looks current, so the new file is not seen…
  await utimes(dir, then, then);
  await assert.rejects(manager.resolve("hidden-by-cache"), ModelNotFound);
  // …until the directory changes again.
  await utimes(dir, then, new Date(then.getTime() + 5000));
  assert.equal((await manager.resolve("hidden-by-cache")).name, "hidden-by-cache.gguf");
});

test("GGUF metadata comes from the header", async (t) => {
  const { dir } = await tinyModelsDir(t, { gguf: { "q.gguf": { preset: "small", type: "q8_0" } } });
  const info = await new ModelManager(dir).info("q");
  const m = info.metadata as GgufMetadata;
  assert.equal(m.format, "gguf");
  assert.equal(m.version, 3);
  assert.equal(m.architecture, "llama");
  assert.equal(m.quantization, "Q8_0");
  assert.equal(m.contextLength, 1024);
  assert.equal(m.embeddingLength, 128);
  assert.equal(m.blockCount, 4);
  assert.equal(m.headCountKv, 2);
  assert.equal(m.hasChatTemplate, true);
  assert.ok(m.parameterCount > 1_000_000 && m.parameterCount < 1_500_000, String(m.parameterCount));
  assert.ok(m.tensorBytes < info.fingerprint.size && m.tensorBytes > info.fingerprint.size * 0.9);
});

test("ONNX metadata: inputs, outputs, opset and IR version", async (t) => {
  const { dir } = await tinyModelsDir(t, { onnx: ["add.onnx"], classifier: true });
  const manager = new ModelManager(dir);
  const add = (await manager.info("add")).metadata;
  assert.deepEqual(add, {
    format: "onnx",
    inputs: [
      { name: "a", type: "float32", shape: ["N", 4] },
      { name: "b", type: "float32", shape: ["N", 4] },
    ],
    outputs: [{ name: "y", type: "float32", shape: ["N", 4] }],
    opset: 13,
    irVersion: 8,
    producer: "inferno-test",
  });
  const classifier = (await manager.info("classifier")).metadata;
  assert.equal(classifier.format, "onnx");
  if (classifier.format !== "onnx") return;
  assert.equal(classifier.inputs[0]?.name, "x");
  assert.equal(classifier.inputs[0]?.shape[1], 3);
  assert.equal(classifier.outputs[0]?.shape[1], 2);
  assert.equal(classifier.opset, 9);
});

/** Writes crafted bad files and returns the problem each is expected to report. */
async function badFiles(dir: string): Promise<Record<string, RegExp>> {
  const good = tinyLlamaGguf();
  const withVersion = (v: number) => {
    const b = Buffer.from(good.subarray(0, 4096));
    b.writeUInt32LE(v, 4);
    return b;
  };
  await writeFile(join(dir, "empty.gguf"), "");
  await writeFile(join(dir, "magic.gguf"), Buffer.concat([Buffer.from("GGML"), good.subarray(4)]));
  await writeFile(join(dir, "v1.gguf"), withVersion(1));
  await writeFile(join(dir, "v4.gguf"), withVersion(4));
  await writeFile(join(dir, "data-cut.gguf"), good.subarray(0, good.length - 100));
  await writeFile(join(dir, "header-cut.gguf"), good.subarray(0, 300));
  await mkdir(join(dir, "folder.gguf"));
  await writeFile(join(dir, "no-bytes.gguf"), tinyLlamaGguf({ vocabulary: { byteFallback: false } }));
  await writeFile(join(dir, "empty.onnx"), "");
  await writeFile(join(dir, "garbage.onnx"), Buffer.from("this is not protobuf at all \xff\xff\xff", "latin1"));
  const onnx = tinyAddOnnx();
  await writeFile(join(dir, "cut.onnx"), onnx.subarray(0, onnx.length - 20));
  return {
    "empty.gguf": /the file is empty/,
    "magic.gguf": /wrong magic "GGML".*expected "GGUF"/,
    "v1.gguf": /unsupported GGUF version 1 \(supported: 2, 3\)/,
    "v4.gguf": /unsupported GGUF version 4/,
    "data-cut.gguf":
      /truncated: tensor output\.weight|truncated: tensor blk\.\d+\.\w+\.weight ends at byte \d+ but the file has \d+ bytes/,
    "header-cut.gguf": /truncated: the header ends at byte 300/,
    "folder.gguf": /is a directory, not a model file/,
    "no-bytes.gguf":
      /vocabulary has no byte tokens \(<0x00>\.\.<0xFF>\), so llama\.cpp aborts .* convert the model again/,
    "empty.onnx": /the file is empty/,
    "garbage.onnx": /not a valid ONNX model/,
    "cut.onnx": /truncated|not a protobuf/,
  };
}

test("every kind of bad file is reported by validate with a ModelInvalid naming the file and the problem", async (t) => {
  const { dir } = await tinyModelsDir(t, { gguf: { "good.gguf": {} }, onnx: ["good.onnx"] });
  const expected = await badFiles(dir);
  const manager = new ModelManager(dir);
  const results = await manager.validate();
  const byName = new Map(results.map((r) => [r.model.name, r]));
  assert.equal(byName.get("good.gguf")?.ok, true);
  assert.equal(byName.get("good.onnx")?.ok, true);
  for (const [name, problem] of Object.entries(expected)) {
    const result = byName.get(name);
    assert.ok(result, `${name} is listed`);
    assert.equal(result.ok, false, name);
    if (result.ok) continue;
    assert.ok(result.error instanceof ModelInvalid);
    assert.match(result.error.message, problem, name);
    assert.ok(result.error.message.includes(join(dir, name)), `${name}: message names the file`);
  }
  await assert.rejects(manager.info("magic"), ModelInvalid);
});

test("only a SentencePiece vocabulary with no byte token is refused: llama.cpp's byte_to_token aborts on it alone", async (t) => {
  const { dir } = await tinyModelsDir(t, { gguf: {} });
  const header = async (model: string, tokens: string[]) => {
    const path = join(dir, `${model}-${tokens.length}.gguf`);
    const metadata = new Map<string, GgufValue>([
      ["tokenizer.ggml.model", { type: "string", value: model }],
      ["tokenizer.ggml.tokens", { type: "string[]", value: tokens }],
    ]);
    await writeFile(path, encodeGguf(metadata, []));
    return readGgufHeader(path);
  };
  const words = ["<unk>", "<s>", "</s>", "▁hello", "<0x0>", "<0X0A>", "<0x0AB>"];
  await assert.rejects(header("llama", words), (e: unknown) => {
    assert.ok(e instanceof ModelInvalid);
    assert.equal(e.details?.reason, "no_byte_tokens");
    return true;
  });
  // Byte tokens as llama.cpp spells them, even a single one; BPE ("gpt2") and UGM ("t5") vocabularies need none.
  await header("llama", [...words, "<0x0A>"]);
  await header("llama", ["<0xFF>", ...words.slice(0, 3)]);
  await header("gpt2", words.slice(0, 4));
  await header("t5", ["<unk>", "▁a"]);
});

/**
 * A write-only sysfs attribute: the kernel refuses to open it for reading with EACCES even for root, who bypasses
 * file permissions, so the unreadable-file path can be exercised when the tests run as root.
 */
async function writeOnlyKernelFile(): Promise<string | undefined> {
  for (const candidate of ["/sys/bus/cpu/uevent", "/sys/bus/platform/uevent", "/sys/module/kernel/uevent"]) {
    try {
      const handle = await open(candidate, "r");
      await handle.close();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EACCES" && (await stat(candidate)).size > 0) return candidate;
    }
  }
  return undefined;
}

test("an unreadable file is reported as such", async (t) => {
  const { dir, path } = await tinyModelsDir(t);
  let manager = new ModelManager(dir);
  let name = "tiny";
  if (process.getuid?.() === 0) {
    // Root reads a chmod 000 file, so point a model name at a file the kernel itself refuses to open.
    const target = await writeOnlyKernelFile();
    if (!target) return t.skip("running as root and no write-only sysfs attribute to stand for an unreadable file");
    await symlink(target, join(dir, "locked.gguf"));
    manager = new ModelManager(dir, { allowOutsideModelsDir: true });
    name = "locked";
  } else {
    await chmod(path, 0o000);
    t.after(() => chmod(path, 0o644));
  }
  const [result] = await manager.validate(name);
  assert.equal(result?.ok, false);
  if (result && !result.ok) {
    assert.ok(result.error instanceof ModelInvalid);
    assert.match(result.error.message, /cannot be read \(EACCES\)/);
  }
});

test("fingerprints: size and mtime always, sha256 on demand; null once the file is gone", async (t) => {
  const { dir, path } = await tinyModelsDir(t);
  const manager = new ModelManager(dir);
  const model = await manager.resolve("tiny");
  const plain = await manager.fingerprint(model.key);
  assert.equal(plain?.sha256, undefined);
  const hashed = await manager.fingerprint(model.key, { hash: true });
  assert.equal(
    hashed?.sha256,
    createHash("sha256")
      .update(await readFile(path))
      .digest("hex"),
  );
  const [validated] = await manager.validate("tiny", { hash: true });
  assert.equal(validated?.model.fingerprint.sha256, hashed?.sha256);
  await truncate(path, 10);
  assert.equal((await manager.fingerprint(model.key))?.size, 10);
  await assert.rejects(manager.info("tiny"), /truncated/);
  await rm(path);
  assert.equal(await manager.fingerprint(model.key), null);
});

test("memory estimates: GGUF = tensors + f16 KV cache for the context + buffers; ONNX = a factor of the file size", async (t) => {
  const { dir } = await tinyModelsDir(t, { gguf: { "m.gguf": { preset: "medium" } }, onnx: ["add.onnx"] });
  const manager = new ModelManager(dir);
  const model = await manager.resolve("m");
  const m = (await manager.info("m")).metadata as GgufMetadata;
  const small = await manager.estimateMemory(model, { ...defaults, context_size: 512, parallel: 1 });
  const large = await manager.estimateMemory(model, { ...defaults, context_size: 4096, parallel: 1 });
  const kvPerToken = 2 * m.blockCount * m.headCountKv * (m.embeddingLength / m.headCount) * 2;
  assert.equal(large - small, kvPerToken * (4096 - 512));
  assert.equal(small, estimateGgufMemory(m, { ...defaults, context_size: 512, parallel: 1 }));
  assert.ok(small > m.tensorBytes);
  const twoSequences = await manager.estimateMemory(model, { ...defaults, context_size: 512, parallel: 2 });
  assert.equal(twoSequences - small, kvPerToken * 512);
  // `parallel = 0` (auto, the default) counts the sequences it resolves to.
  const auto = await manager.estimateMemory(model, { ...defaults, context_size: 512, parallel: 0 });
  assert.equal(auto - small, kvPerToken * 512 * (parallelCount(0) - 1));
  // With room for one sequence only (a tight memory limit), auto counts one; `sequences` says the same.
  const room = small + (kvPerToken * 512) / 2;
  assert.equal(await manager.estimateMemory(model, { ...defaults, context_size: 512, parallel: 0 }, room), small);
  assert.deepEqual(await manager.sequences(model, { ...defaults, context_size: 512, parallel: 0 }, room), {
    count: 1,
    auto: true,
    most: parallelCount(0),
  });
  // A model host's own memory counts when the model runs in one (the measured figure is the host's).
  const inProcess = await manager.estimateMemory(model, {
    ...defaults,
    context_size: 512,
    parallel: 1,
    isolation: "in-process",
  });
  assert.equal(small - inProcess, MODEL_HOST_OVERHEAD_BYTES);
  const onnx = await manager.resolve("add");
  assert.equal(await manager.estimateMemory(onnx, defaults), onnx.fingerprint.size * ONNX_MEMORY_FACTOR);
});

test("the generator is deterministic per seed and its presets span under 1 MB to about 20 MB", () => {
  assert.ok(tinyLlamaGguf({ seed: 7 }).equals(tinyLlamaGguf({ seed: 7 })));
  assert.ok(!tinyLlamaGguf({ seed: 7 }).equals(tinyLlamaGguf({ seed: 8 })));
  assert.ok(tinyLlamaGguf({ preset: "nano", type: "q8_0" }).length < 1024 * 1024);
  const medium = tinyLlamaGguf({ preset: "medium", type: "f32" }).length;
  assert.ok(medium > 15 * 1024 * 1024 && medium < 25 * 1024 * 1024, String(medium));
});

test("the classifier fixture is where the helper says", async () => {
  assert.ok((await readFile(CLASSIFIER_ONNX)).length > 500_000);
});

test("shortest unambiguous names: the stem when unique, else the file name, the path without extension, the path", () => {
  const found = (name: string, key = `/m/${name}`) => ({
    name,
    path: `/m/${name}`,
    key,
    format: name.endsWith(".onnx") ? ("onnx" as const) : ("gguf" as const),
  });
  const table: Array<[string[], Record<string, string>]> = [
    [["tiny.gguf", "llama/solo.gguf"], { "tiny.gguf": "tiny", "llama/solo.gguf": "solo" }],
    [["a/tiny.gguf", "b/tiny.gguf"], { "a/tiny.gguf": "a/tiny", "b/tiny.gguf": "b/tiny" }],
    [["x.gguf", "x.onnx"], { "x.gguf": "x.gguf", "x.onnx": "x.onnx" }],
    // "tiny" names the root file first (path without extension beats a stem), so the nested one needs its path.
    [["tiny.gguf", "sub/tiny.gguf"], { "tiny.gguf": "tiny", "sub/tiny.gguf": "sub/tiny" }],
  ];
  for (const [names, expected] of table) {
    const models = names.map((n) => found(n));
    const short = shortestNames(models);
    assert.deepEqual(Object.fromEntries(models.map((m) => [m.name, short.get(m.name)])), expected, names.join(", "));
  }
  // Two spellings of one file (a symlink) are one model: its stem stays unambiguous and names the first; the other
  // spelling keeps a name of its own.
  const linked = shortestNames([found("tiny.gguf", "/m/real.gguf"), found("link/tiny.gguf", "/m/real.gguf")]);
  assert.equal(linked.get("tiny.gguf"), "tiny");
  assert.equal(linked.get("link/tiny.gguf"), "link/tiny");
});

test("every short name resolves back to its model", async (t) => {
  const { dir } = await tinyModelsDir(t, {
    gguf: { "a/tiny.gguf": {}, "b/tiny.gguf": {}, "solo.gguf": {} },
    onnx: ["solo.onnx"],
  });
  const manager = new ModelManager(dir);
  const names = await manager.shortNames();
  assert.equal(names.size, 4);
  for (const [modelName, name] of names) assert.equal((await manager.resolve(name)).name, modelName, name);
});
