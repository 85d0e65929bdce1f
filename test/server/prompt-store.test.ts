/**
 * Saved prompt prefixes through the server, on a real nano llama: a model unloaded saves its evaluated prefix and the
 * next load restores it (cached_tokens, `prefix` events, /v1/cache/stats, /metrics); after a restart the warm-up
 * restores it before the first request; with `prompt_cache_per_key` no key reuses another's prefix.
 */
import assert from "node:assert/strict";
import { readdir, readFile, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { PassThrough } from "node:stream";
import { test } from "node:test";
import type { CacheEvents } from "../../src/cache/events.js";
import type { CacheStats } from "../../src/cache/types.js";
import { writeTinyLlamaGguf } from "../../src/models/gguf-writer.js";
import { createLogger } from "../../src/runtime/index.js";
import { runCli } from "../../testkit/cli.js";
import { metricSample, scrapeMetrics, startTestServer, type TestServer, waitFor } from "../../testkit/server.js";

type Json = Record<string, unknown>;

const SYSTEM =
  "You are the keeper of an old lighthouse on a rocky island. Every night you climb the stairs, count the steps, " +
  "light the lamp, listen to the sea and write down the ships that pass, their flags, their course and the weather.";

async function chat(s: TestServer, question: string, key?: string): Promise<{ text: string; cached: number }> {
  const response = await fetch(`${s.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify({
      model: "tiny",
      messages: [
        { role: "system", content: SYSTEM },
        { role: "user", content: question },
      ],
      temperature: 0,
      max_tokens: 6,
    }),
  });
  const body = (await response.json()) as Json;
  assert.equal(response.status, 200, JSON.stringify(body));
  const usage = body.usage as { prompt_tokens_details: { cached_tokens: number } };
  const text = (body.choices as Array<{ message: { content: string } }>)[0]?.message.content ?? "";
  return { text, cached: usage.prompt_tokens_details.cached_tokens };
}

test("unload, reload, restart: the saved prefix is restored (by the request, then by the warm-up)", async (t) => {
  // One sequence (a small machine's auto `parallel`): the warm-up requests must not take it from the restored prefix.
  const first = await startTestServer(t, { config: { backend: { parallel: 1 } } });
  const events: Array<CacheEvents["prefix"]> = [];
  first.runtime.cache.on("prefix", (e) => events.push(e));
  const fresh = await chat(first, "Night 2: what did you see?");
  await chat(first, "Night 1: what did you see?");
  await first.runtime.cache.evict("tiny");
  assert.deepEqual(
    events.map((e) => [e.action, e.name]),
    [["saved", "tiny.gguf"]],
  );

  const restored = await chat(first, "Night 2: what did you see?");
  assert.ok(restored.cached > 40, `${restored.cached} cached`);
  assert.equal(restored.text, fresh.text);
  assert.equal(events[1]?.action, "restored");
  const stats = (await first.getJson<CacheStats>("/v1/cache/stats")).body.prompt_cache;
  assert.equal(stats?.prefixes_saved, 1);
  assert.equal(stats?.prefixes_restored, 1);
  assert.ok((stats?.disk_bytes ?? 0) > 0);
  const metrics = await scrapeMetrics(first.url);
  assert.equal(metricSample(metrics, 'inferno_prompt_cache_prefixes_total{action="restored"}'), 1);
  assert.equal(metricSample(metrics, "inferno_prompt_cache_disk_bytes"), stats?.disk_bytes);
  const where = { cwd: first.cwd, env: { ...first.env, INFERNO_SERVER__PORT: String(first.server.port) } };
  const line = (await runCli(["cache", "stats"], where)).stdout;
  assert.match(line, /saved prefixes: 1 saved, 1 restored, 0 evicted, 0 quarantined, [\d.]+ \w+ on disk/);
  await first.stop();

  // The same models, configuration and cache directory: the warm-up loads the model and restores its prefixes.
  const second = await startTestServer(t, { setup: first });
  // What the directory holds is known from the start (read at start, or reported by the warm-up's restore).
  const atStart = (await second.getJson<CacheStats>("/v1/cache/stats")).body.prompt_cache;
  assert.ok((atStart?.disk_bytes ?? 0) > 0, JSON.stringify(atStart));
  await waitFor(async () => (await second.getJson<{ warmup: string }>("/health")).body.warmup !== "running");
  const warmed = (await second.getJson<CacheStats>("/v1/cache/stats")).body.prompt_cache;
  // One sequence, one prefix restored (and counted once, however often the warm-up requests had it put back).
  assert.equal(warmed?.prefixes_restored, 1, JSON.stringify(warmed));
  // The server's own warm-up requests (sent before /ready) are no one's generations.
  assert.equal(warmed?.generations, 0, JSON.stringify(warmed));
  const after = await chat(second, "Night 2: what did you see?");
  assert.ok(after.cached > 40, `${after.cached} cached`);
  assert.equal(after.text, fresh.text);
  // From the sequence the warm-up restored it into: the warm-up requests did not push it out to be read again.
  const used = (await second.getJson<CacheStats>("/v1/cache/stats")).body.prompt_cache;
  assert.equal(used?.prefixes_restored, warmed?.prefixes_restored, JSON.stringify(used));
});

test("prompt_cache_per_key: a prefix evaluated for one API key is never reused for another", async (t) => {
  const s = await startTestServer(t, { config: { cache: { prompt_cache_per_key: true }, backend: { parallel: 2 } } });
  const question = "Night 3: what did you see?";
  const a1 = await chat(s, question, "key-a");
  const a2 = await chat(s, question, "key-a");
  assert.ok(a2.cached > 0, "the same key reuses its prefix");
  const b = await chat(s, question, "key-b");
  assert.equal(b.cached, 0, "another key reuses nothing");
  assert.equal(b.text, a1.text);
  // Saved prefixes keep their key: after an unload, neither another key nor none restores key-a's; key-a does.
  await s.runtime.cache.evict("tiny");
  assert.equal((await chat(s, question, "key-c")).cached, 0);
  assert.equal((await chat(s, question)).cached, 0, "no key is a scope of its own");
  assert.ok((await chat(s, question, "key-a")).cached > 0);
});

test("a corrupt, truncated or swapped-model saved prefix is refused with one log line, and the answer is the one without it", async (t) => {
  const first = await startTestServer(t, { config: { backend: { parallel: 1 } } });
  const fresh = await chat(first, "Night 4: what did you see?");
  await first.stop();
  const prompts = join(first.config.cache.cache_dir, "prompts");
  const [state] = (await readdir(prompts)).filter((f) => f.endsWith(".state"));
  assert.ok(state, "a prefix was saved at shutdown");
  const path = join(prompts, state);
  const bytes = await readFile(path);
  const middle = bytes.length >> 1;
  bytes.writeUInt8((bytes.readUInt8(middle) ^ 0xff) & 0xff, middle); // the same size: only its sha256 tells
  await writeFile(path, bytes);

  const log = new PassThrough();
  const lines: Json[] = [];
  createInterface({ input: log }).on("line", (line) => lines.push(JSON.parse(line) as Json));
  const second = await startTestServer(t, { setup: first, logger: createLogger({ destination: log, pretty: false }) });
  await waitFor(async () => (await second.getJson<{ warmup: string }>("/health")).body.warmup !== "running");
  const after = await chat(second, "Night 4: what did you see?");
  assert.ok(after.cached < 10, `${after.cached} cached: the system prompt was evaluated again`);
  assert.equal(after.text, fresh.text);
  const refused = lines.filter((l) => /prompt prefix/.test(String(l.msg)));
  assert.equal(refused.length, 1, JSON.stringify(lines));
  assert.match(String(refused[0]?.reason), /sha256/);
  assert.deepEqual(await readdir(join(prompts, "quarantine")).then((f) => f.length), 2);
  await second.stop();

  // Saved again at this stop; truncated, it is refused by the scan, before any restore.
  const [again] = (await readdir(prompts)).filter((f) => f.endsWith(".state"));
  assert.ok(again);
  await truncate(join(prompts, again), 100);
  lines.length = 0;
  const third = await startTestServer(t, { setup: first, logger: createLogger({ destination: log, pretty: false }) });
  await waitFor(async () => (await third.getJson<{ warmup: string }>("/health")).body.warmup !== "running");
  assert.equal((await chat(third, "Night 4: what did you see?")).text, fresh.text);
  const scanned = lines.filter((l) => /prompt prefix/.test(String(l.msg)));
  assert.equal(scanned.length, 1, JSON.stringify(lines));
  assert.match(String(scanned[0]?.reason), /bytes/);
  await third.runtime.cache.evict("tiny");
  await chat(third, "Night 5: what did you see?");
  await third.stop();

  // Another model file under the same name: each of its saved prefixes is refused, in one line.
  assert.ok((await readdir(prompts)).filter((f) => f.endsWith(".state")).length >= 2);
  await writeTinyLlamaGguf(join(first.modelsDir, "tiny.gguf"), { seed: 2 });
  lines.length = 0;
  const fourth = await startTestServer(t, { setup: first, logger: createLogger({ destination: log, pretty: false }) });
  await waitFor(async () => (await fourth.getJson<{ warmup: string }>("/health")).body.warmup !== "running");
  const swapped = await chat(fourth, "Night 4: what did you see?");
  assert.ok(swapped.cached < 10, `${swapped.cached} cached`);
  const repeated = await chat(fourth, "Night 4: what did you see?");
  assert.ok(repeated.cached > 40 && repeated.text === swapped.text, JSON.stringify([swapped, repeated]));
  const swaps = lines.filter((l) => /prompt prefix/.test(String(l.msg)));
  assert.equal(swaps.length, 1, JSON.stringify(lines));
  assert.match(String(swaps[0]?.reason), /another model file/);
  const stats = (await fourth.getJson<CacheStats>("/v1/cache/stats")).body.prompt_cache;
  assert.ok((stats?.prefixes_quarantined ?? 0) >= 2, JSON.stringify(stats));
});
