/**
 * The real `inferno serve` process: requests, SIGTERM (state saved, exit 0), serve again — the used model is loaded by
 * warm-up before the first request, which is then a hit.
 */
import assert from "node:assert/strict";
import { access } from "node:fs/promises";
import { join } from "node:path";
import { it } from "node:test";
import type { CacheStats, LoadedModelInfo } from "../../src/cache/types.js";
import { spawnInferno } from "../../testkit/process.js";
import { testSetup, waitFor } from "../../testkit/server.js";

async function getJson<T>(url: string): Promise<T> {
  return (await (await fetch(url)).json()) as T;
}

async function complete(url: string, model: string): Promise<void> {
  const response = await fetch(`${url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, prompt: "Once upon a time", max_tokens: 2 }),
  });
  assert.equal(response.status, 200, await response.clone().text());
  await response.json();
}

it("serve, SIGTERM saves the state and exits 0; serving again warms the used model and its first request is a hit", async (t) => {
  const setup = await testSetup(t, {
    models: { gguf: { "used.gguf": { seed: 1 }, "unused.gguf": { seed: 2 } } },
  });
  const stateFile = join(setup.cacheDir, "cache_state.bin.zst");

  const first = spawnInferno(t, ["serve"], setup);
  const [, url1] = await first.waitForLine(/serving \d+ model\(s\) on (http:\S+)/);
  for (let i = 0; i < 3; i++) await complete(url1 as string, "used.gguf");
  assert.equal(await first.stop("SIGTERM"), 0, first.stderr());
  await access(stateFile);

  const second = spawnInferno(t, ["serve"], setup);
  const [, url2] = await second.waitForLine(/serving \d+ model\(s\) on (http:\S+)/);
  const url = url2 as string;
  await waitFor(async () => (await getJson<{ warmup: string }>(`${url}/health`)).warmup !== "running");
  const resident = (await getJson<{ data: LoadedModelInfo[] }>(`${url}/v1/cache/models`)).data;
  assert.deepEqual(
    resident.map((m) => [m.name, m.state]),
    [["used.gguf", "ready"]],
  );

  const before = await getJson<CacheStats>(`${url}/v1/cache/stats`);
  assert.equal(before.models.find((m) => m.name === "used.gguf")?.requests, 3, "restored statistics");
  await complete(url, "used.gguf");
  const after = await getJson<CacheStats>(`${url}/v1/cache/stats`);
  assert.equal(after.hits, before.hits + 1);
  assert.equal(after.misses, before.misses);
  assert.equal(
    after.models.find((m) => m.name === "used.gguf")?.hits,
    (before.models.find((m) => m.name === "used.gguf")?.hits ?? 0) + 1,
  );
  assert.equal(await second.stop("SIGTERM"), 0, second.stderr());
});
