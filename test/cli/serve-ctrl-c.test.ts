/**
 * Ctrl-C in the first seconds of `inferno serve` (the model host starting llama.cpp, the restore, the first listen):
 * the terminal signals the whole process group; the server ends quietly — no stack trace, no "Failed to load a
 * prebuilt binary" from a host signalled mid-start, no warning that the runtime could not start.
 */
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { it } from "node:test";
import { spawnInferno } from "../../testkit/process.js";
import { testSetup } from "../../testkit/server.js";

// Moments across the start of the CLI as spawned (compiled: testkit/compiled-cli.ts), which listens after ~1 s on a
// busy machine (a start under tsx took 3-4 s and was signalled at 400-4500 ms): in the imports, before and after the
// signal handler, while the runtime and the spare host start llama.cpp, about the first listen.
for (const delayMs of [200, 500, 1000, 1500]) {
  it(`Ctrl-C ${delayMs} ms after serve starts (model hosts on) exits quietly`, async (t) => {
    const setup = await testSetup(t, { config: { backend: { isolation: "process" } } });
    const serve = spawnInferno(t, ["serve"], { ...setup, group: true });
    await sleep(delayMs);
    const { code, signal } = await serve.signalGroup("SIGINT");
    const stderr = serve.stderr();
    // Before Node installs the server's handler, SIGINT's default ends the process: quiet too.
    assert.ok(code === 0 || code === 130 || signal === "SIGINT", `exit ${code} ${signal}\n${stderr}`);
    assert.doesNotMatch(stderr, /Failed to load a prebuilt binary/);
    assert.doesNotMatch(stderr, /^\s+at /m, "no stack trace");
    assert.doesNotMatch(stderr, /could not start/);
    assert.doesNotMatch(stderr, /"level":(40|50)/, "no warning or error");
  });
}
