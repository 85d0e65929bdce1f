/**
 * ModelCache: which models are resident, loaded once however many requests want them, held by leases, bounded by
 * count and memory, expired by idle TTL, warmed at start and remembered across restarts.
 *
 * No I/O of its own: backends, the model source, the clock and the state store are injected. Each model has at most
 * one `Entry`; the entry itself is the single flight (a loading entry holds the load promise and its AbortController),
 * so there is no separate in-flight map to keep in sync. Usage statistics live apart from entries, keyed by the same
 * canonical key, because they outlive unloads and restarts.
 */
import type { BackendRegistry, LoadedModel } from "../backends/types.js";
import type { BackendConfig, CacheConfig } from "../config/schema.js";
import {
  Aborted,
  BadRequest,
  CacheBusy,
  Disposed,
  InfernoError,
  ModelLoadCooldown,
  ModelLoadFailed,
  ModelPinned,
  ModelTooLarge,
  messageOf,
} from "../errors/index.js";
import { type Bytes, type Fingerprint, type ModelDescriptor, type ModelSource, sameFileVersion } from "../models/types.js";
import { systemClock } from "./clock.js";
import type { CacheState, PersistedGgufFacts, PersistedModel, StateStore } from "./persistence/types.js";
import { chooseVictims, type EvictionCandidate, nextInflation } from "./policy/eviction.js";
import { addUse, type DecayedCount, decayedValue } from "./policy/frequency.js";
import { planWarmup, type WarmupCandidate } from "./policy/warmup.js";
import { emptyCounters, iso, memoryLimitBytes, modelStatsOf, priorityOf, warmupCandidateOf } from "./state-view.js";
import {
  CACHE_EVENT_NAMES,
  type AcquireOptions,
  type CacheEvents,
  type CacheMetrics,
  type CacheStats,
  type Clock,
  type EvictionReason,
  type LastSave,
  type Lease,
  type LoadedModelInfo,
  type ModelStats,
  type TimerHandle,
  type WarmupResult,
  type WarmupStrategy,
} from "./types.js";

/** Where the cache reports what it does. Default: silent. */
export interface CacheLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  debug?(msg: string, fields?: Record<string, unknown>): void;
}

export interface CacheDependencies {
  /** Backends by format (`createBackends()` from src/backends in real use; the fake backend in unit tests). */
  backends: BackendRegistry;
  /** Where state is saved/restored; null = nothing persisted (also when cacheConfig.persist_cache is false). */
  store?: StateStore | null;
  /** Default: the system clock. */
  clock?: Clock;
  /** Default: silent. */
  logger?: CacheLogger;
  /** Total system memory, to resolve `max_memory_mb = 0` (auto = half of it). Default: unknown → no memory limit. */
  systemMemoryBytes?: Bytes;
  /**
   * How long (milliseconds) a load waits for room when every resident model is leased, before failing with
   * `CacheBusy`. Default 30 000.
   */
  busyWaitMs?: number;
  /**
   * Dispose the backends when the cache closes (after the final save). For callers that create the backends only for
   * this cache, such as the library form `ModelCache.new`. Default false: whoever created the backends disposes them.
   */
  ownsBackends?: boolean;
  /** Event listeners subscribed before restore and warm-up, so start-up events reach them (see `CacheMetrics`). */
  metrics?: CacheMetrics;
}

const MIB = 1024 * 1024;
/** A hit re-checks the model file's size and mtime at most this often (ms), so hits cost no `stat` each. */
export const FINGERPRINT_CHECK_INTERVAL_MS = 5000;
/** Load times kept per model for the p95. */
const LOAD_SAMPLES = 32;
const DEFAULT_BUSY_WAIT_MS = 30_000;

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** One model in the cache: loading, ready, or on its way out. */
interface Entry {
  descriptor: ModelDescriptor;
  state: "loading" | "ready" | "unloading";
  /** The single flight: every request for a loading model awaits this. */
  promise: Promise<LoadedModel>;
  abort: AbortController;
  model: LoadedModel | null;
  /** Counted against the limits (from admission until the model is disposed). */
  admitted: boolean;
  /** The pre-load estimate while loading, then the measured figure. */
  bytes: Bytes;
  leases: number;
  /** Requests awaiting the load: the fresh model is not evictable until they took their leases. */
  waiters: number;
  /** Request `keep_alive` in seconds, replacing the configured TTL until another request sets one. */
  keepAliveSeconds: number | null;
  expiry: { handle: TimerHandle; at: number } | null;
  retireReason: EvictionReason | null;
  /** Resolves once the entry has left the map (unloaded or failed). */
  gone: Deferred;
  /** The file version this entry loaded, and when (monotonic) that was last compared with the file. */
  fingerprint: Fingerprint;
  checkedAt: number;
  loadMs: number | null;
}

/** Usage statistics of one model: they outlive unloads and restarts. */
interface Usage {
  key: string;
  name: string;
  format: ModelDescriptor["format"];
  fingerprint: Fingerprint;
  requests: number;
  hits: number;
  misses: number;
  loads: number;
  lastUsedAt: number | null;
  frequency: DecayedCount | null;
  loadMsTotal: number;
  loadMsSamples: number[];
  memoryBytes: Bytes | null;
  /** Header facts the model source gave at the last load (GGUF only), for the state file. */
  gguf: PersistedGgufFacts | null;
  /** GDSF inflation at the last use. */
  inflation: number;
  /** Size or mtime changed since these statistics were recorded (restore): not warmed. */
  fileChanged: boolean;
}

interface ObtainOptions {
  /** Count this as a request (hit/miss, last use, frequency). */
  count: boolean;
  /** Evict idle models to make room (warm-up never does). */
  allowEvict: boolean;
  keepAliveSeconds?: number | undefined;
  signal?: AbortSignal | undefined;
}

/** Resolves with `promise`, or rejects with `Aborted` when `signal` aborts first (the promise itself goes on). */
function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(new Aborted("the request was aborted while waiting for the model"));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Aborted("the request was aborted while waiting for the model"));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

