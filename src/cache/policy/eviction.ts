/**
 * Which idle models to unload when a load needs room. Pure: the cache passes plain facts about its evictable models
 * and the shortfall, and gets back the victims in order, each with the reason it is counted under.
 *
 * `cost-aware` is GreedyDual-Size-Frequency: a model's value is L + F * C / S, where F is its decayed usage frequency,
 * C its measured load time (what a miss costs to undo), S its memory (what keeping it costs), and L an "inflation"
 * value that rises to the value of each victim. A model's L is fixed at its last use, so models not used for a while
 * age out even if they were once valuable, without any timer.
 */
import type { Bytes, EpochMilliseconds } from "../../models/types.js";
import type { EvictionReason } from "../types.js";

export type EvictionPolicy = "lru" | "cost-aware";

/** Load time assumed for a model never loaded yet (it has no measurement). */
export const DEFAULT_LOAD_MS = 1000;
const MIB = 1024 * 1024;

export interface EvictionCandidate {
  key: string;
  lastUsedAt: EpochMilliseconds | null;
  memoryBytes: Bytes;
  /** Measured (average) load time in milliseconds, or null when unknown. */
  loadMs: number | null;
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

/** GDSF priority: the lowest is evicted first. */
export function gdsfPriority(c: EvictionCandidate): number {
  return c.inflation + modelValue(c);
}

function byLastUse(a: EvictionCandidate, b: EvictionCandidate): number {
  return (a.lastUsedAt ?? -Infinity) - (b.lastUsedAt ?? -Infinity) || a.key.localeCompare(b.key);
}

/** Candidates in the order they should go: least recently used first, or lowest GDSF priority first. */
export function evictionOrder(candidates: readonly EvictionCandidate[], policy: EvictionPolicy): EvictionCandidate[] {
  const sorted = [...candidates];
  if (policy === "lru") return sorted.sort(byLastUse);
  return sorted.sort((a, b) => gdsfPriority(a) - gdsfPriority(b) || byLastUse(a, b));
}

/**
 * Victims, in order, until both the count and the memory shortfall are covered (or candidates run out: check
 * `covers`). A victim taken while memory is still short is counted as `capacity_memory`, otherwise `capacity_count`.
 */
export function chooseVictims(
  candidates: readonly EvictionCandidate[],
  shortfall: Shortfall,
  policy: EvictionPolicy,
): { victims: Victim[]; covers: boolean } {
  return takeVictims(evictionOrder(candidates, policy), shortfall, (c) => (policy === "lru" ? 0 : gdsfPriority(c)));
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
    victims.push({ key: candidate.key, reason: bytes > 0 ? "capacity_memory" : "capacity_count", value: valueOf(candidate) });
    count--;
    bytes -= candidate.memoryBytes;
  }
  return { victims, covers: count <= 0 && bytes <= 0 };
}

/** GDSF's inflation after evicting `victims`: it rises to the highest victim value, never falls. */
export function nextInflation(inflation: number, victims: readonly Victim[]): number {
  return Math.max(inflation, ...victims.map((v) => v.value));
}
