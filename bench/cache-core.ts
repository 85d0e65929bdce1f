/**
 * Issue 9's figures for the cache core, each measured against a baseline in the same run:
 *
 * - hits per second through the real `ModelManager` (1 and 10,000 model files) and through the in-memory source, each
 *   against an awaited `async () => map.get(k)` — the cost floor of any promise-returning lookup;
 * - the request log's cost on a hit (`request_log_size` default vs 0);
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
import { RequestLog } from "../src/cache/request-log.js";
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
import { type Figure, figure, ratios } from "./report.js";

let HITS = 300_000;
/** Rounds of the hit-rate measurement (subject and baseline interleaved in each) and samples per endpoint. */
let ROUNDS = 3;
let SAMPLES = 200;
const ENTRIES = 10_000;

function cacheConfig(dir: string, persist = false) {
  return { ...cacheSchema.parse({ enable_warmup: false, persist_cache: persist, persist_interval_seconds: 0 }), cache_dir: dir };
}

/** Hits per second of `hit` (awaited one after another) over one run of HITS hits. */
async function rate(hit: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < HITS; i++) await hit();
  return HITS / ((performance.now() - started) / 1000);
}

async function hitRates(label: string, source: ModelSource, name: string): Promise<Figure[]> {
  const cache = await ModelCache.create(cacheConfig("/nonexistent"), backendSchema.parse({}), source, {
    backends: { gguf: new FakeBackend() },
  });
  (await cache.acquire(name)).release();
  const map = new Map([[name, { ready: true }]]);
  const baseline = async () => map.get(name);
  const base: number[] = [];
  const lease: number[] = [];
  const get: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    base.push(await rate(baseline));
    lease.push(await rate(async () => (await cache.acquire(name)).release()));
    get.push(await rate(() => cache.getModel(name)));
  }
  await cache.close();
  const m = (xs: number[]) => `${(median(xs) / 1e6).toFixed(2)} M/s`;
  const baselineName = "awaited async Map.get";
  // Cost per hit against the baseline's: the inverse of the rates' ratio.
  return [
    figure({ section: "cache", item: "1.1", name: `getModel hit, ${label}`, samples: ratios(base, get), unit: "×", baseline: baselineName, target: { max: 3 }, note: `${m(get)}; baseline ${m(base)}` }),
    figure({ section: "cache", item: "1.1", name: `getModel hits/s, ${label}`, samples: get.map((x) => x / 1e6), unit: "M/s", target: { min: 1 } }),
    figure({ section: "cache", item: "1.1", name: `acquire+release hit, ${label}`, samples: ratios(base, lease), unit: "×", baseline: baselineName, target: { max: 3 }, note: m(lease) }),
  ];
}

/**
 * The request log's cost on the hit path (issue 13): the same hits on two caches, one logging (`request_log_size` at
 * its default) and one not (0), in interleaved rounds. The figure is the cost of a logged hit over an unlogged one.
 */
