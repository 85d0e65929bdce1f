/**
 * Other runners' eviction rules, as orders over the same candidates our policies see, so the simulator can replay a
 * trace under them and compare. Pure.
 *
 * - `lru-count`: llama.cpp's router (`--models-max`) and LocalAI (`max_active_backends`): least recently used first,
 *   under a limit on the number of models only. They do not know model sizes, so the simulator gives them the largest
 *   count whose biggest models still fit in memory (what their user must configure to never run out of memory).
 * - `ollama`: Ollama's scheduler unloads the idle model with the shortest keep_alive, ties broken by name. Every request
 *   of a trace uses the default keep_alive, so the name decides.
 * - `largest-first`: LocalAI's size-aware option: the largest idle model first (ties: least recently used).
 */
import type { EvictionCandidate } from "../policy/eviction.js";

export type PeerPolicy = "lru-count" | "ollama" | "largest-first";

export const PEER_POLICIES: readonly PeerPolicy[] = ["lru-count", "ollama", "largest-first"];

function byLastUse(a: EvictionCandidate, b: EvictionCandidate): number {
  return (a.lastUsedAt ?? -Infinity) - (b.lastUsedAt ?? -Infinity) || a.key.localeCompare(b.key);
}

/** Candidates in the order the peer's rule evicts them. */
export function peerOrder(candidates: readonly EvictionCandidate[], policy: PeerPolicy): EvictionCandidate[] {
  const sorted = [...candidates];
  switch (policy) {
    case "lru-count":
      return sorted.sort(byLastUse);
    case "ollama":
      return sorted.sort((a, b) => a.key.localeCompare(b.key));
    case "largest-first":
      return sorted.sort((a, b) => b.memoryBytes - a.memoryBytes || byLastUse(a, b));
  }
}

/**
 * The count limit a count-only runner must be given so it never exceeds `maxMemoryBytes`: as many models as the largest
 * ones of the trace that fit together (at least 1), and never more than `maxModels`.
 */
export function safeCountLimit(sizes: readonly number[], maxModels: number, maxMemoryBytes: number): number {
  if (maxMemoryBytes <= 0) return maxModels;
  const largest = [...sizes].sort((a, b) => b - a);
  let n = 0;
  let used = 0;
  while (n < largest.length && n < maxModels && used + (largest[n] as number) <= maxMemoryBytes)
    used += largest[n++] as number;
  return Math.max(1, n);
}