function validateKeepAlive(seconds: number | undefined): void {
  if (seconds === undefined) return;
  if (!Number.isFinite(seconds) || (seconds < 0 && seconds !== -1)) {
    throw new BadRequest(`keep_alive must be -1 (forever), 0 (unload after use) or a number of seconds; found ${seconds}`);
  }
}

export class ModelCache implements AsyncDisposable {
  /** Resolves when the start-up warm-up (started by `create`) has finished. Never rejects. */
  readonly warmupDone: Promise<WarmupResult>;
  /**
   * What the start-up restore found (the `restore` event fires inside `create`, before anyone can subscribe, so the
   * result is kept here too): models restored and the warning, if the saved state was refused.
   */
  restored: CacheEvents["restore"] = { models: 0, warning: null };
  private resolveWarmupDone!: (result: WarmupResult) => void;

  private readonly clock: Clock;
  private readonly logger: CacheLogger | undefined;
  private readonly store: StateStore | null;
  private readonly backends: BackendRegistry;
  private readonly busyWaitMs: number;
  private readonly ownsBackends: boolean;
  private readonly memoryLimit: Bytes;

  private readonly entries = new Map<string, Entry>();
  private readonly usage = new Map<string, Usage>();
  private counters = emptyCounters();
  /** Model key → monotonic time until which loads are refused after a failure. */
  private readonly cooldowns = new Map<string, number>();
  /** Pinned model keys → position in `always_warm` (overrides with `pinned = true` come after). */
  private readonly pinned = new Map<string, number>();
  /** Model key → configured `ttl_seconds` override. */
  private readonly ttlOverrides = new Map<string, number>();
  private readonly capacityWaiters = new Set<() => void>();
  private readonly listeners = new Map<keyof CacheEvents, Set<(payload: never) => void>>();
  private inflation = 0;
  /** Bumped on every change worth saving; `savedVersion` is the one last written. */
  private version = 0;
  private savedVersion = 0;
  private lastSave: LastSave = { at: null, ok: null, duration_ms: null, bytes: null, error: null };
  private saveFailureWarned = false;
  private saving: Promise<LastSave> | null = null;
  private saveTimer: TimerHandle | null = null;
  private readonly warmupAbort = new AbortController();
  private closing: Promise<void> | null = null;

  private constructor(
    private readonly config: CacheConfig,
    private readonly backendConfig: BackendConfig,
    private readonly models: ModelSource,
    deps: CacheDependencies,
  ) {
    this.backends = deps.backends;
    this.store = config.persist_cache ? (deps.store ?? null) : null;
    this.clock = deps.clock ?? systemClock;
    this.logger = deps.logger;
    this.busyWaitMs = deps.busyWaitMs ?? DEFAULT_BUSY_WAIT_MS;
    this.ownsBackends = deps.ownsBackends ?? false;
    this.memoryLimit = memoryLimitBytes(config, deps.systemMemoryBytes);
    this.warmupDone = new Promise((resolve) => (this.resolveWarmupDone = resolve));
    this.subscribeMetrics(deps.metrics ?? {});
  }

  /** A misspelt event name would otherwise just never fire: it is refused, naming the ones that exist. */
  private subscribeMetrics(metrics: CacheMetrics): void {
    for (const [event, listener] of Object.entries(metrics)) {
      if (!(CACHE_EVENT_NAMES as readonly string[]).includes(event)) {
        throw new BadRequest(`metrics: there is no cache event "${event}"; expected one of ${CACHE_EVENT_NAMES.join(", ")}`);
      }
      if (listener !== undefined && typeof listener !== "function") {
        throw new BadRequest(`metrics.${event} must be a function (the listener); found ${typeof listener}`);
      }
      this.subscribeMetric(metrics, event as keyof CacheEvents);
    }
  }

  private subscribeMetric<E extends keyof CacheEvents>(metrics: CacheMetrics, event: E): void {
    const listener = metrics[event];
    if (listener) this.on(event, listener);
  }

  /** Restores saved state, then starts warm-up in the background (see `warmupDone`). */
  static async create(
    cacheConfig: CacheConfig,
    backendConfig: BackendConfig,
    models: ModelSource,
    deps: CacheDependencies,
  ): Promise<ModelCache> {
    const cache = new ModelCache(cacheConfig, backendConfig, models, deps);
    await cache.restore();
    await cache.resolveOverrides();
    cache.schedulePeriodicSave();
    void cache.startupWarmup().then((result) => cache.resolveWarmupDone(result));
    return cache;
  }

  // ---------------------------------------------------------------- requests

  /** Loads (or hits) a model and counts one use. Holds no lease: prefer acquire/withModel for requests. */
  async getModel(name: string, options: AcquireOptions = {}): Promise<LoadedModel> {
    const entry = await this.obtainRequested(name, options);
    const model = entry.model as LoadedModel;
    this.whenIdle(entry);
    return model;
  }

  /** Loads (or hits) a model, counts one use, and holds a lease until released. Waits (bounded) when every resident model is leased. */
  async acquire(name: string, options: AcquireOptions = {}): Promise<Lease> {
    return this.lease(await this.obtainRequested(name, options));
  }

  /** A request's path to a ready entry: counted as a use (hit or miss), room made by eviction, keep_alive applied. */
  private async obtainRequested(name: string, options: AcquireOptions): Promise<Entry> {
    validateKeepAlive(options.keepAliveSeconds);
    const descriptor = await this.resolveCounted(name);
    const entry = await this.obtain(descriptor, { ...options, count: true, allowEvict: true });
    this.applyKeepAlive(entry, options.keepAliveSeconds);
    return entry;
  }

  /** acquire + fn + release (also on throw). */
  async withModel<T>(name: string, fn: (model: LoadedModel) => Promise<T> | T, options?: AcquireOptions): Promise<T> {
    const lease = await this.acquire(name, options);
    try {
      return await fn(lease.model);
    } finally {
      lease.release();
    }
  }

