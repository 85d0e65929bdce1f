/**
 * Eviction quality against the optimum. Each trace is replayed by the cache simulator (src/cache/sim: the real policy
 * functions on a virtual clock) under our policies and other runners' rules, and its offline optimum is solved with
 * HiGHS: the exact integer program on the small traces, the LP-relaxation lower bound (FOO-style) on the large ones.
 * Every policy's total load time is reported as a ratio to that optimum or bound, and the default's also to LRU's.
 *
 * Simulated time, so the figures do not depend on the machine; only the solve times do.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { FakeBackend } from "../src/backends/fake.js";
import { ManualClock } from "../src/cache/clock.js";
import { ModelCache } from "../src/cache/model-cache.js";
import { optimumOrBound } from "../src/cache/sim/optimum.js";
import { type SimPolicy, simulate } from "../src/cache/sim/simulate.js";
import type { SimModel, SimRequest, SimResult, SimSettings, Trace } from "../src/cache/sim/types.js";
import { backendSchema, cacheSchema } from "../src/config/schema.js";
import { seededRandom } from "../src/models/gguf-writer.js";
import { highsSolver } from "../src/runtime/lp-solver.js";
import { MIB } from "../src/units.js";
import { FakeModelSource } from "../test/helpers/fake-models.js";
import { makeModels, type NamedTrace, SETTINGS, syntheticTraces, zipfSampler, zipfTrace } from "./eviction-traces.js";
import { type Figure, figure } from "./report.js";

export const DEFAULT_POLICY = cacheSchema.parse({}).eviction_policy;
/** Ours first (the default leading), then the other runners' rules. */
export const POLICIES: readonly SimPolicy[] = [
  DEFAULT_POLICY,
  ...(["reload-cost", "cost-aware", "lru"] as const).filter((p) => p !== DEFAULT_POLICY),
  "lru-count",
  "ollama",
  "largest-first",
];
/** A reference, not a policy: `reload-cost` told each model's request count over the whole trace (perfect popularity). */
export const KNOWN_POPULARITY = "reload-cost, popularity known";
export const TARGETS = { defaultVsBound: 1.15, defaultVsLru: 0.75 } as const;

export interface PolicyFigures {
  loadSeconds: number;
  hitRate: number;
  warmLoads: number;
  /** Total load time / the optimum (exact) or its lower bound. */
  vsOptimum: number;
}

export interface TraceFigures {
  trace: string;
  models: number;
  requests: number;
  /** The optimum's (exact) or lower bound's total load time, seconds. */
  optimumSeconds: number;
  exact: boolean;
  solveMs: number;
  /** Targets apply (stationary Zipf traces). */
  zipf: boolean;
  policies: Record<string, PolicyFigures>;
  defaultVsLru: number;
}

export interface EvictionReport {
  defaultPolicy: string;
  settings: SimSettings;
  targets: typeof TARGETS;
  traces: TraceFigures[];
  /** Worst default/bound and default/LRU over the Zipf traces (large ones, LP bound). */
  worstZipf: { defaultVsBound: number; defaultVsLru: number };
}

/**
 * A trace recorded from Inferno itself: the real `ModelCache` (fake backend, manual clock) serves chat-like sessions —
 * a user picks a model (Zipf 1.0 over 24 models), sends 1–20 requests 5–90 s apart, pauses, and picks again — and
 * every request is recorded from the cache's own `hit`/`miss` events, each model's load time from its `load` events.
 * Loads take their time on the clock, so they delay the requests behind them as they would for a user.
 */
