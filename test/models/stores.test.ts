/**
 * Model stores and several models directories, on fixture stores built in a temporary directory in each tool's layout
 * (Ollama manifests + blobs, LM Studio folders, the Hugging Face cache with symlinked snapshots) holding real tiny GGUF
 * models, including bad manifests and split GGUFs.
 */
import assert from "node:assert/strict";
import { mkdir, readFile, rm, symlink, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, type TestContext, test } from "node:test";
import { backendSchema } from "../../src/config/schema.js";
import { ModelAmbiguous, ModelInvalid, ModelOutsideModelsDir } from "../../src/errors/index.js";
import { tinyLlamaGguf, tinyLlamaGgufSplit } from "../../src/models/gguf-writer.js";
import { ModelManager } from "../../src/models/manager.js";
import { splitPartName } from "../../src/models/split.js";
import { storeLocations } from "../../src/models/stores/index.js";
import { tinyModelsDir } from "../../testkit/models.js";
import { hubFile, ollamaModel, sha256 } from "../../testkit/stores.js";
import { tempDir } from "../../testkit/tmp.js";

const backend = backendSchema.parse({});
const tiny = tinyLlamaGguf();
const other = tinyLlamaGguf({ seed: 2 });

async function emptyModelsDir(t: TestContext) {
  return (await tinyModelsDir(t, { gguf: {} })).dir;
}

