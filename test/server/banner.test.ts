/**
 * The start banner (issue 23, item 7) counts and suggests only models that read: an invalid file is neither counted
 * nor offered as the example to try.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { it } from "node:test";
import { spawnInferno } from "../../testkit/process.js";
import { testSetup } from "../../testkit/server.js";

it("an invalid model file is not counted nor suggested by the banner", async (t) => {
  const setup = await testSetup(t, { models: { gguf: { "z.gguf": {} } } });
  await writeFile(join(setup.modelsDir, "aaa-bad.gguf"), Buffer.from("GGUF but not really a model"));
  const serve = spawnInferno(t, ["serve"], setup);
  const [, count] = await serve.waitForLine(/serving (\d+) model\(s\) on (http:\S+)/);
  assert.equal(count, "1");
  const [line] = await serve.waitForLine(/^try: .*/);
  assert.match(line, /"model":"z\.gguf"/);
  assert.match(serve.stderr(), /1 model file\(s\) are invalid/);
  assert.equal(await serve.stop("SIGTERM"), 0, serve.stderr());
});
