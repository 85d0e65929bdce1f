/**
 * Which idle models to unload when a load needs room. Pure: the cache passes plain facts about its evictable models
 * and the shortfall, and gets back the victims in order, each with the reason it is counted under.
 *
 * `cost-aware` is GreedyDual-Size-Frequency: a model's value is L + F * C / S, where F is its decayed usage frequency,
 * C its measured load time (what a miss costs to undo), S its memory (what keeping it costs), and L an "inflation"
 * value that rises to the value of each victim. A model's L is fixed at its last use, so models not used for a while
 * age out even if they were once valuable, without any timer.
 *
 * `reload-cost` keeps the models whose expected reload time per share of the cache is highest: a model's value is
 * F * C / max(S / memory limit, 1 / count limit). F and C are as above (C, the average of the measured loads, already
 * carries how often a reload found the file in the page cache); the denominator is the larger share the model takes of
 * the two limits, so under the memory limit big models pay for their bytes and under the count limit every model pays
 * one place. No inflation: the decayed frequency alone ages models out. Of the sets of idle models that would make
 * room, it evicts the one that loses the least expected reload time (`leastLossCover`). The eviction benchmark (`npm run bench`)
 * compares it with the offline optimum; it is the default because it came out best there.
 */
import type { Bytes, EpochMilliseconds } from "../../models/types.js";
import type { EvictionReason } from "../types.js";
import { MIB } from "../../units.js";

export type EvictionPolicy = "lru" | "cost-aware" | "reload-cost";

/** Load time assumed for a model never loaded yet (it has no measurement). */
export const DEFAULT_LOAD_MS = 1000;

export interface EvictionCandidate {
  key: string;
  lastUsedAt: EpochMilliseconds | null;
  memoryBytes: Bytes;
  /** Measured (average) load time in milliseconds, or null when unknown. */
  loadMs: number | null;
  /** How many loads `loadMs` averages (absent: unknown, taken as settled). */
  loads?: number;
  /** Decayed usage count as of now. */
  frequency: number;
  /** GDSF inflation value L at the model's last use. */
  inflation: number;
}

/** How far over the limits the cache would be with the new model: models and bytes to free (≤ 0 = fine). */
export interface Shortfall {
  count: number;
  bytes: Bytes;
}

export interface Victim {
  key: string;
  reason: Extract<EvictionReason, "capacity_count" | "capacity_memory">;
  /** The victim's value; GDSF's inflation rises to it. */
  value: number;
}

/** How much keeping a model is worth, ignoring inflation: frequency x load cost per MiB. */
export function modelValue(c: Pick<EvictionCandidate, "frequency" | "loadMs" | "memoryBytes">): number {
  const sizeMiB = Math.max(1, c.memoryBytes / MIB);
  return (c.frequency * (c.loadMs ?? DEFAULT_LOAD_MS)) / sizeMiB;
}

/**
 * Load times as a node should weigh them: a model measured once only has its first load, read from disk — later loads
 * of an evicted model mostly find its file in the page cache, and a first load on a busy machine can take ten times a
 * reload. So a model loaded at most once counts at most what the node's reloaded models (two loads or more) take per
 * byte, scaled to its size (their median): one cold or slow first load must not keep a rarely used model resident for
 * good while the hot ones take turns in the other places (the fleet's Zipf replay: 3 tail models, loaded once in 250 ms
 * against 10–30 ms reloads, held a slot on every node to the end). Unchanged when no candidate has been reloaded.
 */
export function settledLoadTimes<C extends EvictionCandidate>(candidates: readonly C[]): C[] {
  const rates = candidates
    .filter((c) => (c.loads ?? 2) >= 2 && c.loadMs !== null && c.memoryBytes > 0)
    .map((c) => (c.loadMs as number) / c.memoryBytes)
    .sort((a, b) => a - b);
  if (rates.length === 0) return [...candidates];
  const rate = rates[Math.floor((rates.length - 1) / 2)] as number;
  return candidates.map((c) =>
    (c.loads ?? 2) < 2 && c.loadMs !== null && c.memoryBytes > 0 && c.loadMs > rate * c.memoryBytes
      ? { ...c, loadMs: rate * c.memoryBytes }
      : c,
  );
}

