/**
 * A node's published record built from what its cache reports (`CacheStats`, SPEC.md's field names) and the models it
 * can load: one pure function, so the heartbeat publishes the same figures `inferno cache stats` shows.
 */
import {
  type CacheLimits,
  DEFAULT_LOAD_MS,
  type EvictionCandidate,
  type EvictionPolicy,
  evictionOrder,
  weightedMedian,
} from "../cache/policy/eviction.js";
import type { CacheStats } from "../cache/types.js";
import { GIB } from "../units.js";
import type { LoadRate, NodeRecord } from "./types.js";

/** A node's record but for the figures its cache's statistics give (`nodeRecordOf` adds those). */
export type NodeFacts = Omit<
  NodeRecord,
  "memory_capacity" | "memory_used" | "model_capacity" | "model_count" | "lru_time"
>;

/** The record from the cache's statistics: its limits, its use, and the last use of its least recently used model. */
export function nodeRecordOf(
  stats: Pick<CacheStats, "memory_bytes" | "memory_limit_bytes" | "max_cached_models" | "models_loaded" | "models">,
  facts: NodeFacts,
): NodeRecord {
  let lru: number | null = null;
  for (const model of stats.models) {
    if (!model.loaded || model.last_used === null) continue;
    const at = Date.parse(model.last_used);
    if (lru === null || at < lru) lru = at;
  }
  return {
    ...facts,
    memory_capacity: stats.memory_limit_bytes,
    memory_used: stats.memory_bytes,
    model_capacity: stats.max_cached_models,
    model_count: stats.models_loaded,
    lru_time: lru,
  };
}

/**
 * Requests per minute over the last minute, in one-second buckets (O(1) per request, 60 numbers of memory): the `rpm`
 * a node publishes. The clock is passed in (ms).
 */
export class RequestRate {
  private readonly buckets = new Array<number>(60).fill(0);
  /** The second the newest bucket counts. */
  private second = 0;

  /** Counts one request at `now`. */
  count(now: number): void {
    this.advance(now);
    this.buckets[this.second % 60]!++;
  }

  /** Requests in the 60 seconds up to `now`. */
  perMinute(now: number): number {
    this.advance(now);
    return this.buckets.reduce((a, b) => a + b, 0);
  }

  private advance(now: number): void {
    const second = Math.floor(now / 1000);
    if (second <= this.second) return;
    // The seconds that passed since the newest bucket start empty (all 60 after a minute of silence).
    for (let s = Math.max(this.second + 1, second - 59); s <= second; s++) this.buckets[s % 60] = 0;
    this.second = second;
  }
}

/**
 * A node's evictable models as placement reads them (`PlacementCandidate.evictable`): in the order its policy evicts
 * them (pass spare copies through `asSpareCopy`, so they come first at no loss), each with its memory and the reload
 * time evicting it is expected to cost (decayed frequency × measured load time).
 */
export function evictionLadder(
  candidates: readonly EvictionCandidate[],
  policy: EvictionPolicy,
  limits: CacheLimits,
): LadderStep[] {
  return evictionOrder(candidates, policy, limits).map(ladderStep);
}

/** One step of a node's eviction ladder: a model's memory and the reload time evicting it is expected to cost. */
export interface LadderStep {
  bytes: number;
  loss: number;
}

function ladderStep(c: EvictionCandidate): LadderStep {
  return { bytes: c.memoryBytes, loss: c.frequency * (c.loadMs ?? DEFAULT_LOAD_MS) };
}

/**
 * The ladder (`evictionLadder`) of a node some of whose models are `busy` (a request in flight): they cannot go now,
 * so the ladder leaves them out. `leftOut` names those it would have put before an idle model: while they are busy
 * the ladder makes room there look dearer than it is once their requests end (a model loaded for a request serves it
 * right after the load), so the node publishes its ladder again then.
 */
export function busyLadder(
  candidates: readonly EvictionCandidate[],
  policy: EvictionPolicy,
  limits: CacheLimits,
  busy: ReadonlySet<string>,
): { ladder: LadderStep[]; leftOut: string[] } {
  const ordered = evictionOrder(candidates, policy, limits);
  let lastIdle = -1;
  ordered.forEach((c, i) => {
    if (!busy.has(c.key)) lastIdle = i;
  });
  return {
    ladder: ordered.filter((c) => !busy.has(c.key)).map(ladderStep),
    leftOut: ordered
      .slice(0, Math.max(0, lastIdle))
      .filter((c) => busy.has(c.key))
      .map((c) => c.key),
  };
}