  /** Preload without counting a request (admin `load` route, `keep_alive`): loads if needed, sets keep-alive. */
  async load(name: string, options: { keepAliveSeconds?: number; signal?: AbortSignal } = {}): Promise<LoadedModelInfo> {
    validateKeepAlive(options.keepAliveSeconds);
    this.assertOpen();
    const descriptor = await this.models.resolve(name);
    const entry = await this.obtain(descriptor, { ...options, count: false, allowEvict: true });
    this.applyKeepAlive(entry, options.keepAliveSeconds);
    this.whenIdle(entry);
    return this.info(entry);
  }

  /** Unloads one model (reason "manual") once its leases end. false when it was not loaded. */
  async evict(name: string): Promise<boolean> {
    this.assertOpen();
    const descriptor = await this.models.resolve(name);
    const entry = this.entries.get(descriptor.key);
    if (!entry || entry.retireReason !== null) return false;
    await this.retire(entry, "manual");
    return true;
  }

  /**
   * Unloads every model (reason "clear"), or one with `model`. Pinned models are kept unless `force`; naming a pinned
   * model without `force` throws `ModelPinned`. `stats: true` also resets the statistics. Returns the names unloaded.
   */
  async clear(options: { model?: string; force?: boolean; stats?: boolean } = {}): Promise<string[]> {
    this.assertOpen();
    let targets = [...this.entries.values()].filter((e) => e.retireReason === null);
    let statsKeys: string[] | null = null;
    if (options.model !== undefined) {
      const { key, name } = await this.models.resolve(options.model);
      statsKeys = [key];
      if (this.pinned.has(key) && !options.force) {
        throw new ModelPinned(`${name} is pinned (always_warm or pinned = true); use force to unload it`, {
          details: { model: name },
        });
      }
      targets = targets.filter((e) => e.descriptor.key === key);
    } else if (!options.force) {
      targets = targets.filter((e) => !this.pinned.has(e.descriptor.key));
    }
    await Promise.all(targets.map((e) => this.retire(e, "clear")));
    if (options.stats) this.resetStatistics(statsKeys);
    return targets.map((e) => e.descriptor.name);
  }

  // ---------------------------------------------------------------- resolving and counting

  /** Resolves a name; a name that does not resolve still counts as a miss. */
  private async resolveCounted(name: string): Promise<ModelDescriptor> {
    this.assertOpen();
    try {
      return await this.models.resolve(name);
    } catch (error) {
      this.counters.misses++;
      this.changed();
      this.emit("miss", { name, key: null });
      throw error;
    }
  }

  private usageOf(descriptor: ModelDescriptor): Usage {
    let usage = this.usage.get(descriptor.key);
    if (!usage) {
      usage = {
        key: descriptor.key,
        name: descriptor.name,
        format: descriptor.format,
        fingerprint: descriptor.fingerprint,
        requests: 0,
        hits: 0,
        misses: 0,
        loads: 0,
        lastUsedAt: null,
        frequency: null,
        loadMsTotal: 0,
        loadMsSamples: [],
        memoryBytes: null,
        gguf: null,
        inflation: 0,
        fileChanged: false,
      };
      this.usage.set(descriptor.key, usage);
    }
    return usage;
  }

  private recordUse(descriptor: ModelDescriptor, hit: boolean): void {
    const usage = this.usageOf(descriptor);
    const now = this.clock.now();
    usage.name = descriptor.name;
    usage.requests++;
    usage.lastUsedAt = now;
    usage.frequency = addUse(usage.frequency, now, this.config.usage_half_life_hours);
    usage.inflation = this.inflation;
    if (hit) {
      usage.hits++;
      this.counters.hits++;
    } else {
      usage.misses++;
      this.counters.misses++;
    }
    this.changed();
    this.emit(hit ? "hit" : "miss", { name: descriptor.name, key: descriptor.key });
  }

  private recordLoad(entry: Entry, model: LoadedModel, loadMs: number, gguf: PersistedGgufFacts | null): void {
    const usage = this.usageOf(entry.descriptor);
    usage.gguf = gguf;
    usage.loads++;
    usage.loadMsTotal += loadMs;
    usage.loadMsSamples = [...usage.loadMsSamples, loadMs].slice(-LOAD_SAMPLES);
    usage.memoryBytes = model.memoryBytes;
    usage.fingerprint = entry.fingerprint;
    usage.fileChanged = false;
    this.counters.loads++;
    this.changed();
    const { name, key } = entry.descriptor;
    this.emit("load", { name, key, durationMs: loadMs, memoryBytes: model.memoryBytes });
  }

  // ---------------------------------------------------------------- the single flight

  /** The ready entry for a model: joins a load in flight, starts one, or hits. Counts the request once. */
  private async obtain(descriptor: ModelDescriptor, options: ObtainOptions): Promise<Entry> {
    let counted = !options.count;
    for (;;) {
      this.assertOpen();
      const current = this.entries.get(descriptor.key);
      if (current && (await this.fileChanged(current))) void this.retire(current, "file_changed");
      const entry = this.entries.get(descriptor.key);
      if (entry?.state === "unloading") {
        await abortable(entry.gone.promise, options.signal);
        continue;
      }
      if (!counted) {
        this.recordUse(descriptor, entry?.state === "ready");
        counted = true;
      }
      const target = entry ?? this.startLoad(descriptor, options.allowEvict);
      // A load that failed synchronously has already settled its entry: its promise still carries the cause.
      if (target.state === "loading" || target !== entry) await this.awaitLoad(target, options.signal);
      if (target.state === "ready" && this.entries.get(descriptor.key) === target) return target;
    }
  }

  private async awaitLoad(entry: Entry, signal: AbortSignal | undefined): Promise<void> {
    entry.waiters++;
    try {
      await abortable(entry.promise, signal);
    } catch (error) {
      // A load cancelled by eviction or clear: the loop retries; a waiter that gave up leaves the model to its TTL.
      if (error instanceof Aborted && !signal?.aborted && entry.retireReason !== null && entry.retireReason !== "shutdown") return;
      throw error;
    } finally {
      entry.waiters--;
      if (signal?.aborted) this.whenIdle(entry);
    }
  }

