/**
 * Eviction benchmark: the same simulated workload under `lru` and `cost-aware`, on the fake backend and a manual clock
 * (so hours of traffic run in well under a second and the result does not depend on the machine).
 *
 * Workload: models of mixed sizes and load times (load time is NOT proportional to size: some small models are slow
 * to load, as with cold disks or heavy initialisation), requests drawn from a Zipf distribution whose popularity order is
 * unrelated to size, a memory limit that holds about a third of the models. Reported per policy: hit rate and total
 * time spent loading (what users wait for), and the ratio cost-aware / lru.
 */
import { FakeBackend } from "../src/backends/fake.js";
import { ManualClock } from "../src/cache/clock.js";
import { ModelCache } from "../src/cache/model-cache.js";
import type { EvictionPolicy } from "../src/cache/policy/eviction.js";
import { backendSchema, cacheSchema } from "../src/config/schema.js";
import { seededRandom } from "../src/models/gguf-writer.js";
import { FakeModelSource } from "../test/helpers/fake-models.js";

const MIB = 1024 * 1024;

interface SimModel {
  name: string;
  memoryBytes: number;
  loadMs: number;
}

export interface Workload {
  name: string;
  models: SimModel[];
  /** Model names in request order. */
  requests: string[];
  /** Simulated seconds between requests. */
  gapSeconds: number;
  maxMemoryMb: number;
  maxModels: number;
}

function zipfSampler(n: number, s: number, rand: () => number): () => number {
  const weights = Array.from({ length: n }, (_, i) => 1 / (i + 1) ** s);
  const total = weights.reduce((a, b) => a + b, 0);
  return () => {
    let x = rand() * total;
    for (let i = 0; i < n; i++) {
      x -= weights[i] as number;
      if (x <= 0) return i;
    }
    return n - 1;
  };
}

function shuffled<T>(items: T[], rand: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** Mixed models; popularity by Zipf(s) over a random order; `shiftEvery` re-draws the popularity order (0 = never). */
export function makeWorkload(name: string, options: { seed: number; count: number; zipf: number; shiftEvery: number }): Workload {
  const rand = seededRandom(options.seed);
  const models: SimModel[] = Array.from({ length: 16 }, (_, i) => {
    const memoryBytes = Math.round((200 + rand() * 1800) * MIB);
    // Load time: a size-driven part plus an independent start-up cost, so the cost per byte varies about 20x.
    const loadMs = Math.round((memoryBytes / MIB) * (0.5 + rand() * 1.5) + rand() * 20_000);
    return { name: `m${String(i).padStart(2, "0")}.gguf`, memoryBytes, loadMs };
  });
  const sample = zipfSampler(models.length, options.zipf, rand);
  let order = shuffled(models, rand);
  const requests: string[] = [];
  for (let i = 0; i < options.count; i++) {
    if (options.shiftEvery > 0 && i > 0 && i % options.shiftEvery === 0) order = shuffled(models, rand);
    requests.push((order[sample()] as SimModel).name);
  }
  return { name, models, requests, gapSeconds: 20, maxMemoryMb: 6 * 1024, maxModels: 8 };
}

export interface PolicyResult {
  policy: EvictionPolicy;
  hits: number;
  misses: number;
  hitRate: number;
  loadMsTotal: number;
}

/** Runs a workload through a real ModelCache with the given policy. */
export async function runWorkload(workload: Workload, policy: EvictionPolicy): Promise<PolicyResult> {
  const clock = new ManualClock();
  const source = new FakeModelSource(workload.models.map((m) => ({ name: m.name, estimateBytes: m.memoryBytes })));
  const backend = new FakeBackend({
    timers: clock,
    models: Object.fromEntries(workload.models.map((m) => [m.name, { loadMs: m.loadMs, memoryBytes: m.memoryBytes }])),
  });
  const config = {
    ...cacheSchema.parse({
      eviction_policy: policy,
      max_memory_mb: workload.maxMemoryMb,
      max_cached_models: workload.maxModels,
      model_ttl_seconds: 0,
      enable_warmup: false,
      persist_cache: false,
      usage_half_life_hours: 6,
    }),
    cache_dir: "/nonexistent",
  };
  const cache = await ModelCache.create(config, backendSchema.parse({}), source, { backends: { gguf: backend }, clock });
  let loadMsTotal = 0;
  cache.on("load", ({ durationMs }) => (loadMsTotal += durationMs));
  for (const name of workload.requests) {
    await clock.run(cache.getModel(name));
    await clock.advance(workload.gapSeconds * 1000);
  }
  const stats = cache.stats();
  await cache.close();
  return { policy, hits: stats.hits, misses: stats.misses, hitRate: stats.hit_rate, loadMsTotal };
}

export interface Comparison {
  workload: string;
  lru: PolicyResult;
  costAware: PolicyResult;
  /** cost-aware load time / lru load time: below 1 means cost-aware makes users wait less. */
  loadTimeRatio: number;
  hitRateRatio: number;
}

export async function compare(workload: Workload): Promise<Comparison> {
  const lru = await runWorkload(workload, "lru");
  const costAware = await runWorkload(workload, "cost-aware");
  return {
    workload: workload.name,
    lru,
    costAware,
    loadTimeRatio: costAware.loadMsTotal / lru.loadMsTotal,
    hitRateRatio: costAware.hitRate / lru.hitRate,
  };
}

export const WORKLOADS = (): Workload[] => [
  makeWorkload("zipf 1.0, stable popularity", { seed: 1, count: 4000, zipf: 1.0, shiftEvery: 0 }),
  makeWorkload("zipf 0.8, stable popularity", { seed: 2, count: 4000, zipf: 0.8, shiftEvery: 0 }),
  makeWorkload("zipf 1.0, popularity reshuffled every 1000", { seed: 3, count: 4000, zipf: 1.0, shiftEvery: 1000 }),
];
