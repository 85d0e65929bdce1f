/**
 * Issue 9 end to end on a real server: a pinned model is unloaded by DELETE only with `?force=true`; a chat request
 * for a tensor model is refused before anything loads or is evicted; /health and /metrics read the cheap summary.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { loaded } from "../../testkit/hosts.js";
import { metricSample, scrapeMetrics, startTestServer } from "../../testkit/server.js";

it("pins need force on DELETE; capability is checked before acquiring; counts reach /metrics", async (t) => {
  const s = await startTestServer(t, {
    models: { gguf: { "llama/tiny.gguf": {} }, onnx: ["add.onnx"] },
    config: { cache: { always_warm: ["tiny"], max_cached_models: 1 } },
  });
  await s.server.app.warmedUp;
  const loadedNames = async () => (await loaded(s)).map((m) => m.name);
  assert.deepEqual(await loadedNames(), ["llama/tiny.gguf"]);

  const refused = await s.getJson<{ error: { code: string; message: string } }>("/v1/chat/completions", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "add.onnx", messages: [{ role: "user", content: "hi" }] }),
  });
  assert.equal(refused.status, 400);
  assert.equal(refused.body.error.code, "model_capability_missing");
  assert.match(refused.body.error.message, /add\.onnx is an ONNX tensor model and cannot do chat completions/);
  assert.deepEqual(await loadedNames(), ["llama/tiny.gguf"], "nothing was loaded or evicted");
  assert.equal(s.runtime.cache.stats().loads, 1);

  const unknown = await s.getJson<{ error: { code: string } }>("/v1/completions", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "nope", prompt: "x" }),
  });
  assert.equal(unknown.status, 404);
  const stats = s.runtime.cache.stats();
  assert.deepEqual([stats.misses, stats.unknown_model_requests], [0, 1]);
  const metrics = await scrapeMetrics(s.url);
  assert.equal(metricSample(metrics, "inferno_cache_unknown_model_requests_total"), 1);
  assert.equal(metricSample(metrics, "inferno_cache_models_loaded"), 1);

  const name = encodeURIComponent("tiny");
  const pinned = await s.getJson<{ error: { code: string } }>(`/v1/cache/models/${name}`, { method: "DELETE" });
  assert.equal(pinned.status, 409);
  assert.equal(pinned.body.error.code, "model_pinned");
  assert.deepEqual(await loadedNames(), ["llama/tiny.gguf"]);
  const forced = await s.getJson<{ unloaded: boolean }>(`/v1/cache/models/${name}?force=true`, { method: "DELETE" });
  assert.deepEqual(forced.body, { name: "tiny", unloaded: true });
  assert.deepEqual(await loadedNames(), []);
  const bad = await s.getJson<{ error: { code: string } }>(`/v1/cache/models/${name}?force=maybe`, {
    method: "DELETE",
  });
  assert.equal(bad.status, 400);
});
