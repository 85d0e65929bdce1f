/**
 * The state file on file systems that fail (issue 9 item 7, issue 14 item 6): read-only, full and forbidden ones fail a
 * save at once with the real cause, leave the previous file intact and warn once per cause; a stuck one (a call that
 * never finishes, the lock's included) fails the save with `StateTimeout` and cannot hang shutdown.
 *
 * Full and read-only file systems are real: a 64 KiB tmpfs and a read-only remount (root only — skipped, saying so,
 * where mounting is not permitted). Permission errors are real too: a chmod'ed directory, written by a user who is not
 * root (as root the test runs the save in a child process under the `nobody` user).
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { chmod, mkdtemp, open, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import { FakeBackend } from "../../src/backends/fake.js";
import { ManualClock } from "../../src/cache/clock.js";
import { ModelCache } from "../../src/cache/model-cache.js";
import {
  FileStateStore,
  nodeFileSystem,
  STATE_FILE_NAME,
  type StoreFileSystem,
} from "../../src/cache/persistence/file-store.js";
import type { StateDelta } from "../../src/cache/persistence/types.js";
import { emptyCounters } from "../../src/cache/state-view.js";
import { backendSchema } from "../../src/config/schema.js";
import { StateTimeout, StateUnwritable } from "../../src/errors/index.js";
import { cacheConfig, RecordingLogger } from "../../testkit/cache-harness.js";
import { FakeModelSource } from "../../testkit/fake-models.js";
import { deltaOf, usedOnceModel } from "../../testkit/state-samples.js";
import { tempDir } from "../../testkit/tmp.js";

const isRoot = process.getuid?.() === 0;

/** A delta of `count` models with random names (so it does not compress to nothing). */
function delta(count: number): StateDelta {
  const now = Date.now();
  const random = () => Math.random().toString(36).slice(2);
  const models = Array.from({ length: count }, (_, i) =>
    usedOnceModel(now, `/models/${i}-${random()}.gguf`, `${i}-${random()}.gguf`, i),
  );
  return deltaOf(now, models, emptyCounters());
}

