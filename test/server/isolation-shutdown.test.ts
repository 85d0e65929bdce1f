/** No model host outlives the server: SIGTERM (after the final save) and SIGKILL (hosts notice the lost pipe). */
import assert from "node:assert/strict";
import { it } from "node:test";
import type { LoadedModelInfo } from "../../src/cache/types.js";
import { HOSTED, hostsOf, llamaStarted, runningAfter } from "../../testkit/hosts.js";
import { spawnInferno } from "../../testkit/process.js";
import { testSetup } from "../../testkit/server.js";

for (const signal of ["SIGKILL", "SIGTERM"] as const) {
  it(`${signal} to the server leaves no model host alive after 2 s`, async (t) => {
    const setup = await testSetup(t, { config: { cache: { enable_warmup: false }, backend: HOSTED } });
    const server = spawnInferno(t, ["serve"], setup);
    const [, url] = await server.waitForLine(/serving \d+ model\(s\) on (http:\S+)/);
    const response = await fetch(`${url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny.gguf", prompt: "Hi", max_tokens: 1 }),
    });
    assert.equal(response.status, 200);
    const modelPid = ((await (await fetch(`${url}/v1/cache/models`)).json()) as { data: LoadedModelInfo[] }).data[0]
      ?.pid;
    const hosts = await hostsOf(server.child.pid as number);
    assert.ok(
      modelPid && hosts.includes(modelPid),
      `the model's host ${modelPid} is among the server's hosts ${hosts}`,
    );
    // The spare host, started after the load, may still be booting Node on a busy machine: it notices once it runs.
    await llamaStarted(hosts);
    const code = await server.stop(signal);
    if (signal === "SIGTERM") assert.equal(code, 0, server.stderr());
    assert.deepEqual(await runningAfter(hosts, 2000), [], "every host is gone within 2 s");
  });
}