  /** Whether a ready entry's file changed: compared at most every few seconds per model (a hit costs no stat). */
  private async fileChanged(entry: Entry): Promise<boolean> {
    if (entry.state !== "ready" || entry.retireReason !== null) return false;
    const now = this.clock.monotonic();
    if (now - entry.checkedAt < FINGERPRINT_CHECK_INTERVAL_MS) return false;
    entry.checkedAt = now;
    const current = await this.models.fingerprint(entry.descriptor.key);
    if (current && sameFileVersion(current, entry.fingerprint)) return false;
    if (current) this.usageOf(entry.descriptor).fingerprint = current;
    this.logger?.info("model file changed; reloading once its requests end", { model: entry.descriptor.name });
    return entry.state === "ready" && entry.retireReason === null;
  }

  private startLoad(descriptor: ModelDescriptor, allowEvict: boolean): Entry {
    const until = this.cooldowns.get(descriptor.key);
    const now = this.clock.monotonic();
    if (until !== undefined && until > now) {
      const retry = Math.ceil((until - now) / 1000);
      throw new ModelLoadCooldown(`${descriptor.name} failed to load recently; retry in ${retry} s`, {
        details: { model: descriptor.name, retry_after_seconds: retry },
      });
    }
    const known = this.usage.get(descriptor.key)?.fingerprint;
    const entry: Entry = {
      descriptor,
      state: "loading",
      promise: Promise.resolve(null as never),
      abort: new AbortController(),
      model: null,
      admitted: false,
      bytes: 0,
      leases: 0,
      waiters: 0,
      keepAliveSeconds: null,
      expiry: null,
      retireReason: null,
      gone: deferred(),
      // The newer of what resolve saw and what a file check last saw (a cached descriptor may be older).
      fingerprint: known && known.mtimeMs > descriptor.fingerprint.mtimeMs ? known : descriptor.fingerprint,
      checkedAt: now,
      loadMs: null,
    };
    this.entries.set(descriptor.key, entry);
    entry.promise = this.runLoad(entry, allowEvict);
    entry.promise.catch(() => {});
    return entry;
  }

  private async runLoad(entry: Entry, allowEvict: boolean): Promise<LoadedModel> {
    const { descriptor } = entry;
    try {
      const backend = this.backends[descriptor.format];
      if (!backend) throw new ModelLoadFailed(`no backend loads ${descriptor.format} models (${descriptor.name})`);
      const [estimate, gguf] = await Promise.all([
        this.models.estimateMemory(descriptor, this.backendConfig),
        this.ggufFacts(descriptor),
      ]);
      await this.admit(entry, estimate, allowEvict);
      const started = this.clock.monotonic();
      const model = await backend.load(descriptor, { backend: this.backendConfig, signal: entry.abort.signal });
      const loadMs = this.clock.monotonic() - started;
      if (entry.abort.signal.aborted) {
        await model.dispose();
        throw new Aborted(`loading ${descriptor.name} was cancelled`);
      }
      await this.assertMeasuredFits(entry, model);
      entry.model = model;
      entry.bytes = model.memoryBytes;
      entry.loadMs = loadMs;
      entry.state = "ready";
      this.recordLoad(entry, model, loadMs, gguf);
      this.enforceMemoryLimit(entry);
      if (entry.waiters === 0) this.whenIdle(entry);
      return model;
    } catch (error) {
      throw this.loadFailed(entry, error);
    }
  }

  /**
   * The GGUF header facts the model source offers, for the state file; null when it offers none. The source answers
   * from what it already read (the memory estimate needs the same header); a failure here never fails the load.
   */
  private async ggufFacts(descriptor: ModelDescriptor): Promise<PersistedGgufFacts | null> {
    if (descriptor.format !== "gguf" || !this.models.metadata) return null;
    try {
      const metadata = await this.models.metadata(descriptor);
      if (metadata.format !== "gguf") return null;
      const { architecture, quantization, parameterCount, contextLength } = metadata;
      return { architecture, quantization, parameter_count: parameterCount, context_length: contextLength };
    } catch (error) {
      this.logger?.debug?.("the model source gave no metadata", { model: descriptor.name, error: messageOf(error) });
      return null;
    }
  }

  /** Removes a failed or cancelled load's entry and turns the cause into the error every waiter gets. */
  private loadFailed(entry: Entry, error: unknown): unknown {
    const { name, key } = entry.descriptor;
    if (this.entries.get(key) === entry) this.entries.delete(key);
    entry.state = "unloading";
    entry.admitted = false;
    entry.bytes = 0;
    entry.gone.resolve();
    this.notifyCapacity();
    if (entry.abort.signal.aborted) return new Aborted(`loading ${name} was cancelled (${entry.retireReason ?? "aborted"})`);
    if (error instanceof ModelTooLarge || error instanceof CacheBusy || error instanceof Disposed) return error;
    this.counters.load_failures++;
    this.changed();
    const cooldownMs = this.config.load_failure_cooldown_seconds * 1000;
    if (cooldownMs > 0) this.cooldowns.set(key, this.clock.monotonic() + cooldownMs);
    this.emit("load_failed", { name, key, error });
    this.logger?.warn("model failed to load", { model: name, error: messageOf(error) });
    return error instanceof InfernoError
      ? error
      : new ModelLoadFailed(`could not load ${name}: ${messageOf(error)}`, { cause: error, details: { model: name } });
  }

  // ---------------------------------------------------------------- limits

  private admitted(): Entry[] {
    return [...this.entries.values()].filter((e) => e.admitted);
  }

  private isPinned(entry: Entry): boolean {
    return this.pinned.has(entry.descriptor.key);
  }

