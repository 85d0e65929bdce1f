/**
 * Issue 9's figures for the cache core, each measured against a baseline in the same run:
 *
 * - hits per second through the real `ModelManager` (1 and 10,000 model files) and through the in-memory source, each
 *   against an awaited `async () => map.get(k)` — the cost floor of any promise-returning lookup;
 * - `/metrics` and `/health` latency with 10,000 models in the statistics;
 * - saving and restoring 10,000 entries: the longest the event loop was blocked, and the file's size against the raw
 *   encoding.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { FakeBackend } from "../src/backends/fake.js";
import { ModelCache } from "../src/cache/model-cache.js";
import { encodeState } from "../src/cache/persistence/codec.js";
import { FileStateStore } from "../src/cache/persistence/file-store.js";
import { StateWorker } from "../src/cache/persistence/state-worker.js";
import type { CacheState, PersistedModel } from "../src/cache/persistence/types.js";
import { emptyCounters } from "../src/cache/state-view.js";
import { backendSchema, cacheSchema, configSchema, type InfernoConfig } from "../src/config/schema.js";
import { writeTinyLlamaGguf } from "../src/models/gguf-writer.js";
import { ModelManager } from "../src/models/manager.js";
import type { ModelSource } from "../src/models/types.js";
import { createApp } from "../src/server/app.js";
import { adviseOn } from "../src/runtime/advice.js";
import { FakeModelSource } from "../test/helpers/fake-models.js";

const HITS = 300_000;
const ENTRIES = 10_000;

function cacheConfig(dir: string, persist = false) {
  return { ...cacheSchema.parse({ enable_warmup: false, persist_cache: persist, persist_interval_seconds: 0 }), cache_dir: dir };
}

/** Hits per second of `hit` (awaited one after another), best of three runs. */
async function rate(hit: () => Promise<unknown>): Promise<number> {
  let best = 0;
  for (let run = 0; run < 3; run++) {
    const started = performance.now();
    for (let i = 0; i < HITS; i++) await hit();
    best = Math.max(best, HITS / ((performance.now() - started) / 1000));
  }
  return best;
}

async function hitRates(label: string, source: ModelSource, name: string): Promise<string[]> {
  const cache = await ModelCache.create(cacheConfig("/nonexistent"), backendSchema.parse({}), source, {
    backends: { gguf: new FakeBackend() },
  });
  (await cache.acquire(name)).release();
  const map = new Map([[name, { ready: true }]]);
  const baseline = async () => map.get(name);
  const baseRate = await rate(baseline);
  const leaseRate = await rate(async () => (await cache.acquire(name)).release());
  const getRate = await rate(() => cache.getModel(name));
  const baseAgain = await rate(baseline);
  const floor = Math.max(baseRate, baseAgain);
  await cache.close();
  const m = (x: number) => `${(x / 1e6).toFixed(2)} M/s`;
  return [
    `${label}: acquire+release ${m(leaseRate)} (${(floor / leaseRate).toFixed(2)}× the baseline), getModel ${m(getRate)} ` +
      `(${(floor / getRate).toFixed(2)}×); baseline awaited map.get ${m(floor)}`,
  ];
}

function savedModel(i: number, now: number): PersistedModel {
  const at = now - (i % 1000) * 60_000;
  return {
    key: `/models/m${i}.gguf`,
    name: `m${i}.gguf`,
    format: "gguf",
    fingerprint: { size: 1_000_000 + i, mtimeMs: 1_700_000_000_000 + i },
    metadata: { memory_bytes: 4_000_000 + i, gguf: { architecture: "llama", quantization: "Q4_K_M", parameter_count: 1_000_000_000, context_length: 4096 } },
    usage: {
      requests: 10 + (i % 97),
      hits: 9 + (i % 97),
      misses: 1,
      loads: 1 + (i % 3),
      last_used_at: at,
      frequency: { value: 1 + (i % 13) * 0.37, at },
      load_ms_total: 300 + (i % 700),
      load_ms_samples: [300 + (i % 700)],
    },
    priority: 0,
    pinned: false,
  };
}

function bigState(now: number): CacheState {
  return { saved_at: now, counters: emptyCounters(), models: Array.from({ length: ENTRIES }, (_, i) => savedModel(i, now)) };
}

/** Runs `fn` while sampling the event loop; returns the longest block (ms) and the time it took. */
async function blocking<T>(fn: () => Promise<T>): Promise<{ value: T; maxBlockMs: number; ms: number }> {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  // A ticker makes sure the loop is asked to turn every millisecond, so a long synchronous stretch shows as one gap.
  let last = performance.now();
  let maxGap = 0;
  const ticker = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
  }, 1);
  histogram.enable();
  const started = performance.now();
  const value = await fn();
  const ms = performance.now() - started;
  await new Promise((resolve) => setTimeout(resolve, 5));
  clearInterval(ticker);
  histogram.disable();
  return { value, maxBlockMs: Math.max(maxGap, histogram.max / 1e6), ms };
}

