/** `inferno serve` takes `run`'s backend flags from the one table; its banner prints the base URL and a curl line that works. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { spawnInferno } from "../../testkit/process.js";
import { testSetup } from "../../testkit/server.js";

/** One thread, CPU only, and a port where no server answers: `run` loads in-process unless a test says otherwise. */

test("serve takes run's backend flags (--threads reaches the backend); the banner prints the base URL and a curl line that works", async (t) => {
  // The file says 2 threads, the flag 1 (one thread: two would crawl on a busy 2-core machine).
  const setup = await testSetup(t, { models: { gguf: { "tiny.gguf": {} } }, config: { backend: { threads: 2 } } });
  const server = spawnInferno(t, ["serve", "--threads", "1", "--context-size", "128", "--batch-size", "64"], {
    cwd: setup.cwd,
    env: setup.env,
  });
  const [, url] = (await server.waitForLine(/^Inferno is serving 1 model\(s\) on (\S+)$/)) as RegExpMatchArray;
  await server.waitForLine(/^try: curl /);
  assert.match(server.stdout(), new RegExp(`^OpenAI base URL: ${url}/v1$`, "m"));
  assert.match(
    server.stderr(),
    /"threads":1/,
    "the flag overrides the file's threads = 2 and reaches the backend's thread rule",
  );
  const curl = /^try: (curl .*)$/m.exec(server.stdout())?.[1] ?? "";
  const answered = spawnSync("sh", ["-c", curl], { encoding: "utf8" });
  assert.equal(answered.status, 0, answered.stderr);
  assert.equal(JSON.parse(answered.stdout).object, "chat.completion");
  assert.equal(await server.stop("SIGTERM"), 0);
});
