/**
 * Issue 9's figures for the cache core, each measured against a baseline in the same run:
 *
 * - hits per second through the real `ModelManager` (1, 100 and 10,000 model files) and through the in-memory source,
 *   each against an awaited `async () => map.get(k)` — the cost floor of any promise-returning lookup — in interleaved
 *   rounds (median and spread of each round's own ratio). A hit is measured as a caller makes it: one awaited
 *   `acquire` and a `release`, or one awaited `getModel`;
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
import { FakeModelSource } from "../test/helpers/fake-models.js";

/** Calls per round and shape: each round alternates the shapes in slices of `SLICE` calls (below). */
const HITS = 100_000;
const SLICE = 5_000;
/** Rounds: each measures the baseline, acquire+release and getModel, interleaved slice by slice. */
const ROUNDS = 9;
const ENTRIES = 10_000;

function cacheConfig(dir: string, persist = false) {
  return { ...cacheSchema.parse({ enable_warmup: false, persist_cache: persist, persist_interval_seconds: 0 }), cache_dir: dir };
}

/** Median and spread of a sample. */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

function spread(values: number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  return { median: sorted[Math.floor(sorted.length / 2)] ?? 0, min: sorted[0] ?? 0, max: sorted[sorted.length - 1] ?? 0 };
}

/** Hit rates of one model source: per second, and as a multiple of the baseline's time per call in the same round. */
export interface HitFigures {
  label: string;
  modelFiles: number | null;
  /** Awaited `async () => map.get(k)` calls per second. */
  baselinePerSecond: Spread;
  /** `const lease = await cache.acquire(name); lease.release()` per second. */
  acquireReleasePerSecond: Spread;
  /** acquire+release time per call ÷ the baseline's, each round's own ratio. */
  acquireReleaseRatio: Spread;
  /** `await cache.getModel(name)` per second. */
  getModelPerSecond: Spread;
  getModelRatio: Spread;
}

/** CPU time this process used so far (ms, user + system). */
function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

// Each measured loop is written out (not one loop over a callback), so every shape gets its own optimised code and the
// ratio compares the calls, not a shared megamorphic call site. Each awaits one promise per call, as a caller does.
// Each returns the CPU time (ms, this process's threads) its `n` calls took: on a shared machine wall time also counts
// the time other processes held the core, which no interleaving fully evens out.
async function baselineLoop(get: () => Promise<unknown>, n: number): Promise<number> {
  const started = cpuMs();
  for (let i = 0; i < n; i++) await get();
  return cpuMs() - started;
}

async function acquireLoop(cache: ModelCache, name: string, n: number): Promise<number> {
  const started = cpuMs();
  for (let i = 0; i < n; i++) {
    const lease = await cache.acquire(name);
    lease.release();
  }
  return cpuMs() - started;
}

async function getModelLoop(cache: ModelCache, name: string, n: number): Promise<number> {
  const started = cpuMs();
  for (let i = 0; i < n; i++) await cache.getModel(name);
  return cpuMs() - started;
}

async function hitRates(label: string, modelFiles: number | null, source: ModelSource, name: string): Promise<HitFigures> {
  const cache = await ModelCache.create(cacheConfig("/nonexistent"), backendSchema.parse({}), source, {
    backends: { gguf: new FakeBackend() },
  });
  (await cache.acquire(name)).release();
  const map = new Map([[name, { ready: true }]]);
  const baseline = async () => map.get(name);
  const rounds: Array<{ base: number; lease: number; get: number }> = [];
  // Slices of each shape alternate, so a busy machine slows all three alike; a round's figures are its slices' sums.
  const perSecond = (ms: number) => HITS / (ms / 1000);
  for (let round = 0; round < ROUNDS; round++) {
    const ms = { base: 0, lease: 0, get: 0 };
    for (let done = 0; done < HITS; done += SLICE) {
      ms.base += await baselineLoop(baseline, SLICE);
      ms.lease += await acquireLoop(cache, name, SLICE);
      ms.get += await getModelLoop(cache, name, SLICE);
    }
    rounds.push({ base: perSecond(ms.base), lease: perSecond(ms.lease), get: perSecond(ms.get) });
  }
  await cache.close();
  // The first round warms the JIT up: it is left out.
  const kept = rounds.slice(1);
  return {
    label,
    modelFiles,
    baselinePerSecond: spread(kept.map((r) => r.base)),
    acquireReleasePerSecond: spread(kept.map((r) => r.lease)),
    acquireReleaseRatio: spread(kept.map((r) => r.base / r.lease)),
    getModelPerSecond: spread(kept.map((r) => r.get)),
    getModelRatio: spread(kept.map((r) => r.base / r.get)),
  };
}

