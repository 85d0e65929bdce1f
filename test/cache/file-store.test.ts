/** The state file with real files: restart, quarantine of bad files, zstd compatibility, atomic writes, locking. */
import { replacingDelta } from "../../src/cache/persistence/merge.js";
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { hostname } from "node:os";
import { fileURLToPath } from "node:url";
import { chmod, mkdir, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import lockfile from "proper-lockfile";
import { FakeBackend } from "../../src/backends/fake.js";
import { ManualClock } from "../../src/cache/clock.js";
import { ModelCache } from "../../src/cache/model-cache.js";
import { FileStateStore, OWNERLESS_LOCK_GRACE_MS, STATE_FILE_NAME } from "../../src/cache/persistence/file-store.js";
import { emptyCounters as emptyCountersForTest } from "../../src/cache/state-view.js";
import { zstdCompress, zstdDecompress } from "../../src/cache/persistence/zstd.js";
import { outOfRangeDocuments } from "../helpers/out-of-range.js";
import { backendSchema } from "../../src/config/schema.js";
import { cacheConfig, RecordingLogger } from "../helpers/cache-harness.js";
import { FakeModelSource } from "../helpers/fake-models.js";
import { tempDir } from "../helpers/tmp.js";

/** A zstd frame of `text` at the state file's level, as another writer (or a hand-edited file) would leave it. */
const compress = (text: string) => zstdCompress(Buffer.from(text), 3);

/** The valid file `valid` with one value changed by `edit` (the decoded JSON document, re-compressed). */
type Editable = { saved_at: number; models: Array<{ usage: { last_used_at: number } }> };
async function withValue(valid: Buffer, edit: (document: Editable) => void): Promise<Buffer> {
  const document = JSON.parse(Buffer.from(await zstdDecompress(valid)).toString("utf8")) as Editable;
  edit(document);
  return compress(JSON.stringify(document));
}

const source = new FakeModelSource(["a.gguf", "b.gguf", "c.gguf"]);

async function open(dir: string, overrides: Parameters<typeof cacheConfig>[0] = {}, clock = new ManualClock()) {
  const logger = new RecordingLogger();
  const config = { ...cacheConfig(overrides), cache_dir: dir };
  const cache = await ModelCache.create(config, backendSchema.parse({}), source, {
    backends: { gguf: new FakeBackend({ timers: clock }) },
    store: new FileStateStore(dir),
    clock,
    logger,
  });
  await clock.run(cache.warmupDone);
  return { cache, clock, logger };
}

async function use(cache: ModelCache, clock: ManualClock, names: string[]): Promise<void> {
  for (const name of names) await clock.run(cache.getModel(name));
}

describe("FileStateStore", () => {
  it("state survives a restart: counters and per-model statistics are identical, nothing double-counted", async (t) => {
    const dir = await tempDir(t);
    const first = await open(dir);
    await use(first.cache, first.clock, ["a.gguf", "a.gguf", "b.gguf", "a.gguf"]);
    await assert.rejects(first.cache.getModel("missing.gguf"));
    await first.cache.close();
    const before = first.cache.stats();

    const second = await open(dir);
    const after = second.cache.stats();
    assert.deepEqual(second.logger.warnings, []);
    for (const field of ["hits", "misses", "loads", "load_failures", "warmups"] as const)
      assert.equal(after[field], before[field], field);
    assert.deepEqual(after.evictions, before.evictions);
    const perModel = (s: typeof before) =>
      s.models.map((m) => [m.name, m.requests, m.hits, m.misses, m.loads, m.last_used]);
    assert.deepEqual(perModel(after), perModel(before));
    assert.equal(after.models_loaded, 0);
    assert.equal(after.memory_bytes, 0);
    assert.equal(after.unsaved_changes, false);
    await second.cache.close();
    const third = await open(dir);
    assert.equal(third.cache.stats().hits, before.hits, "restore then close then restore again adds nothing");
    await third.cache.close();
  });

  it("writes one standard zstd frame that `zstd -dc` decodes to the self-describing document", async (t) => {
    const dir = await tempDir(t);
    const { cache, clock } = await open(dir);
    await use(cache, clock, ["a.gguf"]);
    const saved = await cache.saveCache();
    assert.equal(saved.ok, true);
    const file = join(dir, STATE_FILE_NAME);
    assert.equal(saved.bytes, (await readFile(file)).length);
    if (spawnSync("zstd", ["--version"]).status !== 0) {
      t.diagnostic("zstd binary not installed: skipping the `zstd -dc` assertion");
    } else {
      const text = execFileSync("zstd", ["-dc", file], { encoding: "utf8" });
      const document = JSON.parse(text) as { format: string; schema_version: number; models: Array<{ name: string }> };
      assert.equal(document.format, "inferno-cache-state");
      assert.equal(document.schema_version, 2);
      assert.deepEqual(
        document.models.map((m) => m.name),
        ["a.gguf"],
      );
      assert.ok(text.startsWith('{"format":"inferno-cache-state","schema_version":2'));
    }
    await cache.close();
  });

  const badFiles: Array<[string, (valid: Buffer) => Buffer | Promise<Buffer>]> = [
    ["a truncated", (valid) => valid.subarray(0, valid.length - 7)],
    ["an empty", () => Buffer.alloc(0)],
    ["a random-byte", () => Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 7919 + 13) % 256))],
    ["a non-JSON", () => compress("hello, not json")],
    ["another format's", () => compress(JSON.stringify({ format: "something-else", schema_version: 1 }))],
    [
      "a malformed current-version",
      () => compress(JSON.stringify({ format: "inferno-cache-state", schema_version: 2, models: 3 })),
    ],
    [
      "a last_used_at: 1e308",
      (valid) =>
        withValue(valid, (d) => {
          const [model] = d.models;
          if (model) model.usage.last_used_at = 1e308;
        }),
    ],
    ["a saved_at 200 years ahead", (valid) => withValue(valid, (d) => (d.saved_at += 200 * 365 * 24 * 3600_000))],
  ];
  for (const [what, make] of badFiles) {
    it(`${what} file: one warning, the file quarantined, an empty cache`, async (t) => {
      const dir = await tempDir(t);
      const seed = await open(dir);
      await use(seed.cache, seed.clock, ["a.gguf"]);
      await seed.cache.close();
      const file = join(dir, STATE_FILE_NAME);
      await writeFile(file, await make(await readFile(file)));

      const { cache, logger, clock } = await open(dir);
      assert.equal(logger.warnings.length, 1, logger.warnings.join("\n"));
      assert.match(logger.warnings[0] ?? "", /could not be decoded .* moved to .*\.corrupt-\d{8}T\d{9}Z/);
      const files = await readdir(dir);
      assert.equal(files.filter((f) => f.startsWith(`${STATE_FILE_NAME}.corrupt-`)).length, 1);
      assert.ok(!files.includes(STATE_FILE_NAME));
      const stats = cache.stats();
      assert.deepEqual([stats.hits, stats.misses, stats.models.length], [0, 0, 0]);
      await use(cache, clock, ["b.gguf"]);
      await cache.close();
      assert.ok((await readdir(dir)).includes(STATE_FILE_NAME), "the cache saves a fresh file afterwards");
    });
  }

  it("every generated out-of-range state file is quarantined with one warning and never stops a load", async (t) => {
    const dir = await tempDir(t);
    const store = new FileStateStore(dir);
    const documents = outOfRangeDocuments(Date.now());
    for (const [what, document] of documents) {
      await writeFile(store.path, await compress(JSON.stringify(document)));
      const restored = await store.load();
      assert.equal(restored.state, null, what);
      assert.match(restored.warning ?? "", /could not be decoded .*malformed at .* moved to .*\.corrupt-/, what);
      assert.ok(!(await readdir(dir)).includes(STATE_FILE_NAME), `${what}: set aside`);
    }
  });

  it("a lock left by a SIGKILLed process is taken over at once; its temporary files are removed at the next start", async (t) => {
    const dir = await tempDir(t);
    const seeded = new FileStateStore(dir);
    const seed = await open(dir);
    await use(seed.cache, seed.clock, ["a.gguf"]);
    await seed.cache.close();
    const child = spawn(
      process.execPath,
      [
        "--import",
        import.meta.resolve("tsx"),
        fileURLToPath(new URL("../fixtures/hold-state-lock.ts", import.meta.url)),
        dir,
      ],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    t.after(() => child.kill("SIGKILL"));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (chunk: Buffer) => chunk.toString().includes("locked") && resolve());
      child.on("exit", () => reject(new Error("the lock holder exited early")));
    });
    const owner = JSON.parse(await readFile(join(`${seeded.path}.lock`, "owner.json"), "utf8"));
    assert.equal(owner.pid, child.pid, "the lock records its holder");
    assert.equal(typeof owner.host, "string");
    assert.equal(typeof owner.started_at, "number");
    child.kill("SIGKILL");
    await once(child, "exit");
    assert.equal(
      (await readdir(dir)).filter((f) => f.includes(".tmp-")).length,
      1,
      "the killed save left a temporary file",
    );

    // lockWaitMs 0: a lock held by a live process would fail at once, so a success proves the dead one was taken over.
    const store = new FileStateStore(dir, { lockWaitMs: 0 });
    const restored = await store.load();
    assert.equal(restored.warning, null);
    assert.equal(restored.state?.models.length, 1);
    assert.deepEqual(
      (await readdir(dir)).filter((f) => f.includes(".tmp-")),
      [],
      "no temporary file left",
    );
    await store.save(
      replacingDelta({ ...(restored.state as NonNullable<typeof restored.state>), saved_at: Date.now() }),
    );
    assert.ok(!(await readdir(dir)).includes(`${STATE_FILE_NAME}.lock`), "the lock is released after the save");
  });

  it("a lock held by a live process is still waited for and then refused", async (t) => {
    const dir = await tempDir(t);
    const store = new FileStateStore(dir, { lockWaitMs: 100 });
    const release = await lockfile.lock(store.path, { realpath: false });
    await writeFile(
      join(`${store.path}.lock`, "owner.json"),
      JSON.stringify({ pid: process.ppid, host: hostname(), started_at: 1 }),
    );
    await assert.rejects(
      store.save(replacingDelta({ saved_at: Date.now(), counters: emptyCountersForTest(), models: [] })),
      { code: "state_locked" },
    );
    await rm(join(`${store.path}.lock`, "owner.json"));
    await release();
  });

  it("a lock without an owner record (its holder killed between creating and recording it) is waited for briefly, then taken over", async (t) => {
    const dir = await tempDir(t);
    const empty = () => replacingDelta({ saved_at: Date.now(), counters: emptyCountersForTest(), models: [] });
    const lockDir = `${new FileStateStore(dir).path}.lock`;
    await mkdir(lockDir);
    // Just created: a live holder may be about to record itself.
    await assert.rejects(new FileStateStore(dir, { lockWaitMs: 0 }).save(empty()), { code: "state_locked" });
    // Untouched for longer than the grace: abandoned, taken over at once.
    const past = new Date(Date.now() - OWNERLESS_LOCK_GRACE_MS - 1000);
    await utimes(lockDir, past, past);
    await new FileStateStore(dir, { lockWaitMs: 0 }).save(empty());
    assert.ok(!(await readdir(dir)).includes(`${STATE_FILE_NAME}.lock`), "the lock is released after the save");
  });

  it("a new cache directory is created 0700 and the state file 0600; existing world-readable ones are left, with a warning", async (t) => {
    const dir = join(await tempDir(t), "nested", "cache");
    const store = new FileStateStore(dir);
    await store.save(replacingDelta({ saved_at: Date.now(), counters: emptyCountersForTest(), models: [] }));
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    assert.equal((await stat(store.path)).mode & 0o777, 0o600);
    assert.equal((await store.load()).warning, null);

    await chmod(dir, 0o755);
    await chmod(store.path, 0o644);
    const warning = (await store.load()).warning ?? "";
    assert.match(
      warning,
      /\(mode 0755\) and .*cache_state\.bin\.zst \(mode 0644\) are readable by every user; left as is/,
    );
    await store.save(replacingDelta({ saved_at: Date.now(), counters: emptyCountersForTest(), models: [] }));
    assert.equal((await stat(store.path)).mode & 0o777, 0o644, "a save keeps the existing file's mode");
    assert.equal((await stat(dir)).mode & 0o777, 0o755);
  });

  it("a newer schema version's file: one warning naming both versions, the file kept intact under its own name, an empty cache", async (t) => {
    const dir = await tempDir(t);
    const file = join(dir, STATE_FILE_NAME);
    const newer = await compress(
      JSON.stringify({ format: "inferno-cache-state", schema_version: 99, future: [1, 2, 3] }),
    );
    await writeFile(file, newer);

    const { cache, logger, clock } = await open(dir);
    assert.equal(logger.warnings.length, 1, logger.warnings.join("\n"));
    assert.match(
      logger.warnings[0] ?? "",
      /newer Inferno \(schema version 99; this build reads up to 2\); it was kept intact as .*\.newer-v99-\d{8}T\d{9}Z/,
    );
    assert.doesNotMatch(logger.warnings[0] ?? "", /corrupt|could not be decoded/);
    const files = await readdir(dir);
    const kept = files.filter((f) => f.startsWith(`${STATE_FILE_NAME}.newer-v99-`));
    assert.equal(kept.length, 1);
    assert.deepEqual(
      files.filter((f) => f.includes(".corrupt-")),
      [],
    );
    assert.deepEqual(
      await readFile(join(dir, kept[0] ?? "")),
      newer,
      "the newer build's statistics are kept byte for byte",
    );
    const stats = cache.stats();
    assert.deepEqual([stats.hits, stats.misses, stats.models.length], [0, 0, 0]);
    assert.equal(cache.restored.warning, logger.warnings[0]);
    await use(cache, clock, ["b.gguf"]);
    await cache.close();
    assert.ok((await readdir(dir)).includes(STATE_FILE_NAME), "this build saves its own file afterwards");
    assert.deepEqual(await readFile(join(dir, kept[0] ?? "")), newer, "and never touches the newer one");
  });

  it("newer files are not counted in (nor pruned with) the 3 quarantined corrupt files", async (t) => {
    const dir = await tempDir(t);
    let now = Date.UTC(2026, 0, 1);
    const store = new FileStateStore(dir, { now: () => (now += 1000) });
    await writeFile(store.path, await compress(JSON.stringify({ format: "inferno-cache-state", schema_version: 3 })));
    assert.match((await store.load()).warning ?? "", /schema version 3/);
    for (let i = 0; i < 4; i++) {
      await writeFile(store.path, "garbage");
      assert.match((await store.load()).warning ?? "", /could not be decoded/);
    }
    const files = (await readdir(dir)).sort();
    assert.deepEqual(files, [
      `${STATE_FILE_NAME}.corrupt-20260101T000003000Z`,
      `${STATE_FILE_NAME}.corrupt-20260101T000004000Z`,
      `${STATE_FILE_NAME}.corrupt-20260101T000005000Z`,
      `${STATE_FILE_NAME}.newer-v3-20260101T000001000Z`,
    ]);
  });

  it("a newer file that cannot be set aside at start (locked) is set aside by the next save, never overwritten", async (t) => {
    const dir = await tempDir(t);
    const store = new FileStateStore(dir, { lockWaitMs: 200, now: () => Date.UTC(2026, 0, 1) });
    const newer = await compress(JSON.stringify({ format: "inferno-cache-state", schema_version: 7 }));
    await writeFile(store.path, newer);
    const release = await lockfile.lock(store.path, { realpath: false });
    const { state, warning } = await store.load();
    await release();
    assert.equal(state, null);
    assert.match(warning ?? "", /schema version 7; .* not renamed yet .* never overwrite it/);
    assert.deepEqual(await readFile(store.path), newer, "still in place");
    await store.save(
      replacingDelta({
        saved_at: 1,
        counters: { ...emptyCountersForTest(), hits: 1 },
        models: [],
      }),
    );
    assert.deepEqual(await readFile(join(dir, `${STATE_FILE_NAME}.newer-v7-20260101T000000000Z`)), newer);
    assert.equal((await store.load()).state?.counters.hits, 1);
  });

  it("a leftover temporary file and a corrupt state file at start: the temp file removed, the state quarantined", async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, `${STATE_FILE_NAME}.tmp-123-abcd`), "half a write");
    await writeFile(join(dir, STATE_FILE_NAME), "not zstd at all");
    const store = new FileStateStore(dir, { now: () => Date.UTC(2026, 0, 1) });
    const { state, warning } = await store.load();
    assert.equal(state, null);
    assert.match(warning ?? "", /could not be decoded/);
    assert.deepEqual(await readdir(dir), [`${STATE_FILE_NAME}.corrupt-20260101T000000000Z`]);
  });

  it("keeps only the newest 3 quarantined files", async (t) => {
    const dir = await tempDir(t);
    let now = Date.UTC(2026, 0, 1);
    const store = new FileStateStore(dir, { now: () => (now += 1000) });
    for (let i = 0; i < 5; i++) {
      await writeFile(store.path, "garbage");
      const { warning } = await store.load();
      assert.ok(warning);
    }
    const corrupt = (await readdir(dir)).filter((f) => f.includes(".corrupt-")).sort();
    assert.deepEqual(corrupt, [
      `${STATE_FILE_NAME}.corrupt-20260101T000003000Z`,
      `${STATE_FILE_NAME}.corrupt-20260101T000004000Z`,
      `${STATE_FILE_NAME}.corrupt-20260101T000005000Z`,
    ]);
  });

  it("a missing directory or file starts empty, silently", async (t) => {
    const dir = join(await tempDir(t), "not", "yet");
    const { cache, logger } = await open(dir);
    assert.deepEqual(logger.warnings, []);
    assert.equal(cache.stats().models.length, 0);
    await cache.close();
    assert.ok((await readdir(dir)).includes(STATE_FILE_NAME), "the directory is created on save");
  });

  it("removes temporary files of an interrupted save at start", async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, `${STATE_FILE_NAME}.tmp-123-abcd`), "half a write");
    const store = new FileStateStore(dir);
    await store.load();
    assert.deepEqual(await readdir(dir), []);
  });

  it("an unwritable directory: one warning, the cache works in memory, last_save reports the failure", async (t) => {
    const base = await tempDir(t);
    await writeFile(join(base, "a-file"), "");
    const dir = join(base, "a-file", "cache");
    const { cache, clock, logger } = await open(dir, { persist_interval_seconds: 60 });
    // The periodic save does real (failing) I/O: wait for its event rather than for an amount of time.
    const nextSave = () =>
      new Promise<void>((resolve) => {
        const off = cache.on("save", () => {
          off();
          resolve();
        });
      });
    await use(cache, clock, ["a.gguf"]);
    let saved = nextSave();
    await clock.advance(60_000);
    await saved;
    await use(cache, clock, ["b.gguf"]);
    saved = nextSave();
    await clock.advance(60_000);
    await saved;
    const stats = cache.stats();
    assert.equal(stats.last_save.ok, false);
    assert.match(stats.last_save.error ?? "", /ENOTDIR|not a directory/);
    assert.equal(stats.unsaved_changes, true);
    assert.equal(stats.hits + stats.misses, 2);
    assert.equal(logger.warnings.length, 1, logger.warnings.join("\n"));
    await cache.close();
    assert.equal(logger.warnings.length, 1);
  });

  it("persist_cache = false writes nothing, even on close or saveCache()", async (t) => {
    const dir = await tempDir(t);
    const { cache, clock } = await open(dir, { persist_cache: false, persist_interval_seconds: 1 });
    await use(cache, clock, ["a.gguf", "b.gguf"]);
    await clock.advance(10_000);
    const result = await cache.saveCache();
    assert.equal(result.ok, false);
    await cache.close();
    assert.deepEqual(await readdir(dir), []);
    assert.equal(cache.stats().state_file, null);
  });

  it("saves under a cross-process lock: a held lock makes a save fail with StateLocked, concurrent saves never interleave", async (t) => {
    const dir = await tempDir(t);
    const a = new FileStateStore(dir, { lockWaitMs: 200 });
    const b = new FileStateStore(dir, { lockWaitMs: 5000 });
    const state = (n: number) =>
      replacingDelta({
        saved_at: n,
        counters: { ...emptyCountersForTest(), hits: n },
        models: [],
      });
    await a.save(state(1));
    const release = await lockfile.lock(a.path, { realpath: false });
    await assert.rejects(a.save(state(2)), { code: "state_locked" });
    await release();
    await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).save(state(i + 10)).catch(() => b.save(state(i + 10)))),
    );
    const { state: final, warning } = await b.load();
    assert.equal(warning, null);
    assert.ok(final && final.counters.hits >= 10);
    assert.deepEqual((await readdir(dir)).sort(), [STATE_FILE_NAME]);
  });
});
