/** Two real models, room for one: alternating requests evict by capacity, and stats and /metrics agree on the count. */
import assert from "node:assert/strict";
import { it } from "node:test";
import type { CacheStats } from "../../src/cache/types.js";
import { metricSample as sample, scrapeMetrics, startTestServer } from "../../testkit/server.js";

it("max_cached_models = 1 with two models alternating: each switch is one capacity_count eviction", async (t) => {
  const s = await startTestServer(t, {
    models: { gguf: { "a.gguf": { seed: 1 }, "b.gguf": { seed: 2 } } },
    config: { cache: { max_cached_models: 1, enable_warmup: false, persist_cache: false } },
  });
  const client = s.openai();
  const order = ["a.gguf", "b.gguf", "a.gguf", "b.gguf", "b.gguf"];
  for (const model of order) await client.completions.create({ model, prompt: "Hi", max_tokens: 2 });

  const stats = (await s.getJson<CacheStats>("/v1/cache/stats")).body;
  // a (miss), b (miss, evicts a), a (miss, evicts b), b (miss, evicts a), b (hit)
  assert.equal(stats.evictions.capacity_count, 3);
  assert.equal(stats.misses, 4);
  assert.equal(stats.hits, 1);
  assert.equal(stats.loads, 4);
  assert.equal(stats.models_loaded, 1);
  assert.equal(stats.models.find((m) => m.name === "b.gguf")?.requests, 3);

  const metrics = await scrapeMetrics(s.url);
  assert.equal(sample(metrics, 'inferno_cache_evictions_total{reason="capacity_count"}'), 3);
  assert.equal(sample(metrics, 'inferno_cache_evictions_total{reason="ttl"}'), 0);
  assert.equal(sample(metrics, "inferno_cache_misses_total"), 4);
  assert.equal(sample(metrics, "inferno_cache_hits_total"), 1);
  assert.equal(sample(metrics, "inferno_cache_loads_total"), 4);
  assert.equal(sample(metrics, "inferno_cache_load_duration_seconds_count"), 4);
  assert.equal(sample(metrics, "inferno_cache_models_loaded"), 1);
  assert.ok(sample(metrics, "inferno_cache_memory_bytes") > 0);
  assert.equal(sample(metrics, 'inferno_http_requests_total{method="POST",route="/v1/completions",status="200"}'), 5);
});

it("concurrent first requests for one model share one load and all succeed", async (t) => {
  const s = await startTestServer(t, { config: { cache: { enable_warmup: false, persist_cache: false } } });
  const client = s.openai();
  const results = await Promise.all(
    Array.from({ length: 6 }, (_, i) =>
      client.completions.create({ model: "tiny.gguf", prompt: `Request ${i}`, max_tokens: 2 }),
    ),
  );
  assert.equal(results.length, 6);
  for (const result of results) assert.ok((result.usage?.completion_tokens ?? 0) > 0);
  const stats = (await s.getJson<CacheStats>("/v1/cache/stats")).body;
  assert.equal(stats.loads, 1);
  // One request started the load; those that arrived while it ran joined it (coalesced); later ones hit.
  assert.equal(stats.misses, 1);
  assert.equal(stats.hits + stats.misses + stats.coalesced, 6);
  assert.equal(stats.models.find((m) => m.name === "tiny.gguf")?.requests, 6);
  assert.equal(s.runtime.cache.loadedModels()[0]?.leases, 0);
});
