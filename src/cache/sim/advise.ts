/**
 * `inferno cache advise`: what other settings would have done with the user's own traffic. The request log (a saved or
 * live state's `request_log`) becomes a trace — each model's size its measured memory, its load cost its measured
 * average load time — and is replayed by the cache simulator (simulate.ts: the policy functions the cache runs) under
 * every eviction policy (ours and other runners' rules), a range of `max_cached_models` and `max_memory_mb` values, and
 * solved for the offline optimum (optimum.ts, the same bound `npm run bench` reports). One change is recommended: the
 * one that would have saved the most loading time (of the changes within 2 % of that saving, the smallest), scaled to a
 * day by the log's time span.
 *
 * Pure: the state, the configuration and the solver are passed in.
 */
import type { CacheConfig } from "../../config/schema.js";
import { cacheSchema } from "../../config/schema.js";
import { NoRequestLog } from "../../errors/index.js";
import type { Bytes } from "../../models/types.js";
import type { CacheState } from "../persistence/types.js";
import { DEFAULT_LOAD_MS } from "../policy/eviction.js";
import { type LoggedRequest, requestsOf } from "../persistence/merge.js";
import { iso, memoryLimitBytes } from "../state-view.js";
import { type LpSolver, optimumOrBound } from "./optimum.js";
import { PEER_POLICIES } from "./peers.js";
import { type SimPolicy, simulate } from "./simulate.js";
import type { SimModel, SimSettings, Trace } from "./types.js";
import { MIB } from "../../units.js";

const DAY_MS = 24 * 3600_000;
/** Changes whose saving is within this share of the best one count as equally good; the smallest of them is chosen. */
const EQUAL_SAVING = 0.02;
/**
 * The optimum is solved for logs of up to this many requests (10,000 take a few seconds; the solver's time grows faster
 * than the log); a longer log (`request_log_size` above it) gets every row but no optimum, and a note says so.
 */
export const MAX_OPTIMUM_REQUESTS = 20_000;
/** Every `max_cached_models` value up to this many models is tried; beyond it, a spread of values. */
const ALL_COUNTS_UP_TO = 16;

/** Our policies (`cache.eviction_policy`), then the other runners' rules (peers.ts). */
const OUR_POLICIES: readonly SimPolicy[] = cacheSchema.shape.eviction_policy.unwrap().options;
export const ADVISE_POLICIES: readonly SimPolicy[] = [...OUR_POLICIES, ...PEER_POLICIES];

/** Which setting a row changes from the current ones. */
export type AdviceVaries = "current" | "eviction_policy" | "max_cached_models" | "max_memory_mb";

export interface AdviceRow {
  varies: AdviceVaries;
  eviction_policy: SimPolicy;
  max_cached_models: number;
  /** The memory limit replayed, in MiB (0: none). */
  max_memory_mb: number;
  current: boolean;
  /** Whether Inferno can be set this way (other runners' rules are shown for comparison only). */
  settable: boolean;
  hits: number;
  loads: number;
  /** Hits / requests in the replay. */
  hit_rate: number;
  /** Total load time the replay paid, in seconds. */
  load_seconds: number;
}

export interface AdviceModel {
  name: string;
  key: string;
  requests: number;
  memory_bytes: Bytes;
  /** True: the last measured memory; false: the file size (never measured). */
  memory_measured: boolean;
  load_ms: number;
  /** True: the average measured load time; false: the policy's default guess (`DEFAULT_LOAD_MS`). */
  load_ms_measured: boolean;
}

export interface AdviceRecommendation {
  /** The configuration key to change, its current value and the value advised. */
  key: `cache.${Exclude<AdviceVaries, "current">}`;
  from: string | number;
  to: string | number;
  /** Loading time the change would have saved over the log's span, and per day at the log's pace (seconds). */
  load_seconds_saved: number;
  seconds_saved_per_day: number;
  hit_rate: number;
}