/** How many of a node's most recent loads its published load rate is the median of. */
export const LOAD_RATE_WINDOW = 64;

/**
 * Which page-cache tier a load found: `warm`, its file unloaded on this node minutes before; `cold`, a reload whose file
 * had left the page cache; `first`, the node's first load of the model, which also pays set-up a reload does not (on
 * the bench machine a first load takes up to ten times a reload), so it is left out of the warm file's price.
 */
export type LoadTier = "warm" | "cold" | "first";

/**
 * A node's most recent loads as time per byte of the memory loaded (the last `LOAD_RATE_WINDOW`), each with its tier:
 * the `load_rate` it publishes, from which every node takes the fleet's typical load time (`fleetLoadRate`) and what a
 * warm file saves (`fleetWarmSaving`).
 */
export class LoadRates {
  private readonly loads: Array<{ rate: number; tier: LoadTier }> = [];

  /** Counts a load of `bytes` that took `ms` (loads of unknown size are left out). */
  add(ms: number, bytes: number, tier: LoadTier = "first"): void {
    if (!(bytes > 0) || !(ms >= 0)) return;
    this.loads.push({ rate: ms / bytes, tier });
    if (this.loads.length > LOAD_RATE_WINDOW) this.loads.shift();
  }

  /**
   * The median and the count of all the loads, and of the warm and the cold reloads apart (each once there is one),
   * for the record; undefined before the first load.
   */
  published(): LoadRate | undefined {
    const all = medianPerGib(this.loads);
    if (!all) return undefined;
    const warm = medianPerGib(this.loads.filter((l) => l.tier === "warm"));
    const cold = medianPerGib(this.loads.filter((l) => l.tier === "cold"));
    return { ...all, ...(warm ? { warm } : {}), ...(cold ? { cold } : {}) };
  }
}

function medianPerGib(loads: ReadonlyArray<{ rate: number }>): { ms_per_gib: number; loads: number } | undefined {
  const median = weightedMedian(loads.map((l) => ({ value: l.rate, weight: 1 })));
  return median === null ? undefined : { ms_per_gib: median * GIB, loads: loads.length };
}

/** The weighted median of per-GiB rates over the nodes, each weighted by its loads, per byte; null when none. */
function fleetMedian(rates: ReadonlyArray<{ ms_per_gib: number; loads: number } | undefined>): number | null {
  const median = weightedMedian(rates.flatMap((r) => (r ? [{ value: r.ms_per_gib, weight: r.loads }] : [])));
  return median === null ? null : median / GIB;
}

/**
 * The fleet's typical load time per byte: the median of the nodes' published load rates, each weighted by its loads
 * (about the median of all their recent loads); null while no node has loaded anything.
 */
export function fleetLoadRate(rates: ReadonlyArray<LoadRate | undefined>): number | null {
  return fleetMedian(rates);
}

/**
 * What a warm file saves per byte of a load, as measured by the fleet: the nodes' cold reloads' median less their warm
 * ones' (each weighted by its loads), never below 0; null until the fleet has measured both.
 * Where reloads come within minutes (the bench's small replays) there are no cold reloads and it stays null; where a
 * cold reload reads the disk, most of a load.
 */
export function fleetWarmSaving(rates: ReadonlyArray<LoadRate | undefined>): number | null {
  const cold = fleetMedian(rates.map((r) => r?.cold));
  const warm = fleetMedian(rates.map((r) => r?.warm));
  return cold === null || warm === null ? null : Math.max(0, cold - warm);
}

/** The most a node publishes of its usage: its most used models (a fleet of 2,000 models keeps records small). */
export const USAGE_PUBLISHED = 100;

/** A node's `usage` for its record: its most used models' uses per hour (3 significant digits), none unused. */
export function publishedUsage(
  models: ReadonlyArray<{ name: string; frequency_per_hour: number }>,
): Record<string, number> {
  const used = models.filter((m) => m.frequency_per_hour > 0);
  used.sort((a, b) => b.frequency_per_hour - a.frequency_per_hour);
  return Object.fromEntries(
    used.slice(0, USAGE_PUBLISHED).map((m) => [m.name, Number(m.frequency_per_hour.toPrecision(3))]),
  );
}
