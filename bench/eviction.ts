/**
 * Eviction quality against references anyone can re-run (issue 25). Each trace is replayed by the cache simulator
 * (src/cache/sim: the real policy functions on a virtual clock) under our policies and other runners' rules, and
 * compared with:
 *
 * - the offline optimum, solved with HiGHS: the exact integer program on the small traces, the LP-relaxation lower
 *   bound (FOO-style) on the large ones;
 * - a real offline schedule (bench/eviction-offline.ts: Belady-style rules that know the future, with load costs), an
 *   upper bound on the optimum beside the LP's lower bound;
 * - the known-rate online reference: `reload-cost` told each model's true request rate (its request count over the
 *   whole trace; on the stationary traces the rates the generator draws from), the best any online rule of that family
 *   could estimate.
 *
 * Targets: on the stationary Zipf traces the default within `TARGETS.defaultVsReference` of the known-rate reference;
 * on the traces whose popularity changes (shift, daily cycle, scans, the recorded server trace) the lowest load time of
 * every rule, ours and the peers' (`TARGETS.defaultVsBestRule`). Simulated time, so the figures do not depend on the
 * machine; only the solve times do.
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
import { FakeModelSource } from "../testkit/fake-models.js";
import { offlineSchedule } from "./eviction-offline.js";
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
/**
 * The known-rate online reference, not a policy: `reload-cost` told each model's request count over the whole trace
 * (its true rate, up to sampling, on the stationary traces).
 */
export const KNOWN_RATES = "reload-cost, rates known (reference)";
/** The offline schedule's column: the cheaper of the Belady-style rules (bench/eviction-offline.ts). */
export const OFFLINE = "offline schedule";
export const TARGETS = { defaultVsReference: 1.03, defaultVsBestRule: 1 } as const;

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
  /** Stationary Zipf: the target against the known-rate reference applies. */
  zipf: boolean;
  /** Popularity changes: the target of the lowest load time of every rule applies. */
  shifting: boolean;
  policies: Record<string, PolicyFigures>;
  /** The offline schedule's total load time (s) and the rule that made it. */
  offline: { seconds: number; rule: string };
  defaultVsLru: number;
  /** The default's load time over the known-rate reference's. */
  defaultVsReference: number;
  /** The default's load time over the lowest of every other rule's, and that rule. */
  defaultVsBestRule: number;
  bestRule: string;
}

/** The default against the best other rule over traces drawn as the recorded server trace was (no target). */
export interface ServerFamilyFigures {
  draws: number;
  /** The default's load time over the lowest other rule's, per drawn trace: geometric mean, median, 90th percentile. */
  geomean: number;
  median: number;
  p90: number;
  /** Drawn traces on which the default spent no more than every other rule. */
  lowest: number;
  /** Drawn traces whose ratio is above the recorded trace's. */
  aboveRecorded: number;
}

export interface EvictionReport {
  defaultPolicy: string;
  settings: SimSettings;
  targets: typeof TARGETS;
  traces: TraceFigures[];
  /** Results written before the family was measured have none. */
  serverFamily?: ServerFamilyFigures;
  /** Worst default/bound, default/LRU and default/reference over the Zipf traces (large ones, LP bound). */
  worstZipf: { defaultVsBound: number; defaultVsLru: number; defaultVsReference: number };
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
    shifting: true,
    models: trace.models,
    requests: trace.requests,
    settings: trace.settings,
  };
}

/**
 * A trace drawn as bench/record-trace.ts drew the recorded one's requests, over its models and their measured load
 * times: the popularity order shuffled per draw, Zipf 1.0 sessions of 1–6 requests, as many requests. One recording
 * is one draw of this family; the family tells a policy's cause from the luck of that draw (bench/NOTES.md, issue 25).
 */
export function serverLikeTrace(recorded: Trace, seed: number): Trace {
  const rand = seededRandom(seed);
  const order = [...recorded.models].sort(() => rand() - 0.5);
  const sample = zipfSampler(order.length, 1.0, rand);
  const requests: SimRequest[] = [];
  const start = (recorded.requests[0] as SimRequest).at;
  while (requests.length < recorded.requests.length) {
    const key = (order[sample()] as SimModel).key;
    const burst = 1 + Math.floor(rand() * 6);
    for (let i = 0; i < burst && requests.length < recorded.requests.length; i++)
      requests.push({ at: start + 40 * requests.length, key });
  }
  return { models: recorded.models, requests };
}

