/**
 * Statistics (SPEC.md's fields) computed from saved per-model state: one mechanism for the live cache and for the
 * CLI's file mode, so `inferno cache stats` reads the same with or without a server.
 */
import type { CacheConfig } from "../config/schema.js";
import type { Bytes, EpochMilliseconds } from "../models/types.js";
import type { CacheState, PersistedCounters, PersistedModel } from "./persistence/types.js";
import { modelValue } from "./policy/eviction.js";
import { decayedValue, perHour } from "./policy/frequency.js";
import type { WarmupHistory } from "./policy/warmup.js";
import { type CacheStats, emptyEvictions, type LastSave, type ModelStats } from "./types.js";
import { MIB } from "../units.js";

/** What only a running cache knows about a model. */
export interface LiveModelFacts {
  loaded: boolean;
  pinned: boolean;
  memory_bytes: Bytes;
  expires_at: string | null;
}

/** Counters of a cache that has seen nothing yet. */
export function emptyCounters(): PersistedCounters {
  return {
    hits: 0,
    misses: 0,
    loads: 0,
    load_failures: 0,
    evictions: emptyEvictions(),
    warmups: 0,
    unknown_model_requests: 0,
    coalesced: 0,
  };
}

/** The largest |epoch ms| a `Date` holds (ECMAScript's time range); `toISOString` throws beyond it. */
const MAX_DATE_MS = 8.64e15;

/**
 * An epoch-milliseconds time as ISO text, null staying null. Never throws: a time no `Date` can hold (the codec refuses
 * such files, so only a bug gets here) reads as null rather than stopping `cache stats` or a server start.
 */
export function iso(ms: number | null): string | null {
  return ms === null || !Number.isFinite(ms) || Math.abs(ms) > MAX_DATE_MS ? null : new Date(ms).toISOString();
}

function percentile95(samples: readonly number[]): number | null {
  if (samples.length === 0) return null;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(0.95 * sorted.length) - 1)] ?? null;
}

export function averageLoadMs(model: PersistedModel): number | null {
  return model.usage.loads > 0 ? model.usage.load_ms_total / model.usage.loads : null;
}

/** A model's keep/warm value now: decayed frequency x average load time per MiB. */
export function priorityOf(model: PersistedModel, now: EpochMilliseconds, halfLifeHours: number): number {
  return modelValue({
    frequency: decayedValue(model.usage.frequency, now, halfLifeHours),
    loadMs: averageLoadMs(model),
    memoryBytes: model.metadata.memory_bytes ?? 0,
  });
}

export function modelStatsOf(
  model: PersistedModel,
  now: EpochMilliseconds,
  halfLifeHours: number,
  live: LiveModelFacts,
): ModelStats {
  return {
    name: model.name,
    key: model.key,
    loaded: live.loaded,
    pinned: live.pinned,
    requests: model.usage.requests,
    hits: model.usage.hits,
    misses: model.usage.misses,
    loads: model.usage.loads,
    avg_load_ms: averageLoadMs(model),
    p95_load_ms: percentile95(model.usage.load_ms_samples),
    last_used: iso(model.usage.last_used_at),
    frequency_per_hour: perHour(model.usage.frequency, now, halfLifeHours),
    priority: priorityOf(model, now, halfLifeHours),
    memory_bytes: live.memory_bytes,
    expires_at: live.expires_at,
    missing: model.missing_since !== null && model.missing_since !== undefined,
  };
}

/** The memory budget in bytes: `max_memory_mb`, or half the system memory for 0 (0 = unlimited when unknown). */
export function memoryLimitBytes(
  config: Pick<CacheConfig, "max_memory_mb">,
  systemMemoryBytes: Bytes | undefined,
): Bytes {
  return config.max_memory_mb > 0 ? config.max_memory_mb * MIB : Math.floor((systemMemoryBytes ?? 0) / 2);
}

export interface FileStatsOptions {
  now: EpochMilliseconds;
  config: CacheConfig;
  systemMemoryBytes?: Bytes;
  stateFile: string;
  /** Size of the state file (bytes), or null when there is none. */
  fileBytes: Bytes | null;
  /** Keys (or names) of models the configuration pins. */
  isPinned: (model: PersistedModel) => boolean;
}

/** Statistics as a stopped cache would report them from its state file: nothing loaded. */
export function statsFromState(state: CacheState | null, options: FileStatsOptions): CacheStats {
  const counters = state?.counters;
  const all = { ...emptyCounters(), ...counters };
  const hits = counters?.hits ?? 0;
  const misses = counters?.misses ?? 0;
  const lastSave: LastSave = state
    ? { at: iso(state.saved_at), ok: true, duration_ms: null, bytes: options.fileBytes, error: null }
    : { at: null, ok: null, duration_ms: null, bytes: null, error: null };
  return {
    hits,
    misses,
    hit_rate: hits + misses === 0 ? 0 : hits / (hits + misses),
    loads: counters?.loads ?? 0,
    load_failures: counters?.load_failures ?? 0,
    evictions: { ...emptyEvictions(), ...counters?.evictions },
    warmups: counters?.warmups ?? 0,
    models_loaded: 0,
    max_cached_models: options.config.max_cached_models,
    memory_bytes: 0,
    memory_limit_bytes: memoryLimitBytes(options.config, options.systemMemoryBytes),
    last_save: lastSave,
    unsaved_changes: false,
    state_file: options.stateFile,
    models: (state?.models ?? [])
      .map((m) =>
        modelStatsOf(m, options.now, options.config.usage_half_life_hours, {
          loaded: false,
          pinned: options.isPinned(m),
          memory_bytes: 0,
          expires_at: null,
        }),
      )
      .sort((a, b) => a.name.localeCompare(b.name)),
    unknown_model_requests: all.unknown_model_requests,
    coalesced: all.coalesced,
  };
}

/** What a model's saved statistics say for the warm-up plan, as of `now`. */
export function warmupHistoryOf(model: PersistedModel, now: EpochMilliseconds, halfLifeHours: number): WarmupHistory {
  return {
    key: model.key,
    name: model.name,
    lastUsedAt: model.usage.last_used_at,
    frequency: decayedValue(model.usage.frequency, now, halfLifeHours),
    avgLoadMs: averageLoadMs(model),
    memoryBytes: model.metadata.memory_bytes,
  };
}
