/**
 * A stuck file system (issue 23, item 5): the state file is a FIFO nobody writes, so reading it never returns — the
 * call holds one of Node's file-system threads for good, as a hung disk does. `serve` must still exit after SIGTERM
 * (the save reported failed) and `inferno cache save` must exit, each within the store's bound per call
 * (`cache.state_timeout_seconds`, set to 2 s here so the test does not sit out the 10 s default several times).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { it } from "node:test";
import { STATE_FILE_NAME } from "../../src/cache/persistence/file-store.js";
import { cacheSchema } from "../../src/config/schema.js";
import { spawnInferno } from "../../testkit/process.js";
import { testSetup } from "../../testkit/server.js";

/** Start-up and exit of a process from source on a busy machine, beyond the bounds themselves. */
const SLACK_MS = 20_000;
/** `cache.state_timeout_seconds` for these tests. */
const STATE_TIMEOUT_SECONDS = 2;
const FS_TIMEOUT_MS = STATE_TIMEOUT_SECONDS * 1000;

async function stuckSetup(t: Parameters<typeof testSetup>[0]) {
  const setup = await testSetup(t, {
    config: { cache: { enable_warmup: false, state_timeout_seconds: STATE_TIMEOUT_SECONDS } },
  });
  await mkdir(setup.cacheDir, { recursive: true });
  execFileSync("mkfifo", [join(setup.cacheDir, STATE_FILE_NAME)]);
  return setup;
}

it("cache.state_timeout_seconds is 10 s unless set, each call of the state file", () => {
  assert.equal(cacheSchema.parse({}).state_timeout_seconds, 10);
});

it("SIGTERM to serve with a stuck state file: it exits within the bounds, the save reported failed", async (t) => {
  const setup = await stuckSetup(t);
  const server = spawnInferno(t, ["serve"], setup);
  await server.waitForLine(/serving \d+ model\(s\) on (http:\S+)/);
  const stopped = performance.now();
  const code = await server.stop("SIGTERM");
  const elapsed = performance.now() - stopped;
  assert.ok(elapsed < FS_TIMEOUT_MS + SLACK_MS, `exited ${Math.round(elapsed)} ms after SIGTERM`);
  assert.ok(code !== 0, `exit ${code}`);
  assert.match(server.stderr(), /could not be saved|did not finish within/, server.stderr());
});

it("inferno cache save with a stuck state file exits, naming the failure", async (t) => {
  const setup = await stuckSetup(t);
  const started = performance.now();
  const save = spawnInferno(t, ["cache", "save"], setup);
  const code = await save.stop("SIGCONT");
  const elapsed = performance.now() - started;
  assert.ok(elapsed < 2 * FS_TIMEOUT_MS + SLACK_MS, `exited after ${Math.round(elapsed)} ms`);
  assert.ok(code !== 0);
  assert.match(save.stderr(), /did not finish within/);
});