export interface AdviceReport {
  log: {
    requests: number;
    models: number;
    first: string | null;
    last: string | null;
    span_seconds: number;
    /** What the cache itself did over the log: its hits, misses, joined loads, and the measured time of the loads misses caused. */
    observed: { hits: number; misses: number; coalesced: number; hit_rate: number; load_seconds: number };
  };
  current: { eviction_policy: SimPolicy; max_cached_models: number; max_memory_mb: number };
  rows: AdviceRow[];
  /**
   * The least total load time any eviction schedule could have had at the current limits (exact, or the LP lower
   * bound); null for a log longer than `MAX_OPTIMUM_REQUESTS`.
   */
  optimum: { load_seconds: number; exact: boolean } | null;
  /** Null when no change would have saved loading time. */
  recommendation: AdviceRecommendation | null;
  models: AdviceModel[];
  /** What the replay leaves out or had to assume. */
  notes: string[];
  /** Only on a node in a fleet: the fleet's merged log replayed through the fleet simulator (runtime/fleet-advice.ts). */
  fleet?: FleetAdvice;
}

/** One fleet size replayed: `nodes` nodes of `max_cached_models` slots and `max_memory_mb` each. */
export interface FleetAdviceRow {
  varies: "current" | "nodes" | "max_memory_mb";
  nodes: number;
  max_cached_models: number;
  max_memory_mb: number;
  hits: number;
  loads: number;
  hit_rate: number;
  load_seconds: number;
  /** Requests served by another node than the one that received them. */
  forwards: number;
}

/**
 * What the fleet's recorded traffic needs: its merged request log (every node's, merged in Redis by time) replayed
 * through the fleet simulator at other node counts and memory per node, and the smallest of each reaching the target.
 */
export interface FleetAdvice {
  log: { requests: number; models: number; first: string; last: string; span_seconds: number; source: string };
  /** Live nodes now, each sized as this node (its `max_cached_models` and memory limit). */
  current: FleetAdviceRow;
  target_hit_rate: number;
  /** The best hit rate any size replayed reached (every model resident after its first load). */
  best_hit_rate: number;
  /** The fewest nodes of the current size that reach the target; null when none replayed does. */
  nodes_needed: number | null;
  /** At the current node count, the least memory per node (MiB) that reaches the target; null when none does. */
  max_memory_mb_needed: number | null;
  rows: FleetAdviceRow[];
  notes: string[];
}

export interface AdviseOptions {
  config: Pick<
    CacheConfig,
    | "eviction_policy"
    | "max_cached_models"
    | "max_memory_mb"
    | "model_ttl_seconds"
    | "usage_half_life_hours"
    | "request_log_size"
  >;
  /** Resolves `max_memory_mb = 0` (half of it) and caps the memory values tried (never more than the machine has). */
  systemMemoryBytes?: Bytes;
  solver: LpSolver;
}

/** The log's models: size and load cost from the statistics (or the log's own load times), as the trace charges them. */
function traceModels(state: CacheState, requests: readonly LoggedRequest[]): AdviceModel[] {
  const byKey = new Map(state.models.map((m) => [m.key, m]));
  const counts = new Map<string, number>();
  const logged = new Map<string, { total: number; n: number }>();
  for (const r of requests) {
    counts.set(r.key, (counts.get(r.key) ?? 0) + 1);
    if (r.loadMs !== null) {
      const sum = logged.get(r.key) ?? { total: 0, n: 0 };
      sum.total += r.loadMs;
      sum.n++;
      logged.set(r.key, sum);
    }
  }
  return [...counts].map(([key, count]) => {
    const saved = byKey.get(key);
    const fromLog = logged.get(key);
    const measuredLoad =
      saved && saved.usage.loads > 0
        ? saved.usage.load_ms_total / saved.usage.loads
        : fromLog
          ? fromLog.total / fromLog.n
          : null;
    const measuredMemory = saved?.metadata.memory_bytes ?? null;
    return {
      name: saved?.name ?? key,
      key,
      requests: count,
      memory_bytes: measuredMemory ?? saved?.fingerprint.size ?? 0,
      memory_measured: measuredMemory !== null,
      load_ms: measuredLoad ?? DEFAULT_LOAD_MS,
      load_ms_measured: measuredLoad !== null,
    };
  });
}

