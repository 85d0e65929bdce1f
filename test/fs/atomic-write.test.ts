import assert from "node:assert/strict";
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import * as fsPromises from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { type AtomicFileSystem, writeFileAtomic } from "../../src/fs/atomic-write.js";

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "inferno-atomic-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** node:fs/promises, recording each call (`fsync <path>` for a sync), and failing the calls `fail` names. */
function recording(calls: string[], fail: (call: string) => boolean = () => false): AtomicFileSystem {
  const check = (call: string) => {
    calls.push(call);
    if (fail(call)) throw Object.assign(new Error(`${call} failed`), { code: "EIO" });
  };
  return {
    open: async (path, flags, mode) => {
      const handle = await fsPromises.open(path, flags, mode);
      return {
        chmod: (m) => handle.chmod(m),
        writeFile: async (data) => {
          check("write");
          await handle.writeFile(data);
        },
        sync: async () => {
          check(`fsync ${path}`);
          await handle.sync();
        },
        close: () => handle.close(),
      };
    },
    rename: async (from, to) => {
      check("rename");
      await fsPromises.rename(from, to);
    },
    rm: (path, options) => fsPromises.rm(path, options),
    stat: (path) => fsPromises.stat(path),
  };
}

test("writes the file, fsyncs it before the rename and the directory after it, and leaves no temporary file", async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, "a.json");
  const calls: string[] = [];
  await writeFileAtomic(file, "héllo\n", { fs: recording(calls) });
  assert.equal(await readFile(file, "utf8"), "héllo\n");
  assert.deepEqual(
    calls.map((c) => c.replace(/a\.json\.tmp-\S+/, "<temp>")),
    ["write", `fsync ${join(dir, "<temp>")}`, "rename", `fsync ${dir}`],
  );
  assert.deepEqual(await readdir(dir), ["a.json"]);
});

test("a replaced file keeps its mode; a new one gets the mode asked for", async (t) => {
  const dir = await tempDir(t);
  const kept = join(dir, "kept");
  await writeFile(kept, "old");
  await chmod(kept, 0o640);
  await writeFileAtomic(kept, new Uint8Array([1, 2, 3]), { mode: 0o600 });
  assert.equal((await stat(kept)).mode & 0o777, 0o640);
  assert.deepEqual([...(await readFile(kept))], [1, 2, 3]);
  const fresh = join(dir, "fresh");
  await writeFileAtomic(fresh, "x", { mode: 0o600 });
  assert.equal((await stat(fresh)).mode & 0o777, 0o600);
});

for (const failing of ["write", "fsync", "rename"]) {
  test(`a failed ${failing} leaves the previous file whole and removes the temporary file`, async (t) => {
    const dir = await tempDir(t);
    const file = join(dir, "state");
    await writeFile(file, "previous");
    const fs = recording([], (call) => call.startsWith(failing) && !call.endsWith(dir));
    await assert.rejects(writeFileAtomic(file, "next", { fs }), new RegExp(`: ${failing}\\b.*failed$`));
    assert.equal(await readFile(file, "utf8"), "previous");
    assert.deepEqual(await readdir(dir), ["state"]);
  });
}

test("an exclusive write creates the file, or fails with EEXIST and leaves an existing one (and no temporary file)", async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, "config.toml");
  await writeFileAtomic(file, "first\n", { exclusive: true });
  assert.equal(await readFile(file, "utf8"), "first\n");
  await assert.rejects(writeFileAtomic(file, "second\n", { exclusive: true }), { code: "EEXIST" });
  assert.equal(await readFile(file, "utf8"), "first\n");
  assert.deepEqual(await readdir(dir), ["config.toml"]);
});