/**
 * Load times as a fleet node weighs them: each measured model's is the fleet's typical load time per byte (`msPerByte`,
 * the `weightedMedian` of the nodes' recent loads) × its size; while that is unknown (no node has loaded anything
 * yet), settled as above. A model loads anywhere in the fleet at about the fleet's rate, while the few loads one node
 * measured of it fell in whatever that machine was doing: on the bench machine a reload takes 10–30 ms and one in five
 * loads 8–30 times that. In a fleet that noise decides: placement sends each load to the node whose ladder loses the
 * least, so a model measured slow holds its slot and is never reloaded to correct it, and one measured fast looks
 * cheap and goes: in the bench's Zipf replay on 3 real nodes × 2 slots, the 8th most used model held a slot for half
 * the replay on a 250 ms average of two loads while one node made 86 of the 128 loads. Capping load times at the
 * fleet's rate instead (keeping faster measurements) did as well in the simulator but made 103–112 loads in three real
 * replays, against 94–105 for this. Single nodes keep `settledLoadTimes` alone (the eviction bench). The price: a
 * model that really loads slower per byte than the fleet's others (another format, a slower disk) is weighed as a
 * typical one.
 */
export function fleetLoadTimes<C extends EvictionCandidate>(candidates: readonly C[], msPerByte: number | null): C[] {
  if (msPerByte === null) return settledLoadTimes(candidates);
  return candidates.map((c) =>
    c.loadMs !== null && c.memoryBytes > 0 ? { ...c, loadMs: msPerByte * c.memoryBytes } : c,
  );
}

/** The weighted median of `values` (the lower one at an even split); null when no weight is positive. */
export function weightedMedian(values: ReadonlyArray<{ value: number; weight: number }>): number | null {
  const sorted = values.filter((v) => v.weight > 0).sort((a, b) => a.value - b.value);
  const total = sorted.reduce((sum, v) => sum + v.weight, 0);
  let seen = 0;
  for (const v of sorted) {
    seen += v.weight;
    if (seen >= total / 2) return v.value;
  }
  return null;
}

/** The cache's limits, as `reload-cost` weighs a model's share of them. */
export interface CacheLimits {
  maxModels: number;
  /** 0 = no memory limit. */
  maxMemoryBytes: Bytes;
}

/** No limits known: every model takes the same share. */
const NO_LIMITS: CacheLimits = { maxModels: 1, maxMemoryBytes: 0 };

/** The larger share of the two limits a model takes (1 = all of one limit). */
export function cacheShare(memoryBytes: Bytes, limits: CacheLimits): number {
  const byCount = 1 / Math.max(1, limits.maxModels);
  return limits.maxMemoryBytes > 0 ? Math.max(memoryBytes / limits.maxMemoryBytes, byCount) : byCount;
}

/** `reload-cost`'s value: expected reload time (frequency x measured load time) per share of the cache. */
export function reloadCostValue(
  c: Pick<EvictionCandidate, "frequency" | "loadMs" | "memoryBytes">,
  limits: CacheLimits,
): number {
  return (c.frequency * (c.loadMs ?? DEFAULT_LOAD_MS)) / cacheShare(c.memoryBytes, limits);
}

/** GDSF priority: the lowest is evicted first. */
export function gdsfPriority(c: EvictionCandidate): number {
  return c.inflation + modelValue(c);
}

function byLastUse(a: EvictionCandidate, b: EvictionCandidate): number {
  return (a.lastUsedAt ?? -Infinity) - (b.lastUsedAt ?? -Infinity) || a.key.localeCompare(b.key);
}

/** A candidate's value under a policy: the lowest goes first (`lru`: its last use). */
function valueUnder(policy: EvictionPolicy, limits: CacheLimits): (c: EvictionCandidate) => number {
  switch (policy) {
    case "lru":
      return (c) => c.lastUsedAt ?? -Infinity;
    case "cost-aware":
      return gdsfPriority;
    case "reload-cost":
      return (c) => reloadCostValue(c, limits);
  }
}

/**
 * Candidates in the order they should go: least recently used first, or lowest value first (ties: least recently
 * used). `limits` matter to `reload-cost` only.
 */