  /** Refuses a model that could not fit even with every evictable model gone (pinned models never go). */
  private assertCanEverFit(entry: Entry, bytes: Bytes): void {
    const pinnedOthers = this.admitted().filter((e) => e !== entry && this.isPinned(e) && e.retireReason === null);
    const pinnedBytes = pinnedOthers.reduce((sum, e) => sum + e.bytes, 0);
    const { name } = entry.descriptor;
    if (this.memoryLimit > 0 && bytes > this.memoryLimit - pinnedBytes) {
      throw new ModelTooLarge(
        `${name} needs ${Math.ceil(bytes / MIB)} MiB but the cache's memory limit is ${Math.floor(this.memoryLimit / MIB)} MiB` +
          (pinnedBytes > 0 ? ` (${Math.ceil(pinnedBytes / MIB)} MiB of it held by pinned models)` : ""),
        { details: { model: name, needed_bytes: bytes, limit_bytes: this.memoryLimit, pinned_bytes: pinnedBytes } },
      );
    }
    if (!this.isPinned(entry) && pinnedOthers.length >= this.config.max_cached_models) {
      throw new ModelTooLarge(
        `${name} cannot be loaded: all ${this.config.max_cached_models} places (max_cached_models) are taken by pinned models`,
        { details: { model: name, max_cached_models: this.config.max_cached_models } },
      );
    }
  }

  /** How far over the limits admitting `bytes` more (and one more model) would go. */
  private shortfall(bytes: Bytes): { count: number; bytes: Bytes } {
    const admitted = this.admitted();
    const used = admitted.reduce((sum, e) => sum + e.bytes, 0);
    return {
      count: admitted.length + 1 - this.config.max_cached_models,
      bytes: this.memoryLimit > 0 ? used + bytes - this.memoryLimit : 0,
    };
  }

  private evictionCandidates(except: Entry | null): EvictionCandidate[] {
    const now = this.clock.now();
    return this.admitted()
      .filter((e) => e !== except && e.state === "ready" && e.retireReason === null && e.leases === 0 && e.waiters === 0 && !this.isPinned(e))
      .map((e) => {
        const usage = this.usage.get(e.descriptor.key);
        return {
          key: e.descriptor.key,
          lastUsedAt: usage?.lastUsedAt ?? null,
          memoryBytes: e.bytes,
          loadMs: usage && usage.loads > 0 ? usage.loadMsTotal / usage.loads : e.loadMs,
          frequency: decayedValue(usage?.frequency ?? null, now, this.config.usage_half_life_hours),
          inflation: usage?.inflation ?? 0,
        };
      });
  }

  /** Evicts victims that cover a shortfall; false (evicting nothing) when the idle models cannot cover it. */
  private async evictFor(shortfall: { count: number; bytes: Bytes }, except: Entry | null): Promise<boolean> {
    const limits = { maxModels: this.config.max_cached_models, maxMemoryBytes: this.memoryLimit };
    const { victims, covers } = chooseVictims(this.evictionCandidates(except), shortfall, this.config.eviction_policy, limits);
    if (!covers || victims.length === 0) return false;
    this.inflation = nextInflation(this.inflation, victims);
    await Promise.all(victims.map((v) => this.retireKey(v.key, v.reason)));
    return true;
  }

  /**
   * Reserves room for a load: evicts idle models until both limits hold with the estimate counted, or waits (bounded)
   * for leases to end when that is not possible. Warm-up (`allowEvict = false`) never evicts and never waits.
   */
  private async admit(entry: Entry, estimate: Bytes, allowEvict: boolean): Promise<void> {
    const deadline = this.clock.monotonic() + this.busyWaitMs;
    const { name } = entry.descriptor;
    for (;;) {
      if (entry.abort.signal.aborted) throw new Aborted(`loading ${name} was cancelled`);
      this.assertOpen();
      this.assertCanEverFit(entry, estimate);
      const shortfall = this.shortfall(estimate);
      if (shortfall.count <= 0 && shortfall.bytes <= 0) {
        entry.admitted = true;
        entry.bytes = estimate;
        return;
      }
      if (!allowEvict) throw new CacheBusy(`no room for ${name} without evicting another model`, { details: { model: name } });
      if (await this.evictFor(shortfall, entry)) continue;
      if (this.clock.monotonic() >= deadline) {
        throw new CacheBusy(
          `no room for ${name}: the resident models are in use and none became free within ${this.busyWaitMs / 1000} s`,
          { details: { model: name, retry_after_seconds: Math.ceil(this.busyWaitMs / 1000) } },
        );
      }
      await this.capacityChanged(deadline, entry.abort.signal);
    }
  }

  /** The measured figure replaces the estimate; a model that turns out never to fit is unloaded and refused. */
  private async assertMeasuredFits(entry: Entry, model: LoadedModel): Promise<void> {
    try {
      this.assertCanEverFit(entry, model.memoryBytes);
    } catch (error) {
      await model.dispose();
      throw error;
    }
  }

  /** After a load measured more than estimated: evict idle models until the memory limit holds again. */
  private enforceMemoryLimit(loaded: Entry): void {
    const over = this.shortfall(0).bytes;
    if (over <= 0) return;
    void this.evictFor({ count: 0, bytes: over }, loaded).then((done) => {
      if (!done) this.logger?.warn("memory limit exceeded until leased models are released", { over_bytes: over });
    });
  }