async function requestLogCost(): Promise<Figure[]> {
  const logSize = cacheSchema.parse({}).request_log_size;
  const make = (size: number) =>
    ModelCache.create({ ...cacheConfig("/nonexistent"), request_log_size: size }, backendSchema.parse({}), new FakeModelSource(["bench.gguf"]), {
      backends: { gguf: new FakeBackend() },
    });
  const [logged, unlogged] = [await make(logSize), await make(0)];
  await logged.getModel("bench.gguf");
  await unlogged.getModel("bench.gguf");
  const on: number[] = [];
  const off: number[] = [];
  // The write alone, into a full ring of the same size: what the log adds to a hit, without the hit's own noise.
  const ring = new RequestLog(logSize);
  const writes: number[] = [];
  const writeRate = async () => {
    const started = performance.now();
    for (let i = 0; i < HITS; i++) ring.record("/models/bench.gguf", i, "hit");
    return HITS / ((performance.now() - started) / 1000);
  };
  // A small difference on a shared machine: three times the rounds, the order alternating.
  for (let round = 0; round < ROUNDS * 3; round++) {
    if (round % 2 === 1) on.push(await rate(() => logged.getModel("bench.gguf")));
    off.push(await rate(() => unlogged.getModel("bench.gguf")));
    if (round % 2 === 0) on.push(await rate(() => logged.getModel("bench.gguf")));
    writes.push(await writeRate());
  }
  await logged.close();
  await unlogged.close();
  const m = (xs: number[]) => `${(median(xs) / 1e6).toFixed(2)} M/s`;
  return [
    figure({ section: "cache", item: "13.3", name: `getModel hit with the request log (${logSize})`, samples: ratios(off, on), unit: "×", baseline: "request_log_size = 0", target: { max: 1.05 }, note: `${m(on)} logged; ${m(off)} unlogged` }),
    figure({ section: "cache", item: "13.3", name: "request-log write, share of a logged hit", samples: ratios(on, writes).map((x) => x * 100), unit: "%", baseline: "getModel hit", target: { max: 5 }, note: `${m(writes)} writes` }),
  ];
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
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

async function statsEndpoints(dir: string): Promise<Figure[]> {
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
  const time = async (path: string, count = SAMPLES) => {
    const samples: number[] = [];
    for (let i = 0; i < count; i++) {
      const started = performance.now();
      const response = await app.fetch(new Request(`http://bench${path}`));
      await response.text();
      samples.push(performance.now() - started);
    }
    return samples;
  };
  // The full statistics are only the comparison (and take ~100 ms each): a few samples do.
  const stats = await time("/v1/cache/stats", Math.min(SAMPLES, 10));
  const metrics = await time("/metrics");
  const health = await time("/health");
  app.dispose();
  await cache.close();
  const entries = cache.stats().models.length;
  const note = `${entries} models in the statistics; the full /v1/cache/stats: median ${median(stats).toFixed(1)} ms`;
  return [
    figure({ section: "cache", name: "GET /metrics", samples: metrics, unit: "ms", target: { max: 2 }, note }),
    figure({ section: "cache", name: "GET /health", samples: health, unit: "ms", target: { max: 2 }, note: `${entries} models in the statistics` }),
  ];
}

async function saveRestore(dir: string): Promise<Figure[]> {
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
  const took = (xs: Array<{ ms: number }>) => `took ${xs.map((x) => x.ms.toFixed(0)).join(" and ")} ms`;
  const restored = restore.value.state?.models.length ?? 0;
  return [
    figure({ section: "cache", item: "1.5", name: `save of ${ENTRIES} changed entries: event-loop block`, samples: [save.maxBlockMs, saveAgain.maxBlockMs], unit: "ms", target: { max: 30 }, note: `read + merge + encode + compress + write under the lock; ${took([save, saveAgain])}` }),
    figure({ section: "cache", item: "1.5", name: `restore of ${restored} entries: event-loop block`, samples: [restore.maxBlockMs, restoreAgain.maxBlockMs], unit: "ms", target: { max: 30 }, note: took([restore, restoreAgain]) }),
    figure({ section: "cache", item: "1.5", name: `state file of ${ENTRIES} entries`, samples: ((save.value.bytes ?? 0) / raw) * 100, unit: "%", baseline: "raw encoding", target: { max: 25 }, note: `${save.value.bytes} of ${raw} bytes` }),
  ];
}

export async function cacheCoreBench(options: { quick: boolean } = { quick: false }): Promise<Figure[]> {
  if (options.quick) [HITS, ROUNDS, SAMPLES] = [50_000, 3, 30];
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
      ...(hits ? await requestLogCost() : []),
      ...(only === "hits" || only === "save" ? [] : await statsEndpoints(join(dir, "stats"))),
      ...(only === "hits" ? [] : await saveRestore(join(dir, "state"))),
    ];
    return lines;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(await cacheCoreBench());