export async function recordInfernoTrace(requests: number, seed = 21): Promise<NamedTrace> {
  const rand = seededRandom(seed);
  const models = makeModels(24, rand);
  const clock = new ManualClock(Date.UTC(2026, 0, 5));
  const source = new FakeModelSource(models.map((m) => ({ name: m.key, estimateBytes: m.memoryBytes })));
  const backend = new FakeBackend({
    timers: clock,
    models: Object.fromEntries(models.map((m) => [m.key, { loadMs: m.loadMs, memoryBytes: m.memoryBytes }])),
  });
  const config = {
    ...cacheSchema.parse({
      max_memory_mb: SETTINGS.maxMemoryBytes / MIB,
      max_cached_models: SETTINGS.maxModels,
      model_ttl_seconds: 0,
      enable_warmup: false,
      persist_cache: false,
    }),
    cache_dir: "/nonexistent",
  };
  const cache = await ModelCache.create(config, backendSchema.parse({}), source, {
    backends: { gguf: backend },
    clock,
  });
  const recorded: SimRequest[] = [];
  const loadMs = new Map<string, number>();
  const record = ({ name }: { name: string }) => recorded.push({ at: clock.now(), key: name });
  cache.on("hit", record);
  cache.on("miss", record);
  cache.on("load", ({ name, durationMs }) => loadMs.set(name, durationMs));
  const sample = zipfSampler(models.length, 1.0, rand);
  while (recorded.length < requests) {
    const model = (models[sample()] as SimModel).key;
    const burst = 1 + Math.floor(rand() * 20);
    for (let i = 0; i < burst && recorded.length < requests; i++) {
      await clock.run(cache.getModel(model));
      await clock.advance(5000 + Math.floor(rand() * 85_000));
    }
    await clock.advance(Math.floor(rand() * 600_000));
  }
  await cache.close();
  // What the cache measured is what the trace charges (the fake backend has no page cache: warm = cold).
  const measured = models.map((m) => ({
    ...m,
    loadMs: loadMs.get(m.key) ?? m.loadMs,
    warmLoadMs: loadMs.get(m.key) ?? m.loadMs,
  }));
  return {
    name: "recorded from Inferno (ModelCache, fake backend)",
    zipf: false,
    models: measured,
    requests: recorded,
  };
}

/** A trace recorded by `bench/record-trace.ts`, as stored in bench/traces/. */
export interface RecordedTrace extends Trace {
  recorded: string;
  how: string;
  settings: Omit<SimSettings, "usageHalfLifeHours">;
}

/** The committed trace of a real `inferno serve` run (bench/record-trace.ts). */
export async function serverTrace(): Promise<NamedTrace> {
  const file = join(import.meta.dirname, "traces", "inferno-server.json");
  const trace = JSON.parse(await readFile(file, "utf8")) as RecordedTrace;
  return {
    name: "recorded from inferno serve (real llama.cpp)",
    zipf: false,
    models: trace.models,
    requests: trace.requests,
    settings: trace.settings,
  };
}

/** Small traces whose exact optimum (the integer program) solves in about a second. */
function smallTraces(count: number): NamedTrace[] {
  return Array.from({ length: count }, (_, i) =>
    zipfTrace(`small zipf 0.9, 10 models (exact)`, { seed: 31 + i, models: 10, requests: 70, zipf: 0.9 }),
  ).map((t, i) => ({ ...t, name: count > 1 ? `${t.name} #${i + 1}` : t.name, zipf: false }));
}