  private capacityChanged(deadline: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.capacityWaiters.delete(done);
        this.clock.clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = this.clock.setTimeout(done, Math.max(0, deadline - this.clock.monotonic()));
      timer.unref?.();
      signal.addEventListener("abort", done, { once: true });
      this.capacityWaiters.add(done);
    });
  }

  private notifyCapacity(): void {
    for (const waiter of [...this.capacityWaiters]) waiter();
  }

  // ---------------------------------------------------------------- leases, TTL, unloading

  private lease(entry: Entry): Lease {
    entry.leases++;
    this.cancelExpiry(entry);
    const model = entry.model as LoadedModel;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      entry.leases--;
      if (entry.leases === 0) {
        this.whenIdle(entry);
        this.notifyCapacity();
      }
    };
    return {
      model,
      descriptor: entry.descriptor,
      release,
      [Symbol.dispose]: release,
      [Symbol.asyncDispose]: async () => release(),
    };
  }

  private applyKeepAlive(entry: Entry, keepAliveSeconds: number | undefined): void {
    if (keepAliveSeconds !== undefined) entry.keepAliveSeconds = keepAliveSeconds;
  }

  /** Idle time (ms) before an idle model is unloaded; null = never. */
  private idleMs(entry: Entry): number | null {
    if (this.isPinned(entry)) return null;
    if (entry.keepAliveSeconds !== null) return entry.keepAliveSeconds < 0 ? null : entry.keepAliveSeconds * 1000;
    const ttl = this.ttlOverrides.get(entry.descriptor.key) ?? this.config.model_ttl_seconds;
    return ttl === 0 ? null : ttl * 1000;
  }

  /** Called when an entry may have become idle: finishes a pending unload, or starts the idle TTL. */
  private whenIdle(entry: Entry): void {
    if (entry.leases > 0 || this.entries.get(entry.descriptor.key) !== entry) return;
    if (entry.state === "unloading" && entry.model) {
      void this.finishUnload(entry);
      return;
    }
    if (entry.state !== "ready") return;
    this.cancelExpiry(entry);
    const idleMs = this.idleMs(entry);
    if (idleMs === null) return;
    if (idleMs === 0) {
      void this.retire(entry, "ttl");
      return;
    }
    const handle = this.clock.setTimeout(() => {
      entry.expiry = null;
      if (entry.state === "ready" && entry.leases === 0) void this.retire(entry, "ttl");
    }, idleMs);
    handle.unref?.();
    entry.expiry = { handle, at: this.clock.now() + idleMs };
  }

  private cancelExpiry(entry: Entry): void {
    if (!entry.expiry) return;
    this.clock.clearTimeout(entry.expiry.handle);
    entry.expiry = null;
  }

  private retireKey(key: string, reason: EvictionReason): Promise<void> {
    const entry = this.entries.get(key);
    return entry ? this.retire(entry, reason) : Promise.resolve();
  }

  /**
   * Takes an entry out of service: a loading one is aborted, a ready one stops taking new leases and is unloaded when
   * its last lease ends (at once when idle; `force` does not wait — shutdown only). Resolves once it is gone.
   */
  private retire(entry: Entry, reason: EvictionReason, force = false): Promise<void> {
    if (entry.retireReason === null) {
      entry.retireReason = reason;
      this.cancelExpiry(entry);
      if (entry.state === "loading") {
        entry.state = "unloading";
        entry.abort.abort();
      } else {
        entry.state = "unloading";
        if (entry.leases === 0 || force) void this.finishUnload(entry);
      }
    } else if (force && entry.model) {
      void this.finishUnload(entry);
    }
    return entry.gone.promise;
  }

  private async finishUnload(entry: Entry): Promise<void> {
    const model = entry.model;
    if (!model) return;
    entry.model = null;
    try {
      await model.dispose();
    } catch (error) {
      this.logger?.warn("model did not dispose cleanly", { model: entry.descriptor.name, error: messageOf(error) });
    }
    const reason = entry.retireReason ?? "manual";
    if (this.entries.get(entry.descriptor.key) === entry) this.entries.delete(entry.descriptor.key);
    entry.admitted = false;
    entry.bytes = 0;
    this.counters.evictions[reason]++;
    this.changed();
    this.emit("evict", { name: entry.descriptor.name, key: entry.descriptor.key, reason });
    entry.gone.resolve();
    this.notifyCapacity();
  }

  // ---------------------------------------------------------------- warm-up

  /** Runs a warm-up now: given models, or ranked by a strategy (default: the configured one). */
  async warmup(options: { models?: string[]; strategy?: WarmupStrategy } = {}): Promise<WarmupResult> {
    this.assertOpen();
    const result: WarmupResult = { loaded: [], skipped: [], failed: [] };
    let plan: ModelDescriptor[];
    if (options.models) {
      plan = [];
      for (const name of options.models) {
        try {
          plan.push(await this.models.resolve(name));
        } catch (error) {
          result.failed.push({ name, error: messageOf(error) });
        }
      }
    } else {
      const ranked = await this.rankWarmup(options.strategy ?? this.config.warmup_strategy);
      plan = ranked.plan;
      result.skipped.push(...ranked.skipped);
    }
    await this.runWarmup(plan, result);
    this.emit("warmup", result);
    return result;
  }

  /** The warm-up plan: which models, in which order, within the limits (nothing is loaded). */
  async warmupPlan(strategy: WarmupStrategy = this.config.warmup_strategy): Promise<{ plan: string[]; skipped: WarmupResult["skipped"] }> {
    const { plan, skipped } = await this.rankWarmup(strategy);
    return { plan: plan.map((d) => d.name), skipped };
  }

  private async rankWarmup(strategy: WarmupStrategy): Promise<{ plan: ModelDescriptor[]; skipped: WarmupResult["skipped"] }> {
    const descriptors = new Map((await this.models.list()).map((d) => [d.key, d]));
    const now = this.clock.now();
    const keys = new Set([...this.usage.keys(), ...this.pinned.keys()]);
    const candidates: WarmupCandidate[] = [];
    const skipped: WarmupResult["skipped"] = [];
    for (const key of keys) {
      const descriptor = descriptors.get(key);
      const usage = this.usage.get(key);
      if (!descriptor) {
        skipped.push({ name: usage?.name ?? key, reason: "model file not found" });
        continue;
      }
      if (this.entries.has(key)) continue;
      const saved = usage ? this.persisted(usage) : null;
      candidates.push(
        warmupCandidateOf(descriptor, saved, {
          now,
          halfLifeHours: this.config.usage_half_life_hours,
          alwaysWarmIndex: this.pinned.get(key) ?? null,
          estimateBytes: usage?.memoryBytes ?? (await this.models.estimateMemory(descriptor, this.backendConfig)),
          fileChanged: usage?.fileChanged ?? false,
        }),
      );
    }
    const admitted = this.admitted();
    const ranked = planWarmup(candidates, strategy, {
      now,
      maxModels: this.config.max_cached_models,
      memoryLimitBytes: this.memoryLimit,
      restoreWindowMs: this.config.restore_window_hours * 3600_000,
      residentCount: admitted.length,
      residentBytes: admitted.reduce((sum, e) => sum + e.bytes, 0),
    });
    return { plan: ranked.plan.map((c) => descriptors.get(c.key) as ModelDescriptor), skipped: [...skipped, ...ranked.skipped] };
  }

  /** Loads the plan, `warmup_concurrency` at a time, in order. Loading or loaded models are no-ops. */
  private async runWarmup(plan: ModelDescriptor[], result: WarmupResult): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < plan.length && !this.warmupAbort.signal.aborted && !this.closing) {
        const descriptor = plan[next++] as ModelDescriptor;
        await this.warmOne(descriptor, result);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.config.warmup_concurrency, plan.length) }, worker));
  }

  private async warmOne(descriptor: ModelDescriptor, result: WarmupResult): Promise<void> {
    const { name, key } = descriptor;
    if (this.entries.has(key)) {
      result.skipped.push({ name, reason: this.entries.get(key)?.state === "ready" ? "already loaded" : "already loading" });
      return;
    }
    try {
      const entry = await this.obtain(descriptor, { count: false, allowEvict: false, signal: this.warmupAbort.signal });
      this.whenIdle(entry);
      result.loaded.push(name);
      this.counters.warmups++;
      this.changed();
    } catch (error) {
      if (error instanceof CacheBusy) result.skipped.push({ name, reason: "no room without evicting another model" });
      else if (this.warmupAbort.signal.aborted) result.skipped.push({ name, reason: "the cache is closing" });
      else result.failed.push({ name, error: messageOf(error) });
    }
  }

  private async startupWarmup(): Promise<WarmupResult> {
    try {
      const strategy = this.config.enable_warmup ? this.config.warmup_strategy : "none";
      const result = await this.warmup({ strategy });
      for (const failure of result.failed) this.logger?.warn("warm-up could not load a model", { ...failure });
      return result;
    } catch (error) {
      if (!(error instanceof Disposed)) this.logger?.warn("warm-up failed", { error: messageOf(error) });
      return { loaded: [], skipped: [], failed: [{ name: "*", error: messageOf(error) }] };
    }
  }

  // ---------------------------------------------------------------- configuration

  /** Resolves `always_warm` and per-model overrides to keys; names that do not resolve are reported, not fatal. */
  private async resolveOverrides(): Promise<void> {
    const named = [
      ...this.config.always_warm.map((name, index) => ({ name, index, pinned: true, ttl: undefined as number | undefined })),
      ...Object.entries(this.config.models).map(([name, o]) => ({ name, index: Infinity, pinned: o.pinned === true, ttl: o.ttl_seconds })),
    ];
    for (const { name, index, pinned, ttl } of named) {
      try {
        const { key } = await this.models.resolve(name);
        if (pinned && !this.pinned.has(key)) this.pinned.set(key, index);
        if (ttl !== undefined) this.ttlOverrides.set(key, ttl);
      } catch (error) {
        this.logger?.warn("a model named in [cache] does not resolve", { model: name, error: messageOf(error) });
      }
    }
  }

  // ---------------------------------------------------------------- statistics

  stats(): CacheStats {
    const admitted = this.admitted();
    const requests = this.counters.hits + this.counters.misses;
    return {
      hits: this.counters.hits,
      misses: this.counters.misses,
      hit_rate: requests === 0 ? 0 : this.counters.hits / requests,
      loads: this.counters.loads,
      load_failures: this.counters.load_failures,
      evictions: { ...this.counters.evictions },
      warmups: this.counters.warmups,
      models_loaded: [...this.entries.values()].filter((e) => e.state === "ready").length,
      max_cached_models: this.config.max_cached_models,
      memory_bytes: admitted.reduce((sum, e) => sum + e.bytes, 0),
      memory_limit_bytes: this.memoryLimit,
      last_save: { ...this.lastSave },
      unsaved_changes: this.version !== this.savedVersion,
      state_file: this.store?.path ?? null,
      models: [...this.usage.values()].map((u) => this.modelStats(u)).sort((a, b) => a.name.localeCompare(b.name)),
    };
  }

  private modelStats(usage: Usage): ModelStats {
    const entry = this.entries.get(usage.key);
    return modelStatsOf(this.persisted(usage), this.clock.now(), this.config.usage_half_life_hours, {
      loaded: entry?.state === "ready",
      pinned: this.pinned.has(usage.key),
      memory_bytes: entry?.admitted ? entry.bytes : 0,
      expires_at: iso(entry?.expiry?.at ?? null),
    });
  }

  /** Resident (and loading) models, for `GET /v1/cache/models` and `inferno ps`. */
  loadedModels(): LoadedModelInfo[] {
    return [...this.entries.values()].map((e) => this.info(e)).sort((a, b) => a.name.localeCompare(b.name));
  }

  private info(entry: Entry): LoadedModelInfo {
    const usage = this.usage.get(entry.descriptor.key);
    return {
      name: entry.descriptor.name,
      key: entry.descriptor.key,
      format: entry.descriptor.format,
      state: entry.state,
      size_bytes: entry.descriptor.fingerprint.size,
      memory_bytes: entry.bytes,
      leases: entry.leases,
      pinned: this.isPinned(entry),
      last_used: iso(usage?.lastUsedAt ?? null),
      expires_at: iso(entry.expiry?.at ?? null),
      load_ms: entry.loadMs,
    };
  }

  private resetStatistics(keys: string[] | null): void {
    if (keys === null) {
      this.counters = emptyCounters();
      this.usage.clear();
    } else {
      for (const key of keys) this.usage.delete(key);
    }
    this.changed();
  }

  // ---------------------------------------------------------------- persistence

  private changed(): void {
    this.version++;
  }

  private persisted(u: Usage): PersistedModel {
    const model: PersistedModel = {
      key: u.key,
      name: u.name,
      format: u.format,
      fingerprint: { ...u.fingerprint },
      metadata: u.gguf ? { memory_bytes: u.memoryBytes, gguf: { ...u.gguf } } : { memory_bytes: u.memoryBytes },
      usage: {
        requests: u.requests,
        hits: u.hits,
        misses: u.misses,
        loads: u.loads,
        last_used_at: u.lastUsedAt,
        frequency: u.frequency ? { ...u.frequency } : null,
        load_ms_total: u.loadMsTotal,
        load_ms_samples: [...u.loadMsSamples],
      },
      priority: 0,
      pinned: this.pinned.has(u.key),
    };
    model.priority = priorityOf(model, this.clock.now(), this.config.usage_half_life_hours);
    return model;
  }

  private snapshot(): CacheState {
    return {
      saved_at: this.clock.now(),
      counters: structuredClone(this.counters),
      models: [...this.usage.values()].map((u) => this.persisted(u)),
    };
  }

  /** Restores counters and per-model statistics; checks each model's file (gone → dropped, changed → not warmed). */
  private async restore(): Promise<void> {
    if (!this.store) return;
    const { state, warning } = await this.store.load();
    if (warning) this.logger?.warn(warning, { state_file: this.store.path });
    if (!state) {
      this.restored = { models: 0, warning };
      this.emit("restore", this.restored);
      return;
    }
    this.counters = structuredClone(state.counters);
    let adjusted = false;
    for (const saved of state.models) {
      const current = await this.models.fingerprint(saved.key);
      if (!current) {
        adjusted = true;
        this.logger?.debug?.("dropping statistics of a model whose file is gone", { model: saved.name });
        continue;
      }
      const changed = !sameFileVersion(current, saved.fingerprint);
      adjusted ||= changed;
      this.usage.set(saved.key, {
        key: saved.key,
        name: saved.name,
        format: saved.format,
        fingerprint: changed ? current : saved.fingerprint,
        requests: saved.usage.requests,
        hits: saved.usage.hits,
        misses: saved.usage.misses,
        loads: saved.usage.loads,
        lastUsedAt: saved.usage.last_used_at,
        frequency: saved.usage.frequency,
        loadMsTotal: saved.usage.load_ms_total,
        loadMsSamples: [...saved.usage.load_ms_samples],
        memoryBytes: saved.metadata.memory_bytes,
        // Facts of an older version of the file would be wrong; the next load brings the current ones.
        gguf: changed ? null : (saved.metadata.gguf ?? null),
        inflation: 0,
        fileChanged: changed,
      });
    }
    if (adjusted) this.changed();
    this.restored = { models: this.usage.size, warning };
    this.emit("restore", this.restored);
  }

  private schedulePeriodicSave(): void {
    const intervalMs = this.config.persist_interval_seconds * 1000;
    if (!this.store || intervalMs <= 0) return;
    this.saveTimer = this.clock.setTimeout(() => {
      this.saveTimer = null;
      const due = this.version !== this.savedVersion ? this.saveCache() : Promise.resolve(this.lastSave);
      void due.finally(() => {
        if (!this.closing) this.schedulePeriodicSave();
      });
    }, intervalMs);
    this.saveTimer.unref?.();
  }

  /** Saves the state now (persistence on), one save at a time. Never throws: failures are reported in `last_save`. */
  async saveCache(): Promise<LastSave> {
    if (!this.store) {
      return { at: null, ok: false, duration_ms: null, bytes: null, error: "persist_cache is false: nothing is saved" };
    }
    const previous = this.saving ?? Promise.resolve();
    const run = previous.then(() => this.saveNow(this.store as StateStore));
    this.saving = run;
    return run.finally(() => {
      if (this.saving === run) this.saving = null;
    });
  }

  private async saveNow(store: StateStore): Promise<LastSave> {
    const version = this.version;
    const started = this.clock.monotonic();
    const at = new Date(this.clock.now()).toISOString();
    try {
      const { bytes } = await store.save(this.snapshot());
      this.savedVersion = version;
      this.lastSave = { at, ok: true, duration_ms: this.clock.monotonic() - started, bytes, error: null };
      this.saveFailureWarned = false;
    } catch (error) {
      this.lastSave = { at, ok: false, duration_ms: this.clock.monotonic() - started, bytes: null, error: messageOf(error) };
      if (!this.saveFailureWarned) {
        this.saveFailureWarned = true;
        this.logger?.warn("could not save the cache state; the cache keeps working in memory", {
          state_file: store.path,
          error: messageOf(error),
        });
      }
    }
    this.emit("save", { ...this.lastSave });
    return { ...this.lastSave };
  }

  // ---------------------------------------------------------------- lifecycle and events

  private assertOpen(): void {
    if (this.closing) throw new Disposed("the model cache is closed");
  }

  /** Final save, unloads everything (reason "shutdown"), stops timers. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    if (this.saveTimer) this.clock.clearTimeout(this.saveTimer);
    this.saveTimer = null;
    this.warmupAbort.abort();
    this.notifyCapacity();
    await this.warmupDone;
    await Promise.all([...this.entries.values()].map((e) => this.retire(e, "shutdown", true)));
    if (this.store) await this.saveCache();
    if (this.ownsBackends) for (const backend of Object.values(this.backends)) await backend?.dispose();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Subscribes to an event; returns the unsubscribe function. */
  on<E extends keyof CacheEvents>(event: E, listener: (payload: CacheEvents[E]) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener as (payload: never) => void);
    return () => set.delete(listener as (payload: never) => void);
  }

  private emit<E extends keyof CacheEvents>(event: E, payload: CacheEvents[E]): void {
    for (const listener of this.listeners.get(event) ?? []) {
      try {
        (listener as (payload: CacheEvents[E]) => void)(payload);
      } catch (error) {
        this.logger?.warn("a cache event listener threw", { event, error: messageOf(error) });
      }
    }
  }
}
