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
} from "../cache/policy/eviction.js";
import type { CacheStats } from "../cache/types.js";
import type { ModelTraffic, NodeRecord, ServedModel } from "./types.js";

export interface NodeFacts {
  url: string;
  version: string;
  started_at: number;
  /** Loads in progress, and how many may run at once. */
  loading: number;
  load_slots: number;
  /** Requests in the last minute. */
  rpm: number;
  draining: boolean;
  /** The models this node can load, by the name requests use. */
  serves: Record<string, ServedModel>;
  /** The traffic of the models it holds, and how many of its copies are spare (copies.ts). */
  traffic?: Record<string, ModelTraffic>;
  spare_copies?: number;
  /** Its eviction ladder (`evictionLadder`) and the models whose files are warm in its page cache. */
  evictable?: Array<{ bytes: number; loss: number }>;
  warm?: string[];
}

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
    url: facts.url,
    version: facts.version,
    started_at: facts.started_at,
    memory_capacity: stats.memory_limit_bytes,
    memory_used: stats.memory_bytes,
    model_capacity: stats.max_cached_models,
    model_count: stats.models_loaded,
    lru_time: lru,
    loading: facts.loading,
    load_slots: facts.load_slots,
    rpm: facts.rpm,
    draining: facts.draining,
    serves: facts.serves,
    ...(facts.traffic ? { traffic: facts.traffic } : {}),
    ...(facts.spare_copies !== undefined ? { spare_copies: facts.spare_copies } : {}),
    ...(facts.evictable ? { evictable: facts.evictable } : {}),
    ...(facts.warm ? { warm: facts.warm } : {}),
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
): Array<{ bytes: number; loss: number }> {
  return evictionOrder(candidates, policy, limits).map((c) => ({
    bytes: c.memoryBytes,
    loss: c.frequency * (c.loadMs ?? DEFAULT_LOAD_MS),
  }));
}