export async function evictionBench(options: { quick: boolean }): Promise<EvictionReport> {
  const solver = await highsSolver();
  const base: SimSettings = { ...SETTINGS, usageHalfLifeHours: cacheSchema.parse({}).usage_half_life_hours };
  const requests = options.quick ? 600 : 3000;
  const traces = [
    ...syntheticTraces(requests),
    await recordInfernoTrace(options.quick ? 400 : 1500),
    await serverTrace(),
    ...smallTraces(options.quick ? 1 : 3),
  ];
  const figures: TraceFigures[] = [];
  for (const trace of traces) {
    const settings = { ...base, ...trace.settings };
    const started = performance.now();
    const optimum = optimumOrBound(trace, settings, solver);
    const exact = optimum.exact;
    const solveMs = performance.now() - started;
    const policies: Record<string, PolicyFigures> = {};
    const requestCounts = new Map<string, number>();
    for (const { key } of trace.requests) requestCounts.set(key, (requestCounts.get(key) ?? 0) + 1);
    const runs: Array<[string, () => SimResult]> = [
      ...POLICIES.map((policy): [string, () => SimResult] => [policy, () => simulate(trace, settings, policy)]),
      [KNOWN_POPULARITY, () => simulate(trace, settings, "reload-cost", { knownFrequency: requestCounts })],
    ];
    for (const [policy, run] of runs) {
      const r = run();
      policies[policy] = {
        loadSeconds: r.loadMsTotal / 1000,
        hitRate: r.hits / r.requests,
        warmLoads: r.warmLoads,
        vsOptimum: r.loadMsTotal / optimum.loadMsTotal,
      };
    }
    figures.push({
      trace: trace.name,
      models: trace.models.length,
      requests: trace.requests.length,
      optimumSeconds: optimum.loadMsTotal / 1000,
      exact,
      solveMs,
      zipf: trace.zipf,
      policies,
      defaultVsLru:
        (policies[DEFAULT_POLICY] as PolicyFigures).loadSeconds / (policies.lru as PolicyFigures).loadSeconds,
    });
  }
  const zipf = figures.filter((f) => f.zipf);
  return {
    defaultPolicy: DEFAULT_POLICY,
    settings: base,
    targets: TARGETS,
    traces: figures,
    worstZipf: {
      defaultVsBound: Math.max(...zipf.map((f) => (f.policies[DEFAULT_POLICY] as PolicyFigures).vsOptimum)),
      defaultVsLru: Math.max(...zipf.map((f) => f.defaultVsLru)),
    },
  };
}

/** The report as table rows: one per trace, each policy's load time as a multiple of the optimum. */
export function evictionTable(report: EvictionReport): string[][] {
  const columns = [...POLICIES, KNOWN_POPULARITY];
  const header = [
    "trace",
    "requests",
    "optimum",
    ...columns.map((p) => (p === DEFAULT_POLICY ? `${p} (default)` : p)),
    "default / lru",
  ];
  const rows = report.traces.map((t) => [
    t.trace,
    String(t.requests),
    `${t.optimumSeconds.toFixed(0)} s ${t.exact ? "exact" : "LP bound"}`,
    ...columns.map((p) => `${(t.policies[p] as PolicyFigures).vsOptimum.toFixed(3)}x`),
    t.defaultVsLru.toFixed(3),
  ]);
  return [header, ...rows];
}

/**
 * The report's figures for the one table: on each stationary Zipf trace (where the targets apply) the default's total
 * load time against the optimum's bound and against LRU's; on the other traces against the optimum only. Simulated
 * time: one deterministic value each, no spread. The full per-policy table is in latest.json's details.
 */
export function evictionFigures(report: EvictionReport): Figure[] {
  const figures: Figure[] = [];
  for (const t of report.traces) {
    const own = t.policies[report.defaultPolicy] as PolicyFigures;
    figures.push(
      figure({
        section: "eviction",
        item: "1.8",
        name: `${report.defaultPolicy} on ${t.trace}`,
        samples: own.vsOptimum,
        unit: "×",
        baseline: t.exact ? "exact optimum" : "optimum's LP bound",
        target: t.zipf ? { max: report.targets.defaultVsBound } : null,
        note: `${t.requests} requests; hit rate ${(own.hitRate * 100).toFixed(0)} %`,
      }),
    );
    if (t.zipf) {
      figures.push(
        figure({
          section: "eviction",
          item: "1.8",
          name: `${report.defaultPolicy} on ${t.trace}`,
          samples: t.defaultVsLru,
          unit: "×",
          baseline: "LRU's load time",
          target: { max: report.targets.defaultVsLru },
        }),
      );
    }
  }
  return figures;
}
