/**
 * `backend.spare_host = false`, for machines where memory is tight: no model host waits idle — none at start, none
 * after a load, none once the model is unloaded — and a load starts its own host.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createBackends, type HostedBackend } from "../../src/backends/index.js";
import { createRuntime } from "../../src/runtime/index.js";
import { hostBundle } from "../../testkit/host-bundle.js";
import { descendants, gone } from "../../testkit/process.js";
import { testSetup } from "../../testkit/server.js";

test("without the spare host no host runs idle, and each load starts its own", async (t) => {
  const { config } = await testSetup(t, { config: { backend: { isolation: "process", spare_host: false } } });
  assert.equal(config.backend.spare_host, false);
  const entry = await hostBundle();
  // Processes of ours before the runtime (e.g. the bundler's service) are not hosts.
  const before = new Set(descendants(process.pid));
  const hosts = () => descendants(process.pid).filter((pid) => !before.has(pid));
  const backends = createBackends(config.backend, { entry });
  const runtime = await createRuntime(config, { backends });
  t.after(() => runtime.close());
  const hosted = backends.gguf as HostedBackend;
  await runtime.cache.warmupDone;
  assert.deepEqual(hosts(), [], "nothing started ahead at start");

  const answer = await runtime.cache.withModel("tiny", (m) =>
    m.kind === "text" ? m.complete("Once upon a time", { maxTokens: 2, temperature: 0 }) : null,
  );
  assert.ok(answer !== null && answer.usage.completionTokens >= 1);
  await new Promise(setImmediate);
  assert.equal(hosted.sparePid, null, "no spare started after the load");
  const [host, ...others] = hosts();
  assert.ok(host !== undefined && others.length === 0, `one host, the model's: ${hosts().join(", ")}`);

  await runtime.cache.evict("tiny", { force: true });
  assert.ok(await gone(host, 5000), "the model's host ended with its model");
  assert.equal(hosted.sparePid, null);
});