/** `max_cached_models` values to try: every one up to 16 models, then a spread up to the log's model count. */
export function countRange(models: number): number[] {
  const values = new Set<number>();
  for (let n = 1; n <= Math.min(models, ALL_COUNTS_UP_TO); n++) values.add(n);
  for (let n = ALL_COUNTS_UP_TO; n < models; n = Math.ceil(n * 1.5)) values.add(n);
  values.add(Math.max(1, models));
  return [...values].sort((a, b) => a - b);
}

/**
 * Memory limits to try (MiB): half, three quarters, 1.5x and twice the current one, and room for every model of the
 * log; never below the largest model (it could not load), never above the machine's memory when known.
 */
export function memoryRange(
  currentMiB: number,
  largestMiB: number,
  allMiB: number,
  systemMiB: number | null,
): number[] {
  if (currentMiB === 0) return [];
  const values = new Set<number>();
  for (const v of [currentMiB * 0.5, currentMiB * 0.75, currentMiB * 1.5, currentMiB * 2, allMiB]) {
    const mib = Math.ceil(v);
    if (mib >= largestMiB && (systemMiB === null || mib <= systemMiB) && mib !== currentMiB) values.add(mib);
  }
  return [...values].sort((a, b) => a - b);
}

/** The request log as a trace to replay (see `replayOf`), with what was left out of it. */
export interface LogReplay {
  /** Every logged request, and those replayed (a model larger than the memory limit left out). */
  allRequests: LoggedRequest[];
  requests: LoggedRequest[];
  /** Every model of the log, and those replayed. */
  models: AdviceModel[];
  replayed: AdviceModel[];
  trace: Trace;
  first: LoggedRequest;
  last: LoggedRequest;
  spanMs: number;
  notes: string[];
}

/**
 * The state's request log as a trace (each model's size its measured memory, its load cost its measured average load
 * time), leaving out models larger than `limitBytes`; throws `NoRequestLog` when there is too little to replay.
 */
export function replayOf(
  state: CacheState | null,
  config: Pick<CacheConfig, "request_log_size">,
  limitBytes: Bytes,
): LogReplay {
  const allRequests = requestsOf(state?.request_log);
  if (allRequests.length === 0) {
    throw new NoRequestLog(
      config.request_log_size === 0
        ? "the request log is off (cache.request_log_size = 0): there is no traffic to replay; set it (default 10000) and ask again after some requests"
        : "the request log is empty: no request has been logged yet (or the statistics were reset); ask again after some requests",
      { details: { reason: config.request_log_size === 0 ? "off" : "empty", requests: 0 } },
    );
  }
  const notes: string[] = [];
  const models = traceModels(state as CacheState, allRequests);
  // Requests for a model that can never fit the current memory limit were refused; no setting here changes that.
  const tooLarge = new Set(models.filter((m) => limitBytes > 0 && m.memory_bytes > limitBytes).map((m) => m.key));
  const requests = allRequests.filter((r) => !tooLarge.has(r.key));
  const replayed = models.filter((m) => !tooLarge.has(m.key));
  if (tooLarge.size > 0) {
    notes.push(
      `left out: ${[...tooLarge].length} model(s) larger than the memory limit (${models
        .filter((m) => tooLarge.has(m.key))
        .map((m) => m.name)
        .join(", ")})`,
    );
  }
  const first = (requests[0] ?? allRequests[0]) as LoggedRequest;
  const last = (requests[requests.length - 1] ?? allRequests[allRequests.length - 1]) as LoggedRequest;
  const spanMs = last.at - first.at;
  if (requests.length < 2 || spanMs <= 0) {
    throw new NoRequestLog(
      `the request log holds ${requests.length} request(s) over ${spanMs / 1000} s: too little to tell what a day of traffic would save; ask again after more requests`,
      { details: { reason: "too_short", requests: requests.length, span_seconds: spanMs / 1000 } },
    );
  }
  const trace: Trace = {
    models: replayed.map((m): SimModel => ({
      key: m.key,
      memoryBytes: m.memory_bytes,
      loadMs: m.load_ms,
      warmLoadMs: m.load_ms,
    })),
    requests: requests.map((r) => ({ at: r.at, key: r.key })),
  };
  return { allRequests, requests, models, replayed, trace, first, last, spanMs, notes };
}