export function evictionOrder(
  candidates: readonly EvictionCandidate[],
  policy: EvictionPolicy,
  limits: CacheLimits = NO_LIMITS,
): EvictionCandidate[] {
  const value = valueUnder(policy, limits);
  return [...candidates].sort((a, b) => value(a) - value(b) || byLastUse(a, b));
}

/**
 * Victims, in order, until both the count and the memory shortfall are covered (or candidates run out: check
 * `covers`). A victim taken while memory is still short is counted as `capacity_memory`, otherwise `capacity_count`.
 */
export function chooseVictims(
  candidates: readonly EvictionCandidate[],
  shortfall: Shortfall,
  policy: EvictionPolicy,
  limits: CacheLimits = NO_LIMITS,
): { victims: Victim[]; covers: boolean } {
  const ordered = evictionOrder(candidates, policy, limits);
  const chosen = policy === "reload-cost" ? (leastLossCover(ordered, shortfall) ?? ordered) : ordered;
  // Only GDSF's inflation reads a victim's value.
  return takeVictims(chosen, shortfall, (c) => (policy === "cost-aware" ? gdsfPriority(c) : 0));
}

/** How many of the lowest-valued candidates `reload-cost` searches for the cheapest covering set (2^12 sets at most). */
export const COVER_SEARCH_LIMIT = 12;

/**
 * `reload-cost`'s victims: of the first `COVER_SEARCH_LIMIT` candidates (in value order), the set that covers the
 * shortfall and loses the least expected reload time (sum of frequency x load time), in the given order; null when
 * none covers it. Taking victims strictly in value order can free more than needed (a small cheap model first, then a
 * big one that alone would have done); the exhaustive search over a few candidates cannot.
 */
export function leastLossCover(
  ordered: readonly EvictionCandidate[],
  shortfall: Shortfall,
): EvictionCandidate[] | null {
  const pool = ordered.slice(0, COVER_SEARCH_LIMIT);
  const loss = pool.map((c) => c.frequency * (c.loadMs ?? DEFAULT_LOAD_MS));
  let best: { mask: number; loss: number } | null = null;
  for (let mask = 1; mask < 1 << pool.length; mask++) {
    let count = 0;
    let bytes = 0;
    let total = 0;
    for (let i = 0; i < pool.length; i++) {
      if (!(mask & (1 << i))) continue;
      count++;
      bytes += (pool[i] as EvictionCandidate).memoryBytes;
      total += loss[i] as number;
    }
    if (count >= shortfall.count && bytes >= shortfall.bytes && (!best || total < best.loss))
      best = { mask, loss: total };
  }
  if (!best) return null;
  const { mask } = best;
  return pool.filter((_, i) => mask & (1 << i));
}

/**
 * The covering rule every eviction order shares (ours and the other runners' rules the simulator replays): take
 * candidates in the given order until both the count and the memory shortfall are covered.
 */
export function takeVictims<C extends Pick<EvictionCandidate, "key" | "memoryBytes">>(
  ordered: readonly C[],
  shortfall: Shortfall,
  valueOf: (candidate: C) => number,
): { victims: Victim[]; covers: boolean } {
  let { count, bytes } = shortfall;
  const victims: Victim[] = [];
  for (const candidate of ordered) {
    if (count <= 0 && bytes <= 0) break;
    victims.push({
      key: candidate.key,
      reason: bytes > 0 ? "capacity_memory" : "capacity_count",
      value: valueOf(candidate),
    });
    count--;
    bytes -= candidate.memoryBytes;
  }
  return { victims, covers: count <= 0 && bytes <= 0 };
}

/** GDSF's inflation after evicting `victims`: it rises to the highest victim value, never falls. */
export function nextInflation(inflation: number, victims: readonly Victim[]): number {
  return Math.max(inflation, ...victims.map((v) => v.value));
}

/**
 * A spare copy as every policy sees it: the fleet holds the model on another node too, so evicting this copy loses no
 * reload (its requests go to the other copy). No frequency, no recent use, no inflation: it goes before any model only
 * this node holds, under `lru`, `cost-aware` and `reload-cost` alike.
 */
export function asSpareCopy(candidate: EvictionCandidate): EvictionCandidate {
  return { ...candidate, frequency: 0, lastUsedAt: null, inflation: 0 };
}
