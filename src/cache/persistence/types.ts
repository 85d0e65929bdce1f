/**
 * The saved cache state and the store interface the cache core talks to. The core never touches the filesystem: the
 * file store (`file-store.ts`) implements `StateStore`; tests may implement it in memory.
 */
import type { Bytes, EpochMilliseconds, Fingerprint, ModelFormat } from "../../models/types.js";
import type { DecayedCount } from "../policy/frequency.js";
import type { EvictionReason } from "../types.js";

/** Usage statistics of one model, with wall-clock times (they must mean something after a restart). */
export interface PersistedUsage {
  requests: number;
  hits: number;
  misses: number;
  loads: number;
  last_used_at: EpochMilliseconds | null;
  /** Exponentially decayed use count (half-life `usage_half_life_hours`) and when it was last brought up to date. */
  frequency: DecayedCount | null;
  /** Sum of all measured load times (ms), for the average. */
  load_ms_total: number;
  /** The most recent load times (ms), for the p95. */
  load_ms_samples: number[];
}

/** A GGUF model's header facts, as the model source reported them at its last load. */
export interface PersistedGgufFacts {
  /** `general.architecture`, e.g. `llama`. */
  architecture: string;
  /** llama.cpp file type name, e.g. `F16`, `MOSTLY_Q4_K_M`. */
  quantization: string;
  parameter_count: number;
  /** Training context length (tokens). */
  context_length: number;
}

export interface PersistedMetadata {
  /** Last measured memory once loaded, or null when never loaded. */
  memory_bytes: Bytes | null;
  /**
   * GGUF header facts, present when the model source offered metadata at a load (`ModelSource.metadata`). Dropped when
   * the file changed since, until the next load.
   */
  gguf?: PersistedGgufFacts;
}

export interface PersistedModel {
  /** Canonical real path of the file: the cache key. */
  key: string;
  /** Display name relative to the models directory. */
  name: string;
  format: ModelFormat;
  fingerprint: Fingerprint;
  metadata: PersistedMetadata;
  usage: PersistedUsage;
  /** Warm-up / keep value: decayed frequency x load cost per MiB (see `modelValue`). */
  priority: number;
  pinned: boolean;
}

export interface PersistedCounters {
  hits: number;
  misses: number;
  loads: number;
  load_failures: number;
  evictions: Record<EvictionReason, number>;
  warmups: number;
}

/** Everything saved in `cache_state.bin.zst` (after the format header). */
export interface CacheState {
  saved_at: EpochMilliseconds;
  counters: PersistedCounters;
  models: PersistedModel[];
}

export interface RestoreResult {
  /** null when there was nothing (usable) to restore. */
  state: CacheState | null;
  /** Set when the saved state was refused or quarantined: one sentence for the log. */
  warning: string | null;
}

export interface SaveResult {
  bytes: Bytes;
}

export interface StateStore {
  /** Where the state lives (shown as `state_file`). */
  readonly path: string;
  /** Reads the saved state. Never throws for a bad or newer-version file: it is set aside and reported in `warning`. */
  load(): Promise<RestoreResult>;
  /** Writes the state atomically; throws when it cannot. */
  save(state: CacheState): Promise<SaveResult>;
}
