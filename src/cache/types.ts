/**
 * The public shapes of the model cache: statistics (field names fixed by SPEC.md), eviction reasons, events, leases
 * and the clock. The server, the CLI and the library read these; `ModelCache` produces them.
 */
import type { LoadedModel } from "../backends/types.js";
import type { Bytes, EpochMilliseconds, ModelDescriptor } from "../models/types.js";

/** Every reason a model leaves the cache, in the order statistics list them (SPEC.md's). */
export const EVICTION_REASONS = [
  "capacity_count",
  "capacity_memory",
  "ttl",
  "manual",
  "file_changed",
  "clear",
  "shutdown",
  /** The model's runtime died by itself (its model host crashed or was killed). */
  "crashed",
] as const;

/** Why a model left the cache. Statistics count removals per reason. */
export type EvictionReason = (typeof EVICTION_REASONS)[number];

/** A count of zero for every eviction reason. */
export function emptyEvictions(): Record<EvictionReason, number> {
  return Object.fromEntries(EVICTION_REASONS.map((r) => [r, 0])) as Record<EvictionReason, number>;
}

/** Where the cache reports what it does. Default: silent. */
export interface CacheLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  debug?(msg: string, fields?: Record<string, unknown>): void;
}

/** Time source, injected so tests run on a fake clock. */
export interface Clock {
  /** Wall-clock milliseconds since the epoch (persisted times). */
  now(): EpochMilliseconds;
  /** Monotonic milliseconds (durations, timers). */
  monotonic(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

export interface TimerHandle {
  unref?(): void;
}

/** Held while a request uses a model: a leased model is never evicted or unloaded. Release once (idempotent). */
export interface Lease extends AsyncDisposable, Disposable {
  readonly model: LoadedModel;
  readonly descriptor: ModelDescriptor;
  /** Ends the lease; the model's idle TTL starts when its last lease ends. */
  release(): void;
}

/**
 * How long a model stays loaded once idle, as a request asks (Ollama's `keep_alive`): `"forever"`, or
 * `{ afterSeconds: N }` — unloaded N seconds after its last lease ends (0: at once). The server parses request values
 * into this one type (`server/keep-alive.ts`) and clamps them in one place.
 */
export type KeepAlive = "forever" | { readonly afterSeconds: number };

export interface AcquireOptions {
  /** Idle time after this lease ends before the model may be unloaded; replaces the configured TTL until the next one. */
  keepAlive?: KeepAlive;
  /** Aborts waiting for the model (the shared load itself continues while others still want it). */
  signal?: AbortSignal;
  /**
   * What the caller will do with the model: `text` (chat, completions, embeddings) needs a text model. Checked before
   * anything is loaded or evicted; a model of another kind is refused with `ModelCapabilityMissing`.
   */
  capability?: LoadedModel["kind"];
  /** The task, for the refusal's message (e.g. `chat completions`). */
  task?: string;
}

export interface LastSave {
  at: string | null;
  ok: boolean | null;
  duration_ms: number | null;
  bytes: number | null;
  error: string | null;
}

export interface ModelStats {
  name: string;
  key: string;
  loaded: boolean;
  pinned: boolean;
  requests: number;
  hits: number;
  misses: number;
  loads: number;
  avg_load_ms: number | null;
  p95_load_ms: number | null;
  /** ISO time of the last use, or null. */
  last_used: string | null;
  frequency_per_hour: number;
  priority: number;
  memory_bytes: Bytes;
  /** ISO time at which the idle model will be unloaded, or null (leased, pinned, no TTL, not loaded). */
  expires_at: string | null;
  /** The model's file was missing at the last restore: statistics kept for `cache.missing_retention_days`. */
  missing: boolean;
}

/**
 * The prompt cache's figures since the process started (not saved): generations counted, those that reused an evaluated
 * prefix (hits), and their prompt tokens reused (saved) or evaluated; then the saved prefixes (the prompt store, see
 * `prefix` events): saved on unload, restored on load, evicted by the budget, quarantined, and the bytes on disk (as
 * the store last reported them; 0 before it reported anything).
 */
export interface PromptCacheStats {
  generations: number;
  hits: number;
  cached_tokens: number;
  evaluated_tokens: number;
  prefixes_saved: number;
  prefixes_restored: number;
  prefixes_evicted: number;
  prefixes_quarantined: number;
  disk_bytes: Bytes;
}

/** `GET /v1/cache/stats` and `inferno cache stats --json`: the field names are SPEC.md's. */
export interface CacheStats {
  hits: number;
  misses: number;
  hit_rate: number;
  loads: number;
  load_failures: number;
  evictions: Record<EvictionReason, number>;
  warmups: number;
  models_loaded: number;
  max_cached_models: number;
  memory_bytes: Bytes;
  memory_limit_bytes: Bytes;
  last_save: LastSave;
  unsaved_changes: boolean;
  state_file: string | null;
  models: ModelStats[];
  /** Requests naming no model (not counted as misses). */
  unknown_model_requests: number;
  /** Requests that joined a load already in flight (neither hits nor misses). */
  coalesced: number;
  /** From a running cache only (a state file read offline has none). */
  prompt_cache?: PromptCacheStats;
}

/** The statistics that cost O(1) to read (`ModelCache.summary()`): what `/health` and `/metrics` use. */
export interface CacheSummary {
  hits: number;
  misses: number;
  hit_rate: number;
  loads: number;
  load_failures: number;
  models_loaded: number;
  max_cached_models: number;
  memory_bytes: Bytes;
  memory_limit_bytes: Bytes;
  unsaved_changes: boolean;
  /** Models with statistics. */
  models_known: number;
  unknown_model_requests: number;
  coalesced: number;
  prompt_cache: PromptCacheStats;
}

/** A resident (or loading) model, for `GET /v1/cache/models` and `inferno ps`. */
export interface LoadedModelInfo {
  name: string;
  key: string;
  format: string;
  state: "loading" | "ready" | "unloading";
  size_bytes: Bytes;
  memory_bytes: Bytes;
  leases: number;
  pinned: boolean;
  last_used: string | null;
  expires_at: string | null;
  load_ms: number | null;
  /** The process id of the model's host (`backend.isolation = "process"`); null for a model in the server's process. */
  pid: number | null;
  /**
   * The sequences a GGUF model serves at once (`backend.parallel`; auto resolved for this load: fewer than the machine
   * rule's number when more would not fit the memory limit); null for other formats.
   */
  sequences: number | null;
}

export type WarmupStrategy = "usage" | "recent" | "priority" | "hybrid" | "none";

/** The start-up warm-up in progress (`ModelCache.startupWarmupProgress()`): its plan and how much of it is settled. */
export interface WarmupProgress {
  plan: string[];
  /** Plan entries loaded, skipped or failed so far. */
  settled: number;
  loaded: string[];
}

export interface WarmupResult {
  loaded: string[];
  skipped: Array<{ name: string; reason: string }>;
  failed: WarmupFailure[];
}

/**
 * A model warm-up could not load: its name and the error's message. `cause`, the error itself, is not serialized (not
 * enumerable): it lets a caller that tells the failure to a remote client take server paths out of the message.
 */
export interface WarmupFailure {
  name: string;
  error: string;
  readonly cause?: unknown;
}

export function warmupFailure(name: string, error: unknown, message: string): WarmupFailure {
  const failure: WarmupFailure = { name, error: message };
  Object.defineProperty(failure, "cause", { value: error, enumerable: false });
  return failure;
}

export type { CacheEvent, CacheEvents, CacheMetrics } from "./events.js";
