/**
 * Warm-up and variants: a model loaded with other load settings — an Ollama request's `num_ctx`, a preset — is a cache
 * entry of its own whose key no listing of the models directory holds. `POST /v1/cache/warmup`, `inferno cache warmup`
 * without a server and a restarted server's warm-up load it again by its saved name, rather than skip it as "model
 * file not found" while its file is right there.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { runCli } from "../../testkit/cli.js";
import { startTestServer, waitFor } from "../../testkit/server.js";

const VARIANT = "tiny.gguf#ctx=384";
const PRESET = "fast";

test("variants and presets are warmed again by their saved names, live, from the state file and at a restart", async (t) => {
  const first = await startTestServer(t, {
    config: { models: { [PRESET]: { file: "tiny", context_size: 320 } }, cache: { warmup_strategy: "usage" } },
  });
  const generate = await first.getJson<{ done: boolean }>("/api/generate", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", prompt: "Hi", stream: false, options: { num_ctx: 384, num_predict: 1 } }),
  });
  assert.equal(generate.status, 200);
  await first
    .openai()
    .chat.completions.create({ model: PRESET, messages: [{ role: "user", content: "Hi" }], max_tokens: 1 });
  const names = () => first.runtime.cache.loadedModels().map((m) => m.name);
  assert.deepEqual(names().sort(), [PRESET, VARIANT].sort());

  await first.getJson("/v1/cache/clear", { method: "POST" });
  const warm = await first.getJson<{ loaded: string[]; skipped: Array<{ name: string; reason: string }> }>(
    "/v1/cache/warmup",
    { method: "POST", headers: { "content-type": "application/json" }, body: "{}" },
  );
  assert.equal(warm.status, 200);
  assert.deepEqual(warm.body.skipped, []);
  assert.deepEqual(warm.body.loaded.sort(), [PRESET, VARIANT].sort());
  await first.stop();

  // No server: the plan a starting server would follow, from the state file.
  const plan = await runCli(["cache", "warmup", "--json"], { cwd: first.cwd, env: first.env });
  assert.equal(plan.code, 0, plan.stderr);
  const report = JSON.parse(plan.stdout) as { plan: string[]; skipped: unknown[] };
  assert.deepEqual(report.skipped, []);
  assert.deepEqual(report.plan.sort(), [PRESET, VARIANT].sort());

  const second = await startTestServer(t, { setup: first });
  await waitFor(async () => (await second.getJson<{ warmup: string }>("/health")).body.warmup !== "running");
  assert.deepEqual(
    second.runtime.cache
      .loadedModels()
      .map((m) => m.name)
      .sort(),
    [PRESET, VARIANT].sort(),
  );
});