describe("Ollama", () => {
  test("manifests name blobs: NAME:TAG, NAME for latest, namespaces and hosts as ollama names them", async (t) => {
    const root = await tempDir(t);
    const blob = await ollamaModel(root, "llama3", "latest", tiny);
    await ollamaModel(root, "llama3", "8b", tiny);
    await ollamaModel(root, "qwen2.5", "0.5b", other);
    await ollamaModel(root, "mine", "v1", other, { repository: "registry.ollama.ai/alice" });
    await ollamaModel(root, "repo", "q4", other, { repository: "hf.co/org" });
    const manager = new ModelManager(await emptyModelsDir(t), { stores: [{ store: "ollama", root }] });
    const models = await manager.list();
    assert.deepEqual(
      models.map((m) => [m.name, m.store, m.format]),
      [
        ["alice/mine:v1", "ollama", "gguf"],
        ["hf.co/org/repo:q4", "ollama", "gguf"],
        ["llama3:8b", "ollama", "gguf"],
        ["llama3:latest", "ollama", "gguf"],
        ["qwen2.5:0.5b", "ollama", "gguf"],
      ],
    );
    const latest = await manager.resolve("llama3");
    assert.equal(latest.name, "llama3:latest");
    assert.equal(latest.key, blob, "the key is the blob's real path");
    assert.equal(latest.path, blob, "the blob is opened as is, without a .gguf extension");
    assert.equal((await manager.resolve("llama3:8b")).key, blob, "two tags of one blob are one model");
    assert.equal((await manager.resolve("qwen2.5:0.5b")).name, "qwen2.5:0.5b", "a dotted tag is not an extension");
    assert.equal((await manager.resolve(blob)).name, "llama3:8b", "the blob's path finds its model");
    const info = await manager.info("llama3:latest");
    assert.equal(info.metadata.format === "gguf" && info.metadata.architecture, "llama");
    assert.ok(
      (await manager.estimateMemory(latest, backend)) > tiny.length,
      "the estimate comes from the blob's header",
    );
  });

  test("bad manifests: each model is listed invalid with its reason, the others are unaffected", async (t) => {
    const root = await tempDir(t);
    await ollamaModel(root, "good", "latest", tiny);
    await ollamaModel(root, "notjson", "latest", tiny, { manifestText: "{ this is not json" });
    await ollamaModel(root, "nolayer", "latest", tiny, {
      manifestText: JSON.stringify({ schemaVersion: 2, layers: [] }),
    });
    await ollamaModel(root, "missing", "latest", other, { withoutBlob: true });
    await ollamaModel(root, "short", "latest", tiny, { claimedSize: tiny.length + 1 });
    const manager = new ModelManager(await emptyModelsDir(t), { stores: [{ store: "ollama", root }] });
    const results = await manager.validate();
    const verdicts = Object.fromEntries(
      results.map((r) => [r.model.name, r.ok ? "ok" : String(r.error.details?.problem)]),
    );
    assert.equal(verdicts["good:latest"], "ok");
    assert.match(verdicts["notjson:latest"] as string, /^manifest is not JSON/);
    assert.match(verdicts["nolayer:latest"] as string, /no model layer \(application\/vnd\.ollama\.image\.model\)/);
    assert.match(
      verdicts["missing:latest"] as string,
      new RegExp(`blob sha256-${sha256(other)} named by the manifest is missing`),
    );
    assert.match(
      verdicts["short:latest"] as string,
      new RegExp(`has ${tiny.length} bytes but the manifest says ${tiny.length + 1}`),
    );
    assert.equal(results.length, 5);
    const bad = await manager.resolve("notjson");
    await assert.rejects(
      manager.estimateMemory(bad, backend),
      (e: unknown) => e instanceof ModelInvalid && /not JSON/.test(e.message),
    );
  });

  test("a digest mismatch is refused before loading; the hash runs once per version of the file", async (t) => {
    const root = await tempDir(t);
    const cacheDir = await tempDir(t);
    const digestFile = join(cacheDir, "file_digests.json");
    const blob = await ollamaModel(root, "good", "latest", tiny);
    const mtime = new Date(Math.floor(Date.now() / 1000 - 60) * 1000); // whole seconds: utimes can set it back exactly
    await utimes(blob, mtime, mtime);
    // Same size, other bytes: only the digest can tell.
    const forged = Buffer.from(tiny);
    forged[forged.length - 1] = (forged[forged.length - 1] as number) ^ 0xff;
    await ollamaModel(root, "forged", "latest", forged, { claimedSha256: sha256(other) });
    const manager = new ModelManager(await emptyModelsDir(t), { stores: [{ store: "ollama", root }], digestFile });

    const listed = await manager.validate();
    assert.ok(
      listed.every((r) => r.ok),
      "without --hash only sizes are checked, and they agree",
    );
    const hashed = await manager.validate(undefined, { hash: true });
    const forgedResult = hashed.find((r) => r.model.name === "forged:latest");
    assert.ok(forgedResult && !forgedResult.ok, "--hash refuses the forged blob");
    assert.match(forgedResult.error.message, /sha256 is [0-9a-f]{64} but its store names sha256:/);
    assert.ok(hashed.find((r) => r.model.name === "good:latest")?.ok, "the good blob passes --hash");
    await assert.rejects(manager.estimateMemory(await manager.resolve("forged"), backend), ModelInvalid);

    // Remembered per file version, across managers: corrupting the good blob while keeping its size and mtime goes
    // unnoticed (no re-hash) ...
    const record = JSON.parse(await readFile(digestFile, "utf8"));
    assert.equal(record.files[blob].sha256, sha256(tiny));
    await writeFile(blob, forged);
    await utimes(blob, mtime, mtime);
    const next = new ModelManager(await emptyModelsDir(t), { stores: [{ store: "ollama", root }], digestFile });
    await next.estimateMemory(await next.resolve("good"), backend);
    // ... and a new mtime (a new version of the file) is hashed again and refused.
    const later = new Date(mtime.getTime() + 5000);
    await utimes(blob, later, later);
    await assert.rejects(next.estimateMemory(await next.resolve("good"), backend), /is corrupt: sha256 is/);
  });

  test("OLLAMA_MODELS moves the store; a pulled blob that appears is found without a restart", async (t) => {
    const root = await tempDir(t);
    assert.deepEqual(storeLocations(["ollama"], { env: { OLLAMA_MODELS: root }, home: "/home/u" }), [
      { store: "ollama", root },
    ]);
    assert.deepEqual(storeLocations(["ollama"], { env: {}, home: "/home/u" }), [
      { store: "ollama", root: "/home/u/.ollama/models" },
    ]);
    const blob = await ollamaModel(root, "late", "latest", tiny, { withoutBlob: true });
    const manager = new ModelManager(await emptyModelsDir(t), {
      stores: storeLocations(["ollama"], { env: { OLLAMA_MODELS: root }, home: "/nowhere" }),
    });
    assert.equal((await manager.validate("late"))[0]?.ok, false);
    await mkdir(join(root, "blobs"));
    await writeFile(blob, tiny);
    // A listing looks at the folders at once (a lookup by name may wait up to a second for its rate-limited check).
    const result = (await manager.validate()).find((r) => r.model.name === "late:latest");
    assert.ok(result?.ok, "the blobs folder changed, so the store was scanned again");
    assert.equal(result.model.key, blob);
  });
});