function hitLine(f: HitFigures): string {
  const m = (x: Spread) => `${(x.median / 1e6).toFixed(2)} M/s`;
  const r = (x: Spread) => `${x.median.toFixed(2)}× (${x.min.toFixed(2)}–${x.max.toFixed(2)})`;
  return (
    `${f.label}: acquire+release ${m(f.acquireReleasePerSecond)} = ${r(f.acquireReleaseRatio)} the baseline; getModel ` +
    `${m(f.getModelPerSecond)} = ${r(f.getModelRatio)}; baseline awaited map.get ${m(f.baselinePerSecond)} ` +
    `(CPU time; median of ${ROUNDS - 1} interleaved rounds, min–max)`
  );
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

async function statsEndpoints(dir: string): Promise<EndpointFigures> {
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
  const app = createApp({ config, models, cache, logger: silent });
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
  return { models: cache.stats().models.length, metrics, health, stats };
}

/** Latency (ms) of the statistics routes with `ENTRIES` models in the statistics. */
export interface EndpointFigures {
  models: number;
  metrics: { median: number; p95: number };
  health: { median: number; p95: number };
  stats: { median: number; p95: number };
}

async function saveRestore(dir: string): Promise<PersistenceFigures> {
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
  const figure = (x: { ms: number; maxBlockMs: number }) => ({ ms: x.ms, maxBlockMs: x.maxBlockMs });
  return {
    entries: ENTRIES,
    save: { first: figure(save), next: figure(saveAgain) },
    restore: { models: restore.value.state?.models.length ?? 0, first: figure(restore), next: figure(restoreAgain) },
    fileBytes: save.value.bytes ?? 0,
    rawBytes: raw,
  };
}

/** Save and restore of `ENTRIES` entries: duration and the longest event-loop block (ms), file size against raw. */
export interface PersistenceFigures {
  entries: number;
  save: { first: { ms: number; maxBlockMs: number }; next: { ms: number; maxBlockMs: number } };
  restore: { models: number; first: { ms: number; maxBlockMs: number }; next: { ms: number; maxBlockMs: number } };
  fileBytes: number;
  rawBytes: number;
}

/** Everything `cacheCoreBench` measured (what it prints, as data). */
export interface CacheCoreFigures {
  hits: HitFigures[];
  endpoints: EndpointFigures | null;
  persistence: PersistenceFigures | null;
}

function endpointLine(e: EndpointFigures): string {
  const f = (x: { median: number; p95: number }) => `median ${x.median.toFixed(2)} ms, p95 ${x.p95.toFixed(2)} ms`;
  return (
    `with ${e.models} models in the statistics: /metrics ${f(e.metrics)}; /health ${f(e.health)} ` +
    `(target ≤ 2 ms); for comparison the full /v1/cache/stats ${f(e.stats)}`
  );
}

function persistenceLines(p: PersistenceFigures): string[] {
  const block = (x: { ms: number; maxBlockMs: number }) => `${x.ms.toFixed(0)} ms, event loop blocked at most ${x.maxBlockMs.toFixed(1)} ms`;
  return [
    `save of ${p.entries} changed entries (read + merge + encode + compress + write under the lock): first ${block(p.save.first)}; ` +
      `next ${block(p.save.next)} (target ≤ 30 ms)`,
    `restore of ${p.restore.models} entries: first ${block(p.restore.first)}; next ${block(p.restore.next)} (target ≤ 30 ms)`,
    `file ${p.fileBytes} bytes = ${((p.fileBytes / p.rawBytes) * 100).toFixed(1)} % of the raw encoding ` +
      `(${p.rawBytes} bytes; target ≤ 25 %)`,
  ];
}

/**
 * Prints the figures and returns them. `BENCH_ONLY=hits` (or `save`) measures only the hit rates (or only save and
 * restore).
 */
export async function cacheCoreBench(): Promise<CacheCoreFigures> {
  console.log("\ncache core (issue 9): hits, statistics endpoints, save and restore\n");
  const dir = await mkdtemp(join(tmpdir(), "inferno-bench-cache-"));
  try {
    const only = process.env.BENCH_ONLY;
    const figures: CacheCoreFigures = { hits: [], endpoints: null, persistence: null };
    if (only !== "save") {
      for (const files of [1, 100, ENTRIES]) {
        const models = join(dir, `models-${files}`);
        await writeTinyLlamaGguf(join(models, "bench.gguf"), { preset: "nano" });
        for (let i = 0; i < files - 1; i++) await writeFile(join(models, `m${String(i).padStart(5, "0")}.gguf`), "");
        const label = `real ModelManager, ${files} model file${files === 1 ? "" : "s"}`;
        figures.hits.push(await hitRates(label, files, new ModelManager(models), "bench.gguf"));
        console.log(hitLine(figures.hits.at(-1) as HitFigures));
      }
      figures.hits.push(await hitRates("in-memory model source", null, new FakeModelSource(["bench.gguf"]), "bench.gguf"));
      console.log(hitLine(figures.hits.at(-1) as HitFigures));
    }
    if (only !== "hits" && only !== "save") {
      figures.endpoints = await statsEndpoints(join(dir, "stats"));
      console.log(endpointLine(figures.endpoints));
    }
    if (only !== "hits") {
      figures.persistence = await saveRestore(join(dir, "state"));
      for (const line of persistenceLines(figures.persistence)) console.log(line);
    }
    return figures;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await cacheCoreBench();