/** Replays the state's request log under other settings; throws `NoRequestLog` when there is nothing to replay. */
/**
 * The report of a node whose own log holds too little to replay, in a fleet whose merged log may still answer
 * (runtime/advice.ts): the current settings, no rows, `reason` as its note.
 */
export function adviceWithoutLog(options: Omit<AdviseOptions, "solver">, reason: string): AdviceReport {
  const { config } = options;
  return {
    log: {
      requests: 0,
      models: 0,
      first: null,
      last: null,
      span_seconds: 0,
      observed: { hits: 0, misses: 0, coalesced: 0, hit_rate: 0, load_seconds: 0 },
    },
    current: {
      eviction_policy: config.eviction_policy as SimPolicy,
      max_cached_models: config.max_cached_models,
      max_memory_mb: Math.floor(memoryLimitBytes(config, options.systemMemoryBytes) / MIB),
    },
    rows: [],
    optimum: null,
    recommendation: null,
    models: [],
    notes: [reason],
  };
}

export function advise(state: CacheState | null, options: AdviseOptions): AdviceReport {
  const { config, solver } = options;
  const limitBytes = memoryLimitBytes(config, options.systemMemoryBytes);
  const currentMiB = Math.floor(limitBytes / MIB);
  const { allRequests, models, replayed, trace, first, last, spanMs, notes } = replayOf(state, config, limitBytes);
  const base: SimSettings = {
    maxModels: config.max_cached_models,
    maxMemoryBytes: limitBytes,
    warmWindowMs: 0,
    usageHalfLifeHours: config.usage_half_life_hours,
    ttlMs: config.model_ttl_seconds * 1000,
  };
  const current = {
    eviction_policy: config.eviction_policy as SimPolicy,
    max_cached_models: config.max_cached_models,
    max_memory_mb: currentMiB,
  };
  const row = (varies: AdviceVaries, policy: SimPolicy, maxModels: number, memoryMiB: number): AdviceRow => {
    const settings = { ...base, maxModels, maxMemoryBytes: memoryMiB === currentMiB ? limitBytes : memoryMiB * MIB };
    const result = simulate(trace, settings, policy);
    return {
      varies,
      eviction_policy: policy,
      max_cached_models: maxModels,
      max_memory_mb: memoryMiB,
      current: varies === "current",
      settable: OUR_POLICIES.includes(policy),
      hits: result.hits,
      loads: result.loads,
      hit_rate: result.hits / result.requests,
      load_seconds: result.loadMsTotal / 1000,
    };
  };

  const rows: AdviceRow[] = [row("current", current.eviction_policy, current.max_cached_models, currentMiB)];
  for (const policy of ADVISE_POLICIES) {
    if (policy !== current.eviction_policy)
      rows.push(row("eviction_policy", policy, current.max_cached_models, currentMiB));
  }
  for (const count of countRange(replayed.length)) {
    if (count !== current.max_cached_models)
      rows.push(row("max_cached_models", current.eviction_policy, count, currentMiB));
  }
  const largestMiB = Math.ceil(Math.max(...replayed.map((m) => m.memory_bytes)) / MIB);
  const allMiB = Math.ceil(replayed.reduce((sum, m) => sum + m.memory_bytes, 0) / MIB);
  const systemMiB = options.systemMemoryBytes ? Math.floor(options.systemMemoryBytes / MIB) : null;
  for (const mib of memoryRange(currentMiB, largestMiB, allMiB, systemMiB)) {
    rows.push(row("max_memory_mb", current.eviction_policy, current.max_cached_models, mib));
  }

  const optimum = trace.requests.length <= MAX_OPTIMUM_REQUESTS ? optimumOrBound(trace, base, solver) : null;
  if (!optimum)
    notes.push(
      `no optimum: it is solved for logs of up to ${MAX_OPTIMUM_REQUESTS} requests, this one has ${trace.requests.length}`,
    );
  if (config.model_ttl_seconds > 0) {
    notes.push(
      `the replay unloads a model idle for cache.model_ttl_seconds (${config.model_ttl_seconds} s) after its last request`,
    );
  }
  notes.push(
    "not replayed: pins (always_warm, pinned), per-model ttl_seconds, request keep_alive, warm-up at start, and requests overlapping in time",
  );
  const unmeasured = replayed.filter((m) => !m.load_ms_measured).map((m) => m.name);
  if (unmeasured.length > 0)
    notes.push(`no load time measured for ${unmeasured.join(", ")}: ${DEFAULT_LOAD_MS} ms assumed`);

  const coalesced = allRequests.filter((r) => r.outcome === "coalesced").length;
  const hits = allRequests.filter((r) => r.outcome === "hit").length;
  const misses = allRequests.length - hits - coalesced;
  return {
    log: {
      requests: allRequests.length,
      models: models.length,
      first: iso(first.at),
      last: iso(last.at),
      span_seconds: spanMs / 1000,
      observed: {
        hits,
        misses,
        coalesced,
        hit_rate: hits / allRequests.length,
        load_seconds: allRequests.reduce((sum, r) => sum + (r.loadMs ?? 0), 0) / 1000,
      },
    },
    current,
    rows,
    optimum: optimum && { load_seconds: optimum.loadMsTotal / 1000, exact: optimum.exact },
    recommendation: recommend(rows, spanMs),
    models: models.sort((a, b) => b.requests - a.requests || a.name.localeCompare(b.name)),
    notes,
  };
}

