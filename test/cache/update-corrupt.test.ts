/**
 * File-mode commands (`cache save`, `clear`, `evict`) on a state file that does not decode (issue 23, item 7): the
 * error names the file (it said only "zstd: not a zstd frame"), and the file is left as it is.
 */
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { it } from "node:test";
import { FileStateStore, STATE_FILE_NAME } from "../../src/cache/persistence/file-store.js";
import { StateCorrupt } from "../../src/errors/index.js";
import { tempDir } from "../../testkit/tmp.js";

it("an update of an undecodable state file fails with StateCorrupt naming the file, which stays as it was", async (t) => {
  const dir = await tempDir(t, "inferno-update-");
  const path = join(dir, STATE_FILE_NAME);
  await writeFile(path, "not zstd at all");
  const store = new FileStateStore(dir);
  await assert.rejects(
    store.update(() => {
      throw new Error("never called");
    }),
    (error: Error) => {
      assert.ok(error instanceof StateCorrupt, String(error));
      assert.ok(error.message.includes(path), error.message);
      assert.match(error.message, /not a zstd frame/);
      return true;
    },
  );
  assert.equal(await readFile(path, "utf8"), "not zstd at all");
});