describe("LM Studio", () => {
  test("publisher/repo/file.gguf in both the current and the older folder", async (t) => {
    const home = await tempDir(t);
    const locations = storeLocations(["lmstudio"], { env: {}, home });
    assert.deepEqual(
      locations.map((l) => l.root),
      [join(home, ".lmstudio/models"), join(home, ".cache/lm-studio/models")],
    );
    await mkdir(join(home, ".lmstudio/models/lmstudio-community/Tiny-GGUF"), { recursive: true });
    await writeFile(join(home, ".lmstudio/models/lmstudio-community/Tiny-GGUF/tiny-Q8_0.gguf"), tiny);
    await mkdir(join(home, ".cache/lm-studio/models/TheBloke/Old-GGUF"), { recursive: true });
    await writeFile(join(home, ".cache/lm-studio/models/TheBloke/Old-GGUF/old.Q4_K_M.gguf"), other);
    const manager = new ModelManager(await emptyModelsDir(t), { stores: locations });
    assert.deepEqual(
      (await manager.list()).map((m) => [m.name, m.store]),
      [
        ["lmstudio-community/Tiny-GGUF/tiny-Q8_0.gguf", "lmstudio"],
        ["TheBloke/Old-GGUF/old.Q4_K_M.gguf", "lmstudio"],
      ],
    );
    assert.equal((await manager.resolve("tiny-Q8_0")).name, "lmstudio-community/Tiny-GGUF/tiny-Q8_0.gguf");
  });
});

describe("Hugging Face cache", () => {
  test("ORG/REPO/FILE from the snapshot refs/main names; snapshot files are symlinks into blobs", async (t) => {
    const hub = await tempDir(t);
    await hubFile(hub, "org/tiny-GGUF", "oldrev", "tiny.gguf", other, false);
    await hubFile(hub, "org/tiny-GGUF", "newrev", "tiny.gguf", tiny);
    await hubFile(hub, "org/tiny-GGUF", "newrev", "q8/tiny-q8.gguf", other);
    await hubFile(hub, "solo", "r1", "solo.gguf", tiny);
    await writeFile(join(hub, "models--org--tiny-GGUF/snapshots/newrev/README.md"), "not a model");
    const manager = new ModelManager(await emptyModelsDir(t), { stores: [{ store: "huggingface", root: hub }] });
    const models = await manager.list();
    assert.deepEqual(
      models.map((m) => [m.name, m.store]),
      [
        ["org/tiny-GGUF/q8/tiny-q8.gguf", "huggingface"],
        ["org/tiny-GGUF/tiny.gguf", "huggingface"],
        ["solo/solo.gguf", "huggingface"],
      ],
    );
    const model = await manager.resolve("org/tiny-GGUF/tiny.gguf");
    assert.equal(model.key, join(hub, "models--org--tiny-GGUF/blobs", sha256(tiny)), "the key is the blob");
    assert.equal(model.fingerprint.size, tiny.length, "refs/main's snapshot, not the older one");
    assert.ok(
      (await manager.validate(undefined, { hash: true })).every((r) => r.ok),
      "LFS blobs match their sha256 names",
    );
  });

  test("without refs/main the newest snapshot counts", async (t) => {
    const hub = await tempDir(t);
    await hubFile(hub, "org/repo", "a", "m.gguf", other, false);
    await hubFile(hub, "org/repo", "b", "m.gguf", tiny, false);
    const past = new Date(Date.now() - 60_000);
    await utimes(join(hub, "models--org--repo/snapshots/a"), past, past);
    const manager = new ModelManager(await emptyModelsDir(t), { stores: [{ store: "huggingface", root: hub }] });
    assert.equal((await manager.resolve("org/repo/m.gguf")).fingerprint.size, tiny.length);
  });

  test("HF_HUB_CACHE, HF_HOME and XDG_CACHE_HOME locate the cache as the hub client does", () => {
    const at = (env: Record<string, string>) => storeLocations(["huggingface"], { env, home: "/home/u" })[0]?.root;
    assert.equal(at({ HF_HUB_CACHE: "/hub" }), "/hub");
    assert.equal(at({ HF_HOME: "/hf" }), "/hf/hub");
    assert.equal(at({ XDG_CACHE_HOME: "/xdg" }), "/xdg/huggingface/hub");
    assert.equal(at({}), "/home/u/.cache/huggingface/hub");
  });
});