/** How big a change a row is, to choose among equally good ones: a policy costs nothing, then the smallest step. */
function changeSize(row: AdviceRow, current: AdviceRow): number {
  if (row.varies === "eviction_policy") return 0;
  if (row.varies === "max_cached_models")
    return Math.abs(row.max_cached_models - current.max_cached_models) / current.max_cached_models;
  return Math.abs(row.max_memory_mb - current.max_memory_mb) / Math.max(1, current.max_memory_mb);
}

/** The change that saves the most loading time (of those within 2 % of it, the smallest); null when none saves any. */
export function recommend(rows: readonly AdviceRow[], spanMs: number): AdviceRecommendation | null {
  const current = rows.find((r) => r.current) as AdviceRow;
  const saving = (r: AdviceRow) => current.load_seconds - r.load_seconds;
  const better = rows.filter((r) => !r.current && r.settable && saving(r) > 1e-9);
  if (better.length === 0) return null;
  const best = Math.max(...better.map(saving));
  const chosen = better
    .filter((r) => saving(r) >= best * (1 - EQUAL_SAVING))
    .sort((a, b) => changeSize(a, current) - changeSize(b, current) || saving(b) - saving(a))[0] as AdviceRow;
  const key = chosen.varies as Exclude<AdviceVaries, "current">;
  const saved = saving(chosen);
  return {
    key: `cache.${key}`,
    from: current[key],
    to: chosen[key],
    load_seconds_saved: saved,
    seconds_saved_per_day: (saved * DAY_MS) / spanMs,
    hit_rate: chosen.hit_rate,
  };
}
