/**
 * Records the eviction benchmark's "real server" trace: a small real run of `inferno serve` (in-process, loopback, real
 * llama.cpp on nine generated tiny llamas of 0.2–20 MB in f32/f16/q8_0), fed chat-like sessions over HTTP — a user
 * picks a model (Zipf 1.0), sends 1–12 one-token completions, and another user takes over — while the cache's own
 * `hit`/`miss` events record every request and its `load` events every measured load time and memory figure.
 *
 * Writes bench/traces/inferno-server.json (committed, so the benchmark replays the same trace on every machine).
 * Re-record with `node --import tsx bench/record-trace.ts` (about half a minute).
 */
import { mkdtemp, rm, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SimRequest } from "../src/cache/sim/types.js";
import { loadConfig } from "../src/config/index.js";
import { seededRandom, type TinyPreset, type TinyWeightType, writeTinyLlamaGguf } from "../src/models/gguf-writer.js";
import { createRuntime, startServer } from "../src/runtime/index.js";
import { median } from "../testkit/stats.js";
import { zipfSampler } from "./eviction-traces.js";
import type { RecordedTrace } from "./eviction.js";

const REQUESTS = 300;
const MAX_MODELS = 2;

const dir = await mkdtemp(join(tmpdir(), "inferno-trace-"));
try {
  const names: string[] = [];
  for (const preset of ["nano", "small", "medium"] as TinyPreset[]) {
    for (const type of ["f32", "f16", "q8_0"] as TinyWeightType[]) {
      const name = `${preset}-${type}.gguf`;
      await writeTinyLlamaGguf(join(dir, name), { preset, type, seed: names.length + 1 });
      names.push(name);
    }
  }
  const config = await loadConfig({
    env: { HOME: dir },
    cwd: dir,
    flags: [
      { key: "models_dir", value: dir, flag: "--models-dir" },
      { key: "cache.persist_cache", value: false, flag: "--persist-cache" },
      { key: "cache.enable_warmup", value: false, flag: "--enable-warmup" },
      { key: "cache.max_cached_models", value: MAX_MODELS, flag: "--max-cached-models" },
      { key: "backend.context_size", value: 256, flag: "--context-size" },
      { key: "backend.gpu", value: false, flag: "--gpu" },
      { key: "backend.threads", value: 1, flag: "--threads" },
    ],
  });
  const runtime = await createRuntime(config);
  const server = await startServer(runtime, { port: 0 });
  // llama.cpp's one-off start-up would otherwise be charged to the first model loaded.
  await writeTinyLlamaGguf(join(dir, "start-up.gguf"), { preset: "nano" });
  await runtime.cache.load("start-up.gguf");
  await runtime.cache.evict("start-up.gguf");
  const requests: SimRequest[] = [];
  const loads = new Map<string, { ms: number[]; bytes: number }>();
  const record = ({ name }: { name: string }) => requests.push({ at: Date.now(), key: name });
  runtime.cache.on("hit", record);
  runtime.cache.on("miss", record);
  runtime.cache.on("load", ({ name, durationMs, memoryBytes }) => {
    const seen = loads.get(name) ?? { ms: [], bytes: memoryBytes };
    seen.ms.push(durationMs);
    seen.bytes = memoryBytes;
    loads.set(name, seen);
  });
  try {
    const rand = seededRandom(5);
    const order = [...names].sort(() => rand() - 0.5);
    const sample = zipfSampler(order.length, 1.0, rand);
    while (requests.length < REQUESTS) {
      const model = order[sample()] as string;
      const burst = 1 + Math.floor(rand() * 6);
      for (let i = 0; i < burst && requests.length < REQUESTS; i++) {
        const response = await fetch(`${server.url}/v1/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model, prompt: "Once upon a time", max_tokens: 1, temperature: 0 }),
        });
        if (!response.ok) throw new Error(`${model}: HTTP ${response.status} ${await response.text()}`);
        await response.text();
      }
    }
  } finally {
    await server.close(0);
    await runtime.close();
  }
  const models = [...loads].map(([key, { ms, bytes }]) => {
    // The median: a load slowed by another developer's process on the shared machine should not define the model.
    const loadMs = median(ms);
    return { key, memoryBytes: bytes, loadMs, warmLoadMs: loadMs };
  });
  const trace: RecordedTrace = {
    recorded: new Date().toISOString(),
    how: "inferno serve in-process on loopback, real llama.cpp (node-llama-cpp), 9 generated tiny llamas, one-token completions over HTTP",
    settings: { maxModels: MAX_MODELS, maxMemoryBytes: 0, warmWindowMs: 0 },
    models,
    requests,
  };
  await mkdir(join(import.meta.dirname, "traces"), { recursive: true });
  await writeFile(join(import.meta.dirname, "traces", "inferno-server.json"), `${JSON.stringify(trace, null, 1)}\n`);
  console.log(
    `recorded ${requests.length} requests over ${models.length} models, ${[...loads.values()].reduce((n, l) => n + l.ms.length, 0)} loads`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
