/** Binding and shutdown details of `startServer`, on the real runtime. */
import assert from "node:assert/strict";
import { access } from "node:fs/promises";
import { Writable } from "node:stream";
import { it } from "node:test";
import { createLogger, createRuntime, isLoopback, startServer } from "../../src/runtime/index.js";
import type { CacheStats } from "../../src/cache/types.js";
import { startTestServer, testSetup, waitFor } from "../../testkit/server.js";

it("isLoopback knows loopback addresses", () => {
  for (const host of ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"])
    assert.equal(isLoopback(host), true, host);
  for (const host of ["0.0.0.0", "::", "192.168.1.10", "example.com"]) assert.equal(isLoopback(host), false, host);
});

it("warns when binding beyond loopback without an api_key, and not with one", async (t) => {
  const setup = await testSetup(t, { config: { cache: { enable_warmup: false, persist_cache: false } } });
  let logs = "";
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs += chunk.toString();
      done();
    },
  });
  const runtime = await createRuntime(setup.config, { logger: createLogger({ destination, pretty: false }) });
  t.after(() => runtime.close());

  const open = await startServer(runtime, { host: "0.0.0.0", port: 0 });
  await open.close(0);
  const warnings = logs
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as { level: number; msg: string })
    .filter((entry) => entry.level === 40);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]?.msg ?? "", /binding to 0\.0\.0\.0, reachable from other machines, without an API key/);

  logs = "";
  const keyed = { ...runtime, config: { ...runtime.config, server: { ...runtime.config.server, api_key: "k" } } };
  const closed = await startServer(keyed, { host: "0.0.0.0", port: 0 });
  await closed.close(0);
  assert.doesNotMatch(logs, /without an API key/);
});

it("a port in use is a clear error naming the address", async (t) => {
  const setup = await testSetup(t, { config: { cache: { enable_warmup: false, persist_cache: false } } });
  const runtime = await createRuntime(setup.config);
  t.after(() => runtime.close());
  const first = await startServer(runtime, { port: 0 });
  t.after(() => first.close(0));
  await assert.rejects(startServer(runtime, { port: first.port }), (error: Error & { code?: string }) => {
    assert.equal(error.code, "listen_failed");
    assert.match(
      error.message,
      new RegExp(`cannot listen on 127\\.0\\.0\\.1:${first.port}: port ${first.port} is already in use`),
    );
    return true;
  });
});

it("saves the cache state periodically while serving (persist_interval_seconds)", async (t) => {
  const s = await startTestServer(t, { config: { cache: { persist_interval_seconds: 1, enable_warmup: false } } });
  await s.openai().completions.create({ model: "tiny.gguf", prompt: "Hi", max_tokens: 1 });
  // No explicit save: the periodic one (only when something changed) writes the request's statistics. On a busy
  // machine a periodic save may land between the load and the end of the request, so wait until a later one has
  // caught up with everything rather than for the first save.
  let stats: CacheStats | undefined;
  await waitFor(async () => {
    stats = (await s.getJson<CacheStats>("/v1/cache/stats")).body;
    return stats.last_save.ok === true && !stats.unsaved_changes;
  }, 100);
  assert.equal(stats?.models.find((m) => m.name === "tiny.gguf")?.requests, 1);
  await access(stats?.state_file ?? "");
});
