/**
 * What to load at start, in which order. Pure: the cache passes what it knows about each model and the limits, and
 * gets back the plan and the models left out (with why).
 *
 * Pinned models (`always_warm`, `pinned = true`) come first under every strategy, in `always_warm` order: they are
 * loaded at start whatever the strategy. The strategy orders the rest:
 * - `usage`: decayed frequency x measured load time (the time a cold start would cost users), highest first;
 * - `recent`: last used first;
 * - `hybrid`: like `usage`; models with no measured load time yet follow, most recent first;
 * - `priority`: nothing beyond the pinned models (their order is the priority);
 * - `none`: nothing beyond the pinned models.
 * Only models used within the restore window are planned; a model whose file changed since it was last seen is not
 * (its statistics describe another file). The plan never exceeds the count or memory limit: a model that does not fit
 * is skipped and smaller ones after it may still be planned.
 */
import type { Bytes, EpochMilliseconds } from "../../models/types.js";
import type { WarmupStrategy } from "../types.js";
import { DEFAULT_LOAD_MS } from "./eviction.js";

export interface WarmupCandidate {
  key: string;
  name: string;
  pinned: boolean;
  /** Position in `always_warm`, or null. */
  alwaysWarmIndex: number | null;
  lastUsedAt: EpochMilliseconds | null;
  /** Decayed usage count as of now. */
  frequency: number;
  avgLoadMs: number | null;
  /** Memory it is expected to take (last measured, else the estimate). */
  memoryBytes: Bytes;
  /** Size or mtime changed since the statistics were recorded. */
  fileChanged: boolean;
  /** Already resident (or loading): planned as a no-op, taking its room. */
  loaded: boolean;
}

export interface WarmupLimits {
  now: EpochMilliseconds;
  /** Most resident models. */
  maxModels: number;
  /** Memory budget in bytes; 0 = unlimited. */
  memoryLimitBytes: Bytes;
  /** Only models used this recently (ms); 0 = no limit. */
  restoreWindowMs: number;
  /** Models already resident that are not candidates (they take room). */
  residentCount: number;
  residentBytes: Bytes;
}

export interface WarmupPlan {
  plan: WarmupCandidate[];
  skipped: Array<{ name: string; reason: string }>;
}

export function warmupScore(c: Pick<WarmupCandidate, "frequency" | "avgLoadMs">): number {
  return c.frequency * (c.avgLoadMs ?? DEFAULT_LOAD_MS);
}

const byRecency = (a: WarmupCandidate, b: WarmupCandidate) =>
  (b.lastUsedAt ?? -Infinity) - (a.lastUsedAt ?? -Infinity) || a.name.localeCompare(b.name);
const byScore = (a: WarmupCandidate, b: WarmupCandidate) => warmupScore(b) - warmupScore(a) || byRecency(a, b);
const byAlwaysWarm = (a: WarmupCandidate, b: WarmupCandidate) =>
  (a.alwaysWarmIndex ?? Infinity) - (b.alwaysWarmIndex ?? Infinity) || a.name.localeCompare(b.name);

function orderRest(rest: WarmupCandidate[], strategy: WarmupStrategy): WarmupCandidate[] {
  switch (strategy) {
    case "usage":
      return rest.sort(byScore);
    case "recent":
      return rest.sort(byRecency);
    case "hybrid": {
      const measured = rest.filter((c) => c.avgLoadMs !== null).sort(byScore);
      return [...measured, ...rest.filter((c) => c.avgLoadMs === null).sort(byRecency)];
    }
    case "priority":
    case "none":
      return [];
  }
}

function whyNotEligible(c: WarmupCandidate, limits: WarmupLimits): string | null {
  if (c.fileChanged) return "file changed since last use";
  if (c.lastUsedAt === null) return "never used";
  if (limits.restoreWindowMs > 0 && limits.now - c.lastUsedAt > limits.restoreWindowMs)
    return "not used within the restore window";
  return null;
}

/** The warm-up plan under a strategy and the limits. */
export function planWarmup(
  candidates: readonly WarmupCandidate[],
  strategy: WarmupStrategy,
  limits: WarmupLimits,
): WarmupPlan {
  const skipped: WarmupPlan["skipped"] = [];
  const pinned = candidates.filter((c) => c.pinned).sort(byAlwaysWarm);
  const eligible = candidates.filter((c) => {
    if (c.pinned) return false;
    const why = whyNotEligible(c, limits);
    if (why) skipped.push({ name: c.name, reason: why });
    return why === null;
  });
  const ordered = [...pinned, ...orderRest(eligible, strategy)];
  const plan: WarmupCandidate[] = [];
  let count = limits.residentCount;
  let bytes = limits.residentBytes;
  for (const c of ordered) {
    if (count + 1 > limits.maxModels) {
      skipped.push({ name: c.name, reason: "would exceed max_cached_models" });
    } else if (limits.memoryLimitBytes > 0 && bytes + c.memoryBytes > limits.memoryLimitBytes) {
      skipped.push({ name: c.name, reason: "would exceed the memory limit" });
    } else {
      plan.push(c);
      count++;
      bytes += c.memoryBytes;
    }
  }
  return { plan, skipped };
}
