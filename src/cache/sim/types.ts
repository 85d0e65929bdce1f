/**
 * The shapes the cache simulator works on: a trace (models and timed requests), the cache settings it replays them
 * under, and what a replay costs. Plain data, so a trace can come from a generator, a recorded run or the cache's own
 * request log.
 */
import type { Bytes, EpochMilliseconds } from "../../models/types.js";

/** One model of a trace: what it takes in memory and what loading it costs. */
export interface SimModel {
  key: string;
  memoryBytes: Bytes;
  /** Load time from a cold page cache, in milliseconds. */
  loadMs: number;
  /**
   * Load time when the model was unloaded at most `warmWindowMs` before (its file still in the page cache), in
   * milliseconds. Equal to `loadMs` when the trace has no warm tier.
   */
  warmLoadMs: number;
}

/** One request: the model it needs and when it arrives. */
export interface SimRequest {
  at: EpochMilliseconds;
  key: string;
}

/** Models and requests; requests in time order, every key among the models. */
export interface Trace {
  models: SimModel[];
  requests: SimRequest[];
}

/** The cache settings a trace is replayed under. */
export interface SimSettings {
  /** Resident models at most (`cache.max_cached_models`). */
  maxModels: number;
  /** Resident bytes at most; 0 = no memory limit (`cache.max_memory_mb`). */
  maxMemoryBytes: Bytes;
  /**
   * How long an unloaded model's file stays in the page cache, in milliseconds: a reload at most this long after the
   * unload costs `warmLoadMs`. 0 = no warm tier.
   */
  warmWindowMs: number;
  /** Half-life of the decayed usage frequency, in hours (`cache.usage_half_life_hours`). */
  usageHalfLifeHours: number;
  /**
   * Idle time after its last request before a model is unloaded (`cache.model_ttl_seconds`), in milliseconds; 0 or
   * absent = never. The offline optimum ignores it: a TTL only adds unloads, so the bound stays a bound.
   */
  ttlMs?: number;
}

/** What replaying a trace cost. */
export interface SimResult {
  requests: number;
  hits: number;
  misses: number;
  /** Loads, and how many of them found the file in the page cache. */
  loads: number;
  warmLoads: number;
  /** Time spent loading, in milliseconds: what users waited for. */
  loadMsTotal: number;
  evictions: number;
}

/**
 * A trace's true request rates from `from` on, until the next phase's `from`: what a known-rate reference is told (the
 * rates a generator draws from, switched when its popularity changes). Recorded traces have none.
 */
export interface RatePhase {
  from: EpochMilliseconds;
  /** Expected requests per hour of each model. */
  perHour: ReadonlyMap<string, number>;
}

/** The phase in force at `now` (the last one from at or before it; the first before any), or undefined when none. */
export function phaseAt(phases: readonly RatePhase[], now: EpochMilliseconds): RatePhase | undefined {
  let lo = 0;
  let hi = phases.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((phases[mid] as RatePhase).from <= now) lo = mid + 1;
    else hi = mid;
  }
  return phases[Math.max(0, lo - 1)];
}