async function statsEndpoints(dir: string): Promise<string[]> {
  const now = Date.now();
  const state = bigState(now);
  const source = new FakeModelSource(state.models.map((m) => ({ name: m.name, size: m.fingerprint.size })));
  // The fake source's fingerprints are fixed; the saved ones match them by size only, so align them.
  for (const model of state.models) model.fingerprint = (await source.fingerprint(model.key)) ?? model.fingerprint;
  const store = { path: "memory", load: async () => ({ state, warning: null }), save: async () => ({ bytes: 0 }) };
  const cache = await ModelCache.create({ ...cacheConfig(dir), persist_cache: true }, backendSchema.parse({}), source, {
    backends: { gguf: new FakeBackend() },
    store,
  });
  const parsed = configSchema.parse({ models_dir: dir });
  const config: InfernoConfig = { ...parsed, cache: { ...parsed.cache, cache_dir: dir } };
  const silent = { info() {}, warn() {}, error() {}, debug() {} };
  // The statistics routes never read header metadata; a catalog over the fake source is enough for them.
  const models = {
    list: () => source.list(),
    resolve: (name: string) => source.resolve(name),
    metadata: () => Promise.reject(new Error("the fake source has no header metadata")),
    shortNames: async () => new Map((await source.list()).map((m) => [m.key, m.name])),
  };
  const app = createApp({ config, models, cache, logger: silent, advise: () => adviseOn({ state: cache.snapshot(), config: config.cache }) });
  const time = async (path: string) => {
    const samples: number[] = [];
    for (let i = 0; i < 200; i++) {
      const started = performance.now();
      const response = await app.fetch(new Request(`http://bench${path}`));
      await response.text();
      samples.push(performance.now() - started);
    }
    samples.sort((a, b) => a - b);
    return { median: samples[100] ?? 0, p95: samples[190] ?? 0 };
  };
  const stats = await time("/v1/cache/stats");
  const metrics = await time("/metrics");
  const health = await time("/health");
  app.dispose();
  await cache.close();
  const f = (x: { median: number; p95: number }) => `median ${x.median.toFixed(2)} ms, p95 ${x.p95.toFixed(2)} ms`;
  return [
    `with ${cache.stats().models.length} models in the statistics: /metrics ${f(metrics)}; /health ${f(health)} ` +
      `(target ≤ 2 ms); for comparison the full /v1/cache/stats ${f(stats)}`,
  ];
}

async function saveRestore(dir: string): Promise<string[]> {
  const now = Date.now();
  const state = bigState(now);
  const raw = encodeState(state).length;
  const source = new FakeModelSource(state.models.map((m) => ({ name: m.name })));
  const worker = new StateWorker();
  const store = new FileStateStore(dir, { codec: worker });
  // A cache holding 10,000 models' statistics (restored from a first file), all changed since: the save merges them all.
  await store.save({ at: now, half_life_hours: 24, reset_all: true, removed: [], counters: state.counters, models: state.models });
  const cache = await ModelCache.create({ ...cacheConfig(dir, true) }, backendSchema.parse({}), source, {
    backends: { gguf: new FakeBackend() },
    store,
  });
  cache.clear({ stats: true });
  for (const model of state.models.slice(0, ENTRIES)) await cache.getModel(model.name).catch(() => {});
  const save = await blocking(() => cache.saveCache());
  const restore = await blocking(() => new FileStateStore(dir, { codec: worker }).load());
  // A running server saves periodically: the later saves (and restores) run warm.
  for (const model of state.models) await cache.getModel(model.name).catch(() => {});
  const saveAgain = await blocking(() => cache.saveCache());
  const restoreAgain = await blocking(() => new FileStateStore(dir, { codec: worker }).load());
  await cache.close();
  const block = (x: { ms: number; maxBlockMs: number }) => `${x.ms.toFixed(0)} ms, event loop blocked at most ${x.maxBlockMs.toFixed(1)} ms`;
  return [
    `save of ${ENTRIES} changed entries (read + merge + encode + compress + write under the lock): first ${block(save)}; ` +
      `next ${block(saveAgain)} (target ≤ 30 ms)`,
    `restore of ${restore.value.state?.models.length ?? 0} entries: first ${block(restore)}; next ${block(restoreAgain)} (target ≤ 30 ms)`,
    `file ${save.value.bytes} bytes = ${(((save.value.bytes ?? 0) / raw) * 100).toFixed(1)} % of the raw encoding ` +
      `(${raw} bytes; target ≤ 25 %)`,
  ];
}

export async function cacheCoreBench(): Promise<void> {
  console.log("\ncache core (issue 9): hits, statistics endpoints, save and restore\n");
  const dir = await mkdtemp(join(tmpdir(), "inferno-bench-cache-"));
  try {
    const one = join(dir, "one");
    const many = join(dir, "many");
    await writeTinyLlamaGguf(join(one, "bench.gguf"), { preset: "nano" });
    await writeTinyLlamaGguf(join(many, "bench.gguf"), { preset: "nano" });
    for (let i = 0; i < ENTRIES - 1; i++) await writeFile(join(many, `m${String(i).padStart(5, "0")}.gguf`), "");
    const only = process.env.BENCH_ONLY;
    const hits = only !== "save";
    const lines = [
      ...(hits ? await hitRates("real ModelManager, 1 model file", new ModelManager(one), "bench.gguf") : []),
      ...(hits ? await hitRates(`real ModelManager, ${ENTRIES} model files`, new ModelManager(many), "bench.gguf") : []),
      ...(hits ? await hitRates("in-memory model source", new FakeModelSource(["bench.gguf"]), "bench.gguf") : []),
      ...(only === "hits" || only === "save" ? [] : await statsEndpoints(join(dir, "stats"))),
      ...(only === "hits" ? [] : await saveRestore(join(dir, "state"))),
    ];
    for (const line of lines) console.log(line);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await cacheCoreBench();