describe("split GGUF", () => {
  test("the parts are one model named by the first part, its header and size the whole model's", async (t) => {
    const parts = tinyLlamaGgufSplit(3);
    const dir = await emptyModelsDir(t);
    await mkdir(join(dir, "llama"));
    for (const [i, bytes] of parts.entries())
      await writeFile(join(dir, "llama", splitPartName("big", i + 1, 3)), bytes);
    const manager = new ModelManager(dir);
    const models = await manager.list();
    assert.deepEqual(
      models.map((m) => m.name),
      ["llama/big-00001-of-00003.gguf"],
    );
    const model = models[0]!;
    assert.equal(
      model.fingerprint.size,
      parts.reduce((sum, p) => sum + p.length, 0),
      "the fingerprint covers every part",
    );
    assert.equal((await manager.resolve("big")).key, model.key, "the name without the part suffix finds it");
    const whole = await manager.info("llama/big.gguf");
    const single = await new ModelManager(dir).info(await writeSingle(dir));
    assert.equal(
      whole.metadata.format === "gguf" && whole.metadata.tensorCount,
      single.metadata.format === "gguf" && single.metadata.tensorCount,
    );
    assert.equal(await manager.estimateMemory(whole, backend), await manager.estimateMemory(single, backend));

    await rm(join(dir, "llama", splitPartName("big", 2, 3)));
    const [result] = await manager.validate();
    assert.ok(result && !result.ok, "a split with a missing part is invalid");
    assert.match(
      String(result.error.details?.problem),
      /split GGUF of 3 parts is missing part big-00002-of-00003\.gguf/,
    );
  });

  test("in the Hugging Face cache, split parts are symlinks and the model opens by the snapshot path", async (t) => {
    const hub = await tempDir(t);
    const parts = tinyLlamaGgufSplit(2);
    let first = "";
    for (const [i, bytes] of parts.entries()) {
      const entry = await hubFile(hub, "org/split-GGUF", "rev", splitPartName("m", i + 1, 2), bytes);
      if (i === 0) first = entry;
    }
    const manager = new ModelManager(await emptyModelsDir(t), { stores: [{ store: "huggingface", root: hub }] });
    const model = await manager.resolve("org/split-GGUF/m");
    assert.equal(model.name, "org/split-GGUF/m-00001-of-00002.gguf");
    assert.equal(model.path, first, "llama.cpp finds part 2 beside part 1 by name");
    assert.equal(model.key, join(hub, "models--org--split-GGUF/blobs", sha256(parts[0]!)));
  });
});

async function writeSingle(dir: string): Promise<string> {
  await writeFile(join(dir, "single.gguf"), tinyLlamaGguf());
  return "single.gguf";
}

describe("several models directories and stores together", () => {
  test("the first directory wins a shared name; the later one's file is still reachable by path", async (t) => {
    const a = (await tinyModelsDir(t, { gguf: { "m.gguf": {}, "only-a.gguf": {} } })).dir;
    const b = (await tinyModelsDir(t, { gguf: { "m.gguf": { seed: 2 }, "only-b.gguf": {} } })).dir;
    const manager = new ModelManager([a, b]);
    assert.deepEqual(
      (await manager.list()).map((m) => m.name),
      ["m.gguf", "only-a.gguf", "only-b.gguf"],
    );
    assert.equal((await manager.resolve("m")).key, join(a, "m.gguf"));
    assert.equal((await manager.resolve(join(b, "m.gguf"))).key, join(b, "m.gguf"), "inside an allowed root");
    const outside = await tempDir(t);
    await writeFile(join(outside, "x.gguf"), tiny);
    await assert.rejects(manager.resolve(join(outside, "x.gguf")), ModelOutsideModelsDir);
  });

  test("a link into an enabled store is the store's model (one key, checked by digest); into a disabled store it escapes", async (t) => {
    const root = await tempDir(t);
    const blob = await ollamaModel(root, "llama3", "latest", tiny);
    const dir = await emptyModelsDir(t);
    await symlink(blob, join(dir, "linked.gguf"));
    const withStore = new ModelManager(dir, { stores: [{ store: "ollama", root }] });
    const viaLink = await withStore.resolve("linked");
    const viaStore = await withStore.resolve("llama3");
    assert.equal(viaLink.key, viaStore.key, "the same file by two routes is one model");
    assert.deepEqual(
      (await withStore.list()).map((m) => m.name),
      ["linked.gguf", "llama3:latest"],
    );
    await writeFile(join(dir, "llama3.gguf"), other);
    await withStore.list(); // a listing looks at the folders at once
    await assert.rejects(
      withStore.resolve("llama3"),
      (e: unknown) => e instanceof ModelAmbiguous && /llama3:latest, llama3\.gguf/.test(e.message),
    );
    assert.equal((await withStore.resolve("llama3:latest")).key, blob);
    const without = new ModelManager(dir);
    await assert.rejects(without.resolve("linked"), ModelOutsideModelsDir);
    await assert.rejects(without.resolve(blob), ModelOutsideModelsDir);
  });
});
