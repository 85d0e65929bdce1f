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
  /**
   * Since when (wall-clock ms) the model's file has been missing at restore; null or absent while it exists. Kept
   * `cache.missing_retention_days`, then dropped.
   */
  missing_since?: EpochMilliseconds | null;
}

export interface PersistedCounters {
  hits: number;
  misses: number;
  loads: number;
  load_failures: number;
  evictions: Record<EvictionReason, number>;
  warmups: number;
  /** Requests for names that resolved to no model (not misses). */
  unknown_model_requests: number;
  /** Requests that joined a load already in flight (neither hits nor fresh misses). */
  coalesced: number;
}

/**
 * The request log as saved (`cache.request_log_size` newest requests, oldest first), in columns: request `i` asked for
 * model `keys[model[i]]` at `at[i]` (wall-clock ms) with outcome letter `outcome[i]` (`h` hit, `m` miss, `c` joined a
 * load in flight) and, for a miss, the load it caused took `load_ms[i]` ms (null: failed, cancelled or unknown).
 */
export interface PersistedRequestLog {
  keys: string[];
  at: EpochMilliseconds[];
  model: number[];
  outcome: string;
  load_ms: Array<number | null>;
}

/** Everything saved in `cache_state.bin.zst` (after the format header). */
export interface CacheState {
  saved_at: EpochMilliseconds;
  counters: PersistedCounters;
  models: PersistedModel[];
  /** The most recent requests (absent in files written before the log existed, or when it is empty). */
  request_log?: PersistedRequestLog;
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

/**
 * One process's changes since its last save, as plain data: what a store adds to whatever the state holds now (other
 * processes sharing the store may have saved in between). `mergeDelta` (merge.ts) is the one meaning of it.
 */
export interface StateDelta {
  /** When the delta was taken (becomes `saved_at`). */
  at: EpochMilliseconds;
  /** The half-life the decayed frequencies use, to combine them by their timestamps. */
  half_life_hours: number;
  /** Every statistic was reset since the last save: the stored models and counters are dropped before adding. */
  reset_all: boolean;
  /** Keys whose statistics were removed since the last save (before `models` is applied: a model may come back). */
  removed: string[];
  /** Counter increments since the last save. */
  counters: PersistedCounters;
  /**
   * Models changed since the last save: facts (name, fingerprint, metadata, pinned, missing_since) are the latest;
   * `usage` holds increments — counts and load time add, `last_used_at` is the latest, `frequency` is the decayed count
   * of the new uses alone, `load_ms_samples` the new samples.
   */
  models: PersistedModel[];
  /** Requests logged since the last save (absent: none); merged with the stored log by time. */
  request_log?: PersistedRequestLog;
  /**
   * How many requests the merged log keeps (this process's `cache.request_log_size`, the newest kept). 0: this process
   * logs nothing, and the stored log is left as it is (other processes sharing the store may log). Absent: 0.
   */
  request_log_size?: number;
}

/**
 * Where the cache keeps its state. The contract is "merge my delta": a save never overwrites what another process
 * sharing the store saved; it adds this process's changes to it (atomically, under the store's own lock). A file store
 * implements it today; a shared network store can implement the same contract.
 */
export interface StateStore {
  /** Where the state lives (shown as `state_file`). */
  readonly path: string;
  /** Reads the saved state. Never throws for a bad or newer-version file: it is set aside and reported in `warning`. */
  load(): Promise<RestoreResult>;
  /** Adds a delta to the stored state atomically; throws when it cannot. */
  save(delta: StateDelta): Promise<SaveResult>;
  /**
   * Whether saves can work at all (e.g. the directory is writable), checked once at start: a sentence saying why not,
   * or null. Optional: stores that cannot tell leave it out.
   */
  probe?(): Promise<string | null>;
}
