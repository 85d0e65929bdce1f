/**
 * The scenario of issue 10, for one signal (each signal in its own test file, so each file stays short): a host killed
 * in the middle of a streamed completion.
 */
import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import { APIError } from "openai";
import { FileStateStore } from "../../src/cache/persistence/file-store.js";
import { HOSTED, loaded, running, stats } from "../../testkit/hosts.js";
import { metricSample, scrapeMetrics, startTestServer, waitFor } from "../../testkit/server.js";

const GREEDY = { temperature: 0 };

/**
 * Two models in hosts; `signal` to a's host after the first streamed chunk: the client gets an error event, the server
 * stays healthy, b answers at once from its own host, evictions.crashed is 1 (stats, /metrics, the state file), and the
 * next request to a succeeds (one crash does not start the cooldown).
 */
export async function crashMidStream(t: TestContext, signal: NodeJS.Signals): Promise<void> {
  const s = await startTestServer(t, {
    models: { gguf: { "a.gguf": { seed: 1 }, "b.gguf": { seed: 2 } } },
    config: { cache: { enable_warmup: false }, backend: HOSTED },
  });
  const client = s.openai();
  await client.completions.create({ model: "b.gguf", prompt: "Hi", max_tokens: 1 });
  await client.completions.create({ model: "a.gguf", prompt: "Hi", max_tokens: 1 });
  const pids = new Map((await loaded(s)).map((m) => [m.name, m.pid as number]));
  const [aPid, bPid] = [pids.get("a.gguf") as number, pids.get("b.gguf") as number];
  assert.ok(aPid !== bPid && (await running(aPid)) && (await running(bPid)), "each model runs in a host of its own");

  const stream = await client.completions.create({
    model: "a.gguf",
    prompt: "Once",
    max_tokens: 400,
    stream: true,
    ...GREEDY,
  });
  let chunks = 0;
  await assert.rejects(
    (async () => {
      for await (const _chunk of stream) if (++chunks === 1) process.kill(aPid, signal);
    })(),
    (error: Error) => {
      assert.ok(error instanceof APIError, String(error));
      assert.match(error.message, new RegExp(`model host of a\\.gguf \\(pid ${aPid}\\) was ended by signal ${signal}`));
      return true;
    },
  );
  assert.ok(chunks >= 1);

  assert.equal((await fetch(`${s.url}/health`)).status, 200);
  const other = await client.completions.create({ model: "b.gguf", prompt: "Once", max_tokens: 3, ...GREEDY });
  assert.ok(other.choices[0]?.text);
  await waitFor(async () => (await stats(s)).evictions.crashed === 1);
  assert.deepEqual(
    (await loaded(s)).map((m) => [m.name, m.pid]),
    [["b.gguf", bPid]],
    "b kept its host; a was unloaded",
  );

  const again = await client.completions.create({ model: "a.gguf", prompt: "Once", max_tokens: 3, ...GREEDY });
  assert.equal(again.choices[0]?.finish_reason, "length");
  assert.equal((await stats(s)).evictions.crashed, 1);
  assert.equal(metricSample(await scrapeMetrics(s.url), 'inferno_cache_evictions_total{reason="crashed"}'), 1);
  await s.runtime.cache.saveCache();
  const saved = await new FileStateStore(s.cacheDir).load();
  assert.equal(saved.state?.counters.evictions.crashed, 1, "the state file counts crashes too");
}