/** The default's load time over the best other rule's on `draws` traces drawn like the recorded server trace. */
function serverFamily(recorded: NamedTrace, settings: SimSettings, draws: number, recordedRatio: number) {
  const ratios = Array.from({ length: draws }, (_, i) => {
    const trace = serverLikeTrace(recorded, 1000 + i);
    const [own, ...others] = [DEFAULT_POLICY, ...POLICIES.filter((p) => p !== DEFAULT_POLICY)].map(
      (policy) => simulate(trace, settings, policy).loadMsTotal,
    );
    return (own as number) / Math.min(...others);
  }).sort((x, y) => x - y);
  const at = (q: number) => ratios[Math.floor(q * (ratios.length - 1))] as number;
  return {
    draws,
    geomean: Math.exp(ratios.reduce((sum, r) => sum + Math.log(r), 0) / ratios.length),
    median: at(0.5),
    p90: at(0.9),
    lowest: ratios.filter((r) => r <= 1).length,
    aboveRecorded: ratios.filter((r) => r > recordedRatio).length,
  } satisfies ServerFamilyFigures;
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
  const server = await serverTrace();
  const traces = [
    ...syntheticTraces(requests),
    await recordInfernoTrace(options.quick ? 400 : 1500),
    server,
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
      [KNOWN_RATES, () => simulate(trace, settings, "reload-cost", { knownFrequency: requestCounts })],
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
    const offline = offlineSchedule(trace, settings);
    const own = (policies[DEFAULT_POLICY] as PolicyFigures).loadSeconds;
    const [bestRule, best] = POLICIES.filter((p) => p !== DEFAULT_POLICY)
      .map((p): [string, number] => [p, (policies[p] as PolicyFigures).loadSeconds])
      .reduce((a, b) => (b[1] < a[1] ? b : a));
    figures.push({
      trace: trace.name,
      models: trace.models.length,
      requests: trace.requests.length,
      optimumSeconds: optimum.loadMsTotal / 1000,
      exact,
      solveMs,
      zipf: trace.zipf,
      shifting: trace.shifting === true,
      policies,
      offline: { seconds: offline.loadMsTotal / 1000, rule: offline.rule },
      defaultVsLru: own / (policies.lru as PolicyFigures).loadSeconds,
      defaultVsReference: own / (policies[KNOWN_RATES] as PolicyFigures).loadSeconds,
      defaultVsBestRule: own / best,
      bestRule,
    });
  }
  const zipf = figures.filter((f) => f.zipf);
  const recordedRatio = (figures.find((f) => f.trace === server.name) as TraceFigures).defaultVsBestRule;
  return {
    defaultPolicy: DEFAULT_POLICY,
    settings: base,
    targets: TARGETS,
    traces: figures,
    serverFamily: serverFamily(server, { ...base, ...server.settings }, options.quick ? 50 : 200, recordedRatio),
    worstZipf: {
      defaultVsBound: Math.max(...zipf.map((f) => (f.policies[DEFAULT_POLICY] as PolicyFigures).vsOptimum)),
      defaultVsLru: Math.max(...zipf.map((f) => f.defaultVsLru)),
      defaultVsReference: Math.max(...zipf.map((f) => f.defaultVsReference)),
    },
  };
}

/** The report as table rows: one per trace, each policy's load time as a multiple of the optimum. */
export function evictionTable(report: EvictionReport): string[][] {
  const columns = [...POLICIES, KNOWN_RATES];
  const header = [
    "trace",
    "requests",
    "optimum",
    OFFLINE,
    ...columns.map((p) => (p === DEFAULT_POLICY ? `${p} (default)` : p)),
    "default / lru",
  ];
  const rows = report.traces.map((t) => [
    t.trace,
    String(t.requests),
    `${t.optimumSeconds.toFixed(0)} s ${t.exact ? "exact" : "LP bound"}`,
    // Results written before the offline schedule was measured have none.
    "offline" in t ? `${(t.offline.seconds / t.optimumSeconds).toFixed(3)}x (${t.offline.rule})` : "—",
    ...columns.map((p) => (t.policies[p] ? `${t.policies[p].vsOptimum.toFixed(3)}x` : "—")),
    t.defaultVsLru.toFixed(3),
  ]);
  return [header, ...rows];
}

/**
 * The report's figures for the one table, per trace: the default's total load time against the optimum (exact) or its
 * LP bound, with the offline schedule's in the note; on each stationary Zipf trace against the known-rate reference
 * (target) and LRU's; on each trace whose popularity changes against the best other rule (target: no rule lower).
 * Simulated time: one deterministic value each, no spread. The full per-policy table is in latest.json's details.
 */
export function evictionFigures(report: EvictionReport): Figure[] {
  const figures: Figure[] = [];
  for (const t of report.traces) {
    const own = t.policies[report.defaultPolicy] as PolicyFigures;
    const base = { section: "eviction", item: "1.8", name: `${report.defaultPolicy} on ${t.trace}`, unit: "×" };
    figures.push(
      figure({
        ...base,
        samples: own.vsOptimum,
        baseline: t.exact ? "exact optimum" : "optimum's LP bound",
        note: `${t.requests} requests; hit rate ${(own.hitRate * 100).toFixed(0)} %; the offline schedule (${t.offline.rule}) ${(t.offline.seconds / t.optimumSeconds).toFixed(3)}×, the default ${(own.loadSeconds / t.offline.seconds).toFixed(3)}× the offline schedule`,
      }),
    );
    if (t.zipf) {
      figures.push(
        figure({
          ...base,
          samples: t.defaultVsReference,
          baseline: "known-rate reference (reload-cost, true rates)",
          target: { max: report.targets.defaultVsReference },
          note: `stationary: no online rule can know more than the rates`,
        }),
        figure({ ...base, samples: t.defaultVsLru, baseline: "LRU's load time" }),
      );
    }
    if (t.shifting) {
      figures.push(
        figure({
          ...base,
          samples: t.defaultVsBestRule,
          baseline: `the best other rule (${t.bestRule})`,
          target: { max: report.targets.defaultVsBestRule },
          note: "popularity changes: the default should spend the least load time of every rule",
        }),
      );
    }
  }
  const family = report.serverFamily;
  if (family) {
    figures.push(
      figure({
        section: "eviction",
        item: "1.8",
        name: `${report.defaultPolicy} on ${family.draws} traces drawn like the recorded server trace (geometric mean)`,
        unit: "×",
        samples: family.geomean,
        baseline: "the best other rule per trace",
        note: `the recording is one draw of this family (its nine models and load times, popularity order shuffled, sessions of 1–6): median ${family.median.toFixed(3)}×, p90 ${family.p90.toFixed(3)}×; the default lowest on ${family.lowest} of ${family.draws}, above the recording's ratio on ${family.aboveRecorded}`,
      }),
    );
  }
  return figures;
}
