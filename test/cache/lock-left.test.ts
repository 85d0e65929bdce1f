/**
 * The lock directory does not outlive a save whose release failed (issue 23, item 7: an empty `.lock` directory was
 * left after 2 of 4 clean exits with a large state): proper-lockfile, having called the lock compromised (a refresh that
 * came late), refuses to release it and leaves the directory.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { it } from "node:test";
import { FileStateStore, nodeFileSystem, STATE_FILE_NAME } from "../../src/cache/persistence/file-store.js";
import { decodeState } from "../../src/cache/persistence/codec.js";
import { validDocument } from "../../testkit/out-of-range.js";
import { tempDir } from "../../testkit/tmp.js";

it("a save whose lock release fails leaves no empty lock directory", async (t) => {
  const dir = await tempDir(t, "inferno-lock-");
  const store = new FileStateStore(dir, {
    fs: {
      ...nodeFileSystem,
      // The lock is taken for real; its release fails as a compromised lock's does, without removing the directory.
      lock: async (file, options) => {
        await nodeFileSystem.lock(file, options);
        return () => Promise.reject(Object.assign(new Error("Lock is already released"), { code: "ERELEASED" }));
      },
    },
  });
  const now = Date.now();
  const state = decodeState(Buffer.from(JSON.stringify(validDocument(now))), now);
  await store.update(() => ({ state, result: null }));
  assert.ok(existsSync(join(dir, STATE_FILE_NAME)), "the update wrote the state");
  assert.ok(!existsSync(join(dir, `${STATE_FILE_NAME}.lock`)), "the lock directory was removed");
});