/** Mounts a tmpfs of `size` at a new directory (unmounted after the test); null when mounting is not permitted. */
async function tmpfs(t: TestContext, size: string): Promise<string | null> {
  if (!isRoot) return null;
  const dir = await mkdtemp(join(tmpdir(), "inferno-test-mnt-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0700`, "tmpfs", dir], { stdio: "pipe" });
  } catch {
    await rm(dir, { recursive: true, force: true });
    return null;
  }
  t.after(async () => {
    execFileSync("umount", ["-l", dir], { stdio: "pipe" });
    await rm(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Writes to `path` until the file system is full. */
async function fill(path: string): Promise<void> {
  const handle = await open(path, "w");
  try {
    for (;;) await handle.write(Buffer.alloc(4096, 1));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error;
  } finally {
    await handle.close();
  }
}

const cannotMount = "needs root and permission to mount a tmpfs (mount -t tmpfs); CI may run as non-root";

async function openCache(dir: string, store: FileStateStore, models = ["a.gguf", "b.gguf"]) {
  const clock = new ManualClock();
  const logger = new RecordingLogger();
  const cache = await ModelCache.create(
    { ...cacheConfig({ persist_cache: true, persist_interval_seconds: 0 }), cache_dir: dir },
    backendSchema.parse({}),
    new FakeModelSource(models),
    { backends: { gguf: new FakeBackend({ timers: clock }) }, store, clock, logger },
  );
  await clock.run(cache.warmupDone);
  return { cache, clock, logger };
}

describe("a full disk (a 64 KiB tmpfs)", () => {
  it("fails the save at once with the real cause, keeps the previous file, warns once per distinct cause", async (t) => {
    const dir = await tmpfs(t, "64k");
    if (dir === null) return t.skip(cannotMount);
    // A long lock wait: a save that retried the lock on this failure would not finish within the test's time.
    const store = new FileStateStore(dir, { lockWaitMs: 600_000 });
    await store.save(delta(5));
    const before = await readFile(join(dir, STATE_FILE_NAME));
    await assert.rejects(store.save(delta(3000)), (error: unknown) => {
      assert.ok(error instanceof StateUnwritable, String(error));
      assert.equal(error.details?.cause_code, "ENOSPC");
      assert.match(error.message, /no space is left on the device \(ENOSPC/);
      return true;
    });
    assert.deepEqual(await readFile(join(dir, STATE_FILE_NAME)), before, "the previous file is intact");
    assert.deepEqual(await readdir(dir), [STATE_FILE_NAME], "no temporary file or lock left behind");

    // Through the cache, the disk now full to the last page: every save fails the same way, one warning.
    await fill(join(dir, "filler"));
    const { cache, clock, logger } = await openCache(dir, store);
    for (const name of ["a.gguf", "b.gguf", "a.gguf"]) {
      await clock.run(cache.getModel(name));
      const saved = await cache.saveCache();
      assert.equal(saved.ok, false);
      assert.match(saved.error ?? "", /no space is left on the device \(ENOSPC/);
    }
    assert.equal(logger.warnings.filter((w) => /could not save/.test(w)).length, 1, logger.warnings.join("\n"));
    // A different cause is warned about too.
    execFileSync("mount", ["-o", "remount,ro", dir]);
    await clock.run(cache.getModel("b.gguf"));
    assert.match((await cache.saveCache()).error ?? "", /read-only \(EROFS/);
    assert.equal(logger.warnings.filter((w) => /could not save/.test(w)).length, 2, logger.warnings.join("\n"));
    await cache.close();
    assert.equal(logger.warnings.filter((w) => /could not save/.test(w)).length, 2);
    assert.deepEqual(await readFile(join(dir, STATE_FILE_NAME)), before);
  });
});

describe("a read-only file system (a tmpfs remounted read-only)", () => {
  it("is detected at start (one warning, last_save.error), the cache works in memory, saves fail at once, the file stays", async (t) => {
    const dir = await tmpfs(t, "1m");
    if (dir === null) return t.skip(cannotMount);
    await new FileStateStore(dir).save(delta(5));
    const before = await readFile(join(dir, STATE_FILE_NAME));
    execFileSync("mount", ["-o", "remount,ro", dir]);

    const store = new FileStateStore(dir, { lockWaitMs: 600_000 });
    const { cache, clock, logger } = await openCache(dir, store);
    assert.equal(logger.warnings.length, 1, logger.warnings.join("\n"));
    assert.match(logger.warnings[0] ?? "", /cannot be saved/);
    assert.match(cache.stats().last_save.error ?? "", /the file system is read-only \(EROFS/);
    assert.equal(cache.restored.models, 5, "the state is still read");

    await clock.run(cache.getModel("a.gguf"));
    await clock.run(cache.getModel("b.gguf"));
    assert.equal(cache.stats().loads, 2, "the cache works in memory");
    const saved = await cache.saveCache();
    assert.equal(saved.ok, false);
    assert.match(saved.error ?? "", /read-only \(EROFS on mkdir\)/);
    await cache.close();
    assert.equal(logger.warnings.length, 1, "the same cause is not warned about again");
    assert.deepEqual(await readFile(join(dir, STATE_FILE_NAME)), before);
  });
});

describe("a directory this user may not write (chmod 0555)", () => {
  it("fails the save at once with EACCES as the cause and leaves the previous file", async (t) => {
    const base = await tempDir(t);
    const dir = join(base, "cache");
    await new FileStateStore(dir).save(delta(5));
    const before = await readFile(join(dir, STATE_FILE_NAME));
    await chmod(dir, 0o555);
    await chmod(base, 0o755);
    let result: { name: string; cause: string | null; message: string };
    if (isRoot) {
      // Root may write anywhere: the save runs as `nobody`, in a child process.
      const script = fileURLToPath(new URL("../../testkit/fixtures/save-state.ts", import.meta.url));
      const child = spawnSync(process.execPath, ["--import", import.meta.resolve("tsx"), script, dir], {
        uid: 65534,
        gid: 65534,
        encoding: "utf8",
        cwd: "/",
      });
      if (child.error || child.status !== 0)
        return t.skip(`cannot run a process as nobody: ${child.error?.message ?? child.stderr}`);
      result = JSON.parse(child.stdout) as typeof result;
    } else {
      const store = new FileStateStore(dir, { lockWaitMs: 600_000 });
      const error = await store.save(delta(1)).then(
        () => null,
        (e: unknown) => e as StateUnwritable,
      );
      result = {
        name: error?.name ?? "none",
        cause: (error?.details?.cause_code as string) ?? null,
        message: error?.message ?? "",
      };
    }
    assert.equal(result.name, "StateUnwritable");
    assert.equal(result.cause, "EACCES");
    assert.match(result.message, /permission denied \(EACCES/);
    assert.deepEqual(await readFile(join(dir, STATE_FILE_NAME)), before);
  });
});

describe("a stuck file system", () => {
  /** The real calls, except `stuck`, which never finishes. */
  function stuckAt(stuck: keyof StoreFileSystem): StoreFileSystem {
    return { ...nodeFileSystem, [stuck]: () => new Promise<never>(() => {}) };
  }

  for (const call of ["lock", "rename", "open"] as const) {
    it(`a ${call} that never finishes fails the save with StateTimeout; shutdown completes; the previous file stays`, async (t) => {
      const dir = await tempDir(t);
      await new FileStateStore(dir).save(delta(2));
      const before = await readFile(join(dir, STATE_FILE_NAME));
      const store = new FileStateStore(dir, { fs: stuckAt(call), fsTimeoutMs: 1000 });
      await assert.rejects(store.save(delta(1)), (error: unknown) => {
        assert.ok(error instanceof StateTimeout, String(error));
        assert.equal(error.code, "state_timeout");
        assert.equal(error.details?.operation, call);
        return true;
      });
      const { cache, clock, logger } = await openCache(
        dir,
        new FileStateStore(dir, { fs: stuckAt(call), fsTimeoutMs: 1000 }),
      );
      await clock.run(cache.getModel("a.gguf"));
      await cache.close();
      assert.match(cache.stats().last_save.error ?? "", new RegExp(`${call} .* did not finish within 1 s`));
      assert.equal(logger.warnings.filter((w) => /could not save/.test(w)).length, 1);
      assert.deepEqual(await readFile(join(dir, STATE_FILE_NAME)), before);
    });
  }
});
