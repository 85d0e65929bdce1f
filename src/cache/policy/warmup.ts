/**
 * What to load at start, in which order. Pure: the caller passes what it knows — the saved statistics, the pins, the
 * files there now, what is resident — and the limits, and gets back the plan and the models left out (with why). The
 * one planner for the live cache (`Warmer`) and the CLI's file mode (`inferno cache warmup --plan` without a server).
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
import type { CacheConfig } from "../../config/schema.js";
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

/** What the saved statistics say of a model that was used, as of now. */
export interface WarmupHistory {
  key: string;
  /** The name it was saved under (what a skip names when its file is gone). */
  name: string;
  lastUsedAt: EpochMilliseconds | null;
  /** Decayed usage count as of now. */
  frequency: number;
  avgLoadMs: number | null;
  /** Last measured memory, or null when never loaded. */
  memoryBytes: Bytes | null;
}

/** Everything the plan is made from, as plain data. */
export interface WarmupInputs {
  /** The saved statistics: the live cache's book, or the state file's models. */
  history: readonly WarmupHistory[];
  /** Pinned models (`always_warm`, `pinned = true`): key → position in `always_warm` (Infinity for `pinned = true`). */
  pinned: ReadonlyMap<string, number>;
  /** The model files there now: key → name. */
  files: ReadonlyMap<string, string>;
  /** Keys whose file changed since their statistics were recorded (not warmed: the statistics describe another file). */
  changed: ReadonlySet<string>;
  /** Keys resident or loading now: left out (their room is counted in the limits' resident figures). */
  resident: ReadonlySet<string>;
  /** Memory estimates of the models with no measured figure (the keys `unmeasured` names); 0 for any not given. */
  estimates: ReadonlyMap<string, Bytes>;
}

/** The keys worth planning: used or pinned, in that order, each once. */
function keysOf(inputs: Pick<WarmupInputs, "history" | "pinned">): Set<string> {
  return new Set([...inputs.history.map((h) => h.key), ...inputs.pinned.keys()]);
}

/** The models the plan needs a memory estimate for: planned ones (file there, not resident) never measured. */
export function unmeasured(inputs: Omit<WarmupInputs, "estimates">): string[] {
  const history = new Map(inputs.history.map((h) => [h.key, h]));
  return [...keysOf(inputs)].filter(
    (key) => inputs.files.has(key) && !inputs.resident.has(key) && (history.get(key)?.memoryBytes ?? null) === null,
  );
}

/** The limits a plan keeps, from the configuration, the memory budget and what is resident now. */
export function warmupLimits(
  config: Pick<CacheConfig, "max_cached_models" | "restore_window_hours">,
  now: EpochMilliseconds,
  memoryLimitBytes: Bytes,
  resident: { count: number; bytes: Bytes } = { count: 0, bytes: 0 },
): WarmupLimits {
  return {
    now,
    maxModels: config.max_cached_models,
    memoryLimitBytes,
    restoreWindowMs: config.restore_window_hours * 3600_000,
    residentCount: resident.count,
    residentBytes: resident.bytes,
  };
}

/**
 * The warm-up plan from the saved statistics and the pins: a model whose file is not there is skipped ("model file not
 * found"), a resident one left out, the rest ranked and cut by `planWarmup`.
 */
export function warmupPlan(inputs: WarmupInputs, strategy: WarmupStrategy, limits: WarmupLimits): WarmupPlan {
  const history = new Map(inputs.history.map((h) => [h.key, h]));
  const missing: WarmupPlan["skipped"] = [];
  const candidates: WarmupCandidate[] = [];
  for (const key of keysOf(inputs)) {
    const name = inputs.files.get(key);
    const saved = history.get(key);
    if (name === undefined) {
      missing.push({ name: saved?.name ?? key, reason: "model file not found" });
      continue;
    }
    if (inputs.resident.has(key)) continue;
    const alwaysWarmIndex = inputs.pinned.get(key) ?? null;
    candidates.push({
      key,
      name,
      pinned: alwaysWarmIndex !== null,
      alwaysWarmIndex,
      lastUsedAt: saved?.lastUsedAt ?? null,
      frequency: saved?.frequency ?? 0,
      avgLoadMs: saved?.avgLoadMs ?? null,
      memoryBytes: saved?.memoryBytes ?? inputs.estimates.get(key) ?? 0,
      fileChanged: inputs.changed.has(key),
      loaded: false,
    });
  }
  const ranked = planWarmup(candidates, strategy, limits);
  return { plan: ranked.plan, skipped: [...missing, ...ranked.skipped] };
}
