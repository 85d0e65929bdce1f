/**
 * ModelCache: which models are resident, loaded once however many requests want them, held by leases, bounded by
 * count and memory, expired by idle TTL, warmed at start and remembered across restarts.
 *
 * No I/O of its own: backends, the model source, the clock and the state store are injected. Each model has at most
 * one `Entry` (entry.ts: loading | ready | unloading, the model only when ready); the entry itself is the single flight
 * (a loading entry holds the load promise and its AbortController), so there is no separate in-flight map to keep in
 * sync. This class keeps the entry table, the request paths (the synchronous hit, the single flight) and unloading; the
 * other rules live in their own modules, each given functions rather than the cache: limits and admission (limits.ts),
 * warm-up (warmup.ts), expiry and file-check timers (entry-timers.ts), pins (pins.ts), statistics and the saved record
 * (usage.ts), saving (saver.ts), events (events.ts), memory reservations (memory.ts), and the pure policies (policy/).
 */
import { FORMAT_KIND, type BackendRegistry, type LoadedModel } from "../backends/types.js";
import type { BackendConfig, CacheConfig } from "../config/schema.js";
import {
  Aborted,
  BadRequest,
  CacheBusy,
  Disposed,
  InfernoError,
  ModelCapabilityMissing,
  ModelLoadCooldown,
  ModelLoadFailed,
  ModelNotFound,
  ModelPinned,
  ModelTooLarge,
  messageOf,
} from "../errors/index.js";
import {
  type Bytes,
  type Fingerprint,
  type ModelDescriptor,
  type ModelSource,
  sameFileVersion,
} from "../models/types.js";
import { ClockReader, systemClock } from "./clock.js";
import { CacheEventSource, type CacheEvent, type CacheEvents, type CacheMetrics } from "./events.js";
import {
  abortable,
  becomeReady,
  becomeUnloading,
  type Entry,
  EntryLease,
  inService,
  type LoadingEntry,
  loadingEntry,
  modelOf,
  type ReadyEntry,
  type UnloadingEntry,
} from "./entry.js";
import { EntryTimers, FINGERPRINT_CHECK_INTERVAL_MS } from "./entry-timers.js";
import { Limits } from "./limits.js";
import { MemoryLedger } from "./memory.js";
import type { CacheState, PersistedGgufFacts, StateStore } from "./persistence/types.js";
import { Pins } from "./pins.js";
import { Saver } from "./saver.js";
import { iso, memoryLimitBytes, modelStatsOf } from "./state-view.js";
import {
  type AcquireOptions,
  type CacheStats,
  type CacheSummary,
  type Clock,
  type EvictionReason,
  type KeepAlive,
  type LastSave,
  type Lease,
  type LoadedModelInfo,
  type ModelStats,
  type WarmupProgress,
  type WarmupResult,
  type WarmupStrategy,
} from "./types.js";
import { type Usage, UsageBook, type UseKind } from "./usage.js";
import { Warmer } from "./warmup.js";

export { FINGERPRINT_CHECK_INTERVAL_MS } from "./entry-timers.js";

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
  /** Bound on each state store call (ms), so a hung filesystem cannot hang a save or shutdown. Default 15 000. */
  storeTimeoutMs?: number;
}

const DAY_MS = 24 * 3600_000;
const DEFAULT_BUSY_WAIT_MS = 30_000;
/** The options of a request that gives none (one shared object: a hit allocates nothing for them). */
const NO_OPTIONS: AcquireOptions = Object.freeze({});

interface ObtainOptions {
  /** Count this as a request (hit/miss/coalesced, last use, frequency). */
  count: boolean;
  /** Evict idle models to make room (warm-up never does). */
  allowEvict: boolean;
  signal?: AbortSignal | undefined;
}

function validateKeepAlive(keepAlive: KeepAlive | undefined): void {
  if (keepAlive === undefined || keepAlive === "forever") return;
  const seconds = keepAlive?.afterSeconds;
  if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds < 0) {
    throw new BadRequest(
      `keepAlive must be "forever" or { afterSeconds: N } with N ≥ 0 seconds; found ${JSON.stringify(keepAlive)}`,
    );
  }
}

function sameKeepAlive(a: KeepAlive | null, b: KeepAlive | null): boolean {
  if (a === b) return true;
  if (a === null || b === null || a === "forever" || b === "forever") return false;
  return a.afterSeconds === b.afterSeconds;
}

function errorCode(error: unknown): string {
  return error instanceof InfernoError ? error.code : "model_load_failed";
}

export class ModelCache implements AsyncDisposable {
  /**
   * Resolves when the start-up warm-up (started by `create`) has finished: its models loaded and warmed (`TextModel.warm`),
   * the backends settled (`Backend.settle`). Never rejects.
   */
  readonly warmupDone: Promise<WarmupResult>;
  /**
   * What the start-up restore found (the `restore` event fires inside `create`, before anyone can subscribe, so the
   * result is kept here too): models restored, how many of them have no file now, and the warning, if any.
   */
  restored: CacheEvents["restore"] = { models: 0, missing: 0, warning: null };
  private resolveWarmupDone!: (result: WarmupResult) => void;

  private readonly clock: Clock;
  /** Every time the cache reads (the system clock once per event-loop turn: `perTurn`); `clock` is for its timers. */
  private readonly time: ClockReader;
  private readonly logger: CacheLogger | undefined;
  private readonly backends: BackendRegistry;
  private readonly ownsBackends: boolean;
  private readonly memoryLimit: Bytes;
  private readonly events: CacheEventSource;
  private readonly book: UsageBook;
  private readonly saver: Saver;
  private readonly ledger = new MemoryLedger();
  private pins = Pins.none();

  private readonly entries = new Map<string, Entry>();
  /** Ready entries not retiring (`models_loaded`), kept as a count so summaries are O(1). */
  private readyCount = 0;
  /**
   * Model key → monotonic time until which loads are refused after a failure, and the file version that failed: a
   * different version (the file was fixed or replaced) lifts the cooldown at once.
   */
  private readonly cooldowns = new Map<string, { until: number; fingerprint: Fingerprint }>();
  /** Model key → monotonic time of its last crash: a second crash soon after starts the load-failure cooldown. */
  private readonly crashes = new Map<string, number>();
  private readonly limits: Limits;
  private readonly warmer: Warmer;
  private readonly timers: EntryTimers;
  private closing: Promise<void> | null = null;

  private constructor(
    private readonly config: CacheConfig,
    private readonly backendConfig: BackendConfig,
    private readonly models: ModelSource,
    deps: CacheDependencies,
  ) {
    this.backends = deps.backends;
    this.clock = deps.clock ?? systemClock;
    this.time = new ClockReader(this.clock, FINGERPRINT_CHECK_INTERVAL_MS, { perTurn: deps.clock === undefined });
    this.logger = deps.logger;
    this.ownsBackends = deps.ownsBackends ?? false;
    this.memoryLimit = memoryLimitBytes(config, deps.systemMemoryBytes);
    this.warmupDone = new Promise((resolve) => (this.resolveWarmupDone = resolve));
    this.events = new CacheEventSource((event, error) =>
      this.logger?.warn("a cache event listener threw", { event, error: messageOf(error) }),
    );
    this.events.subscribeAll(deps.metrics ?? {}, (message) => new BadRequest(`metrics: ${message}`));
    this.book = new UsageBook(config.usage_half_life_hours, config.request_log_size);
    this.saver = new Saver({
      store: config.persist_cache ? (deps.store ?? null) : null,
      book: this.book,
      clock: this.clock,
      intervalMs: config.persist_interval_seconds * 1000,
      timeoutMs: deps.storeTimeoutMs,
      isPinned: (key) => this.pins.has(key),
      beforeSave: () => this.stampAll(),
      onSave: (save) => this.events.emit("save", save),
      warn: (message, fields) => this.logger?.warn(message, fields),
    });
    this.limits = new Limits({
      config,
      memoryLimit: this.memoryLimit,
      ledger: this.ledger,
      clock: this.clock,
      monotonic: () => this.time.monotonic(),
      now: () => this.time.now(),
      busyWaitMs: deps.busyWaitMs ?? DEFAULT_BUSY_WAIT_MS,
      entries: () => this.entries.values(),
      isPinned: (key) => this.pins.has(key),
      usage: (key) => this.book.get(key),
      retire: (key, reason) => this.retireKey(key, reason),
      assertOpen: () => this.assertOpen(),
      debug: (message, fields) => this.logger?.debug?.(message, fields),
    });
    this.warmer = new Warmer({
      config,
      backendConfig,
      models,
      book: this.book,
      pins: () => this.pins,
      ledger: this.ledger,
      memoryLimit: this.memoryLimit,
      now: () => this.time.now(),
      entryState: (key) => this.entries.get(key)?.state,
      load: async (descriptor, signal) => {
        const entry = await this.obtain(descriptor, { count: false, allowEvict: false, signal });
        this.whenIdle(entry);
        return entry.model;
      },
      settleBackends: async () =>
        void (await Promise.all(Object.values(this.backends).map((backend) => backend?.settle?.()))),
      closing: () => this.closing !== null,
      onWarmup: (result) => this.events.emit("warmup", result),
      warn: (message, fields) => this.logger?.warn(message, fields),
    });
    this.timers = new EntryTimers(
      this.clock,
      this.time,
      (entry, idleSeconds) => {
        this.events.emit("expired", { name: entry.descriptor.name, key: entry.descriptor.key, idleSeconds });
        void this.retire(entry, "ttl");
      },
      (entry) => {
        if (entry.checkWhenIdle && entry.leases === 0) this.checkFileWhenIdle(entry);
      },
    );
  }

  /** Restores saved state, then starts warm-up in the background (see `warmupDone`). */
  static async create(
    cacheConfig: CacheConfig,
    backendConfig: BackendConfig,
    models: ModelSource,
    deps: CacheDependencies,
  ): Promise<ModelCache> {
    const cache = new ModelCache(cacheConfig, backendConfig, models, deps);
    await cache.saver.probe();
    await cache.restore();
    await cache.resolvePins();
    cache.saver.schedule();
    void cache.warmer.runAtStartup().then((result) => cache.resolveWarmupDone(result));
    return cache;
  }

  // ---------------------------------------------------------------- requests

  /** Loads (or hits) a model and counts one use. Holds no lease: prefer acquire/withModel for requests. */
  getModel(name: string, options: AcquireOptions = NO_OPTIONS): Promise<LoadedModel> {
    const ready = this.readyFast(name, options);
    if (ready) {
      // No lease: the use ends now (the idle time starts, the use is timed).
      this.whenIdle(ready);
      return Promise.resolve(ready.model);
    }
    return this.obtainRequested(name, options).then((entry) => {
      this.whenIdle(entry);
      return entry.model;
    });
  }

  /**
   * Loads (or hits) a model, counts one use, and holds a lease until released. Waits (bounded) when every resident
   * model is leased. A hit on a ready model takes a synchronous path: no lookup awaits, no stat, no timer work.
   */
  acquire(name: string, options: AcquireOptions = NO_OPTIONS): Promise<Lease> {
    const ready = this.readyFast(name, options);
    if (ready) return Promise.resolve(this.lease(ready));
    return this.obtainRequested(name, options).then((entry) => this.lease(entry));
  }

  /**
   * The hit without a single await, clock read or timer: the model source knows the name without I/O (`lookup`), the
   * entry is ready, its file check is not due and the request has nothing the slow path must handle. The use is
   * counted now and timed when it ends (`whenIdle`). Undefined otherwise.
   */
  private readyFast(name: string, options: AcquireOptions): ReadyEntry | undefined {
    if (this.closing || options.signal?.aborted) return undefined;
    const descriptor = this.models.lookup?.(name);
    if (!descriptor) return undefined;
    const entry = this.entries.get(descriptor.key);
    if (!inService(entry) || entry.checkDue) return undefined;
    if (options.keepAlive !== undefined) validateKeepAlive(options.keepAlive);
    this.assertCapability(descriptor, options);
    entry.usage = this.book.countUse(descriptor, "hit", entry.usage);
    entry.unstamped++;
    if (this.events.wantsHit) this.events.emit("hit", { name: descriptor.name, key: descriptor.key });
    this.applyKeepAlive(entry, options.keepAlive);
    return entry;
  }

  /**
   * A lease on a model that is loaded now, counting nothing: no use, no request logged, no event. For the server's own
   * warm-up requests (server/warm-up-requests.ts), which run its request path before `/ready` answers 200 and are no
   * one's traffic. Null when the model is not loaded (or is leaving): such a request never loads or evicts anything.
   */
  async acquireLoaded(name: string): Promise<Lease | null> {
    if (this.closing) return null;
    const descriptor = this.models.lookup?.(name) ?? (await this.models.resolve(name).catch(() => null));
    const entry = descriptor ? this.entries.get(descriptor.key) : undefined;
    if (!inService(entry) || this.closing) return null;
    return this.lease(entry);
  }

  /** A request's path to a ready entry: counted as a use, room made by eviction, keep_alive applied. */
  private async obtainRequested(name: string, options: AcquireOptions): Promise<ReadyEntry> {
    validateKeepAlive(options.keepAlive);
    const descriptor = await this.resolveCounted(name);
    this.assertCapability(descriptor, options);
    const entry = await this.obtain(descriptor, { count: true, allowEvict: true, signal: options.signal });
    this.applyKeepAlive(entry, options.keepAlive);
    return entry;
  }

  /** Refuses, before anything is loaded or evicted, a model that cannot do what the request needs. */
  private assertCapability(descriptor: ModelDescriptor, options: AcquireOptions): void {
    const needed = options.capability;
    if (needed === undefined || FORMAT_KIND[descriptor.format] === needed) return;
    throw new ModelCapabilityMissing(
      `model ${descriptor.name} is an ${descriptor.format.toUpperCase()} ${FORMAT_KIND[descriptor.format]} model and cannot do ${options.task ?? `${needed} generation`}`,
      { details: { param: "model", model: descriptor.name } },
    );
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
  async load(name: string, options: { keepAlive?: KeepAlive; signal?: AbortSignal } = {}): Promise<LoadedModelInfo> {
    validateKeepAlive(options.keepAlive);
    this.assertOpen();
    const descriptor = await this.models.resolve(name);
    const entry = await this.obtain(descriptor, { count: false, allowEvict: true, signal: options.signal });
    this.applyKeepAlive(entry, options.keepAlive);
    this.whenIdle(entry);
    return this.info(entry);
  }

  /**
   * Unloads one model (reason "manual") once its leases end. false when it was not loaded. A pinned model needs
   * `force` (like `clear`): without it, `ModelPinned`.
   */
  async evict(name: string, options: { force?: boolean } = {}): Promise<boolean> {
    this.assertOpen();
    const descriptor = await this.models.resolve(name);
    this.assertUnpinnedOrForced(descriptor.key, descriptor.name, options.force);
    const entry = this.entries.get(descriptor.key);
    if (!entry || entry.retireReason !== null) return false;
    await this.retire(entry, "manual");
    return true;
  }

  private assertUnpinnedOrForced(key: string, name: string, force: boolean | undefined): void {
    if (this.pins.has(key) && !force) {
      throw new ModelPinned(`${name} is pinned (always_warm or pinned = true); use force to unload it`, {
        details: { model: name },
      });
    }
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
      this.assertUnpinnedOrForced(key, name, options.force);
      targets = targets.filter((e) => e.descriptor.key === key);
    } else if (!options.force) {
      targets = targets.filter((e) => !this.pins.has(e.descriptor.key));
    }
    await Promise.all(targets.map((e) => this.retire(e, "clear")));
    if (options.stats) this.book.reset(statsKeys);
    return targets.map((e) => e.descriptor.name);
  }

  // ---------------------------------------------------------------- resolving and counting

  /** Resolves a name; a name that resolves to no model counts as an unknown-model request (not a miss). */
  private async resolveCounted(name: string): Promise<ModelDescriptor> {
    this.assertOpen();
    try {
      return await this.models.resolve(name);
    } catch (error) {
      if (error instanceof ModelNotFound) {
        this.book.recordUnknownModel();
        this.events.emit("unknown_model", { name, code: error.code });
      }
      throw error;
    }
  }

  /** Counts and times one request (the slow path; the hit path counts in `readyFast` and times in `stamp`). */
  private recordUse(descriptor: ModelDescriptor, kind: UseKind): void {
    this.book.recordUse(descriptor, kind, this.time.now(), this.limits.inflation);
    if (this.events.wants(kind)) this.events.emit(kind, { name: descriptor.name, key: descriptor.key });
  }

  /**
   * Times the hits counted on the fast path at `monotonic` (a reading of `this.time`): when their use ended, or — read
   * while still in use — now, and again when the use ends (the last use is when the model was last in use).
   */
  private stamp(entry: Entry, monotonic: number): void {
    if (entry.usage === null || (entry.unstamped === 0 && !entry.timedInUse)) return;
    this.book.stampHits(entry.usage, this.time.wallAt(monotonic), entry.unstamped, this.limits.inflation);
    entry.unstamped = 0;
    entry.timedInUse = entry.leases > 0;
  }

  /** Times every hit not yet timed (before statistics are read or saved): uses still leased count as of now. */
  private stampAll(): void {
    const now = this.time.monotonic();
    for (const entry of this.entries.values()) this.stamp(entry, now);
  }

  private recordLoad(entry: Entry, model: LoadedModel, loadMs: number, gguf: PersistedGgufFacts | null): void {
    this.book.recordLoad(entry.descriptor, {
      fingerprint: entry.fingerprint,
      loadMs,
      memoryBytes: model.memoryBytes,
      gguf,
    });
    const { name, key } = entry.descriptor;
    this.events.emit("load", { name, key, durationMs: loadMs, memoryBytes: model.memoryBytes });
  }

  // ---------------------------------------------------------------- the single flight

  /** The ready entry for a model: joins a load in flight, starts one, or hits. Counts the request once. */
  private async obtain(descriptor: ModelDescriptor, options: ObtainOptions): Promise<ReadyEntry> {
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
        this.recordUse(
          descriptor,
          entry?.state === "ready" ? "hit" : entry?.state === "loading" ? "coalesced" : "miss",
        );
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
      if (
        error instanceof Aborted &&
        !signal?.aborted &&
        entry.retireReason !== null &&
        entry.retireReason !== "shutdown"
      )
        return;
      throw error;
    } finally {
      entry.waiters--;
      if (signal?.aborted) this.whenIdle(entry);
    }
  }

  /** Whether a ready entry's file changed: compared at most once per interval per model (a hit costs no stat). */
  private async fileChanged(entry: Entry): Promise<boolean> {
    if (!inService(entry) || !entry.checkDue) return false;
    // Uses held for long (overlapping leases that never all end) are timed at least this often.
    this.stamp(entry, this.time.monotonic());
    this.timers.scheduleFileCheck(entry);
    const current = await this.models.fingerprint(entry.descriptor.key);
    if (current && sameFileVersion(current, entry.fingerprint)) return false;
    // A models folder that is not there at all (unmounted) changes nothing: the loaded model keeps serving.
    if (!current && this.models.available && !(await this.models.available())) return false;
    if (current) this.book.recordFileVersion(entry.descriptor.key, current);
    this.logger?.info(
      current
        ? "model file changed; reloading once its requests end"
        : "model file deleted; unloading once its requests end",
      {
        model: entry.descriptor.name,
      },
    );
    return inService(entry);
  }

  private startLoad(descriptor: ModelDescriptor, allowEvict: boolean): LoadingEntry {
    const cooldown = this.cooldowns.get(descriptor.key);
    const now = this.time.monotonic();
    if (cooldown && !sameFileVersion(cooldown.fingerprint, descriptor.fingerprint))
      this.cooldowns.delete(descriptor.key);
    const until = this.cooldowns.get(descriptor.key)?.until;
    if (until !== undefined && until > now) {
      const retry = Math.ceil((until - now) / 1000);
      throw new ModelLoadCooldown(`${descriptor.name} failed to load recently; retry in ${retry} s`, {
        details: { model: descriptor.name, retry_after_seconds: retry },
      });
    }
    const known = this.book.get(descriptor.key)?.fingerprint;
    // The newer of what resolve saw and what a file check last saw (a cached descriptor may be older).
    const fingerprint = known && known.mtimeMs > descriptor.fingerprint.mtimeMs ? known : descriptor.fingerprint;
    const entry = loadingEntry(descriptor, fingerprint, now);
    this.entries.set(descriptor.key, entry);
    entry.promise = this.runLoad(entry, allowEvict);
    entry.promise.catch(() => {});
    return entry;
  }

  private async runLoad(entry: LoadingEntry, allowEvict: boolean): Promise<LoadedModel> {
    const { descriptor } = entry;
    const { name, key } = descriptor;
    try {
      const backend = this.backends[descriptor.format];
      if (!backend) throw new ModelLoadFailed(`no backend loads ${descriptor.format} models (${descriptor.name})`);
      const [estimate, gguf] = await Promise.all([
        this.models.estimateMemory(descriptor, this.backendConfig),
        this.ggufFacts(descriptor),
      ]);
      await this.limits.admit(entry, estimate, allowEvict);
      // The runtime's one-time start-up (llama.cpp's) is not this model's load time.
      await backend.ready?.(this.backendConfig);
      this.events.emit("loading", { name, key, progress: 0, estimateBytes: estimate });
      const started = this.time.monotonic();
      const onProgress = (progress: number) =>
        this.events.emit("loading", { name, key, progress, estimateBytes: estimate });
      const model = await backend.load(descriptor, {
        backend: this.backendConfig,
        signal: entry.abort.signal,
        onProgress,
      });
      const loadMs = this.time.monotonic() - started;
      await this.assertMeasuredFits(entry, model);
      // Retired while it loaded (or while it was measured): the model never enters service.
      if (entry.abort.signal.aborted || entry.state !== "loading") {
        await model.dispose();
        throw new Aborted(`loading ${descriptor.name} was cancelled`);
      }
      entry.reservation?.resize(model.memoryBytes);
      const ready = becomeReady(entry, model, loadMs, this.time.monotonic());
      ready.idleMs = this.idleMs(ready);
      this.timers.scheduleFileCheck(ready);
      this.readyCount++;
      this.recordLoad(ready, model, loadMs, gguf);
      void model.crashed?.then((error) => this.crashed(ready, model, error));
      model.onMemoryChange?.((bytes) => this.remeasured(ready, model, bytes));
      if (ready.waiters === 0) this.whenIdle(ready);
      this.limits.enforce();
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
    if (entry.state !== "unloading") becomeUnloading(entry, null);
    entry.reservation?.release();
    entry.gone.resolve();
    this.limits.notify();
    if (entry.abort.signal.aborted)
      return new Aborted(`loading ${name} was cancelled (${entry.retireReason ?? "aborted"})`);
    if (error instanceof ModelTooLarge || error instanceof CacheBusy || error instanceof Disposed) return error;
    this.book.recordLoadFailure(key);
    const cooldownMs = this.config.load_failure_cooldown_seconds * 1000;
    if (cooldownMs > 0) {
      this.cooldowns.set(key, { until: this.time.monotonic() + cooldownMs, fingerprint: entry.descriptor.fingerprint });
    }
    const typed =
      error instanceof InfernoError
        ? error
        : new ModelLoadFailed(`could not load ${name}: ${messageOf(error)}`, {
            cause: error,
            details: { model: name },
          });
    this.events.emit("load_failed", { name, key, code: errorCode(typed), error });
    this.logger?.warn("model failed to load", { model: name, error: messageOf(error) });
    return typed;
  }

  /**
   * A ready model whose runtime died: it leaves at once with reason `crashed` (its requests in flight already failed
   * with the backend's typed error), and the next request loads it again. A model that crashes again within
   * `load_failure_cooldown_seconds` of its previous crash is refused for that long, as a failed load is, so a model
   * that crashes on every request cannot crash-loop.
   */
  private crashed(entry: Entry, model: LoadedModel, error: Error): void {
    if (modelOf(entry) !== model) return;
    const { name, key } = entry.descriptor;
    const now = this.time.monotonic();
    const cooldownMs = this.config.load_failure_cooldown_seconds * 1000;
    const previous = this.crashes.get(key);
    this.crashes.set(key, now);
    const repeated = previous !== undefined && now - previous < cooldownMs;
    if (repeated) this.cooldowns.set(key, { until: now + cooldownMs, fingerprint: entry.descriptor.fingerprint });
    this.logger?.warn("model crashed; it is unloaded and loads again on the next request", {
      model: name,
      error: messageOf(error),
      ...(repeated ? { cooldown_seconds: this.config.load_failure_cooldown_seconds } : {}),
    });
    void this.retire(entry, "crashed", true);
  }

  /**
   * A resident model's memory was measured again (a model host's figure changes while it runs): its reservation takes
   * the new figure, so the limits and the statistics count the latest one, and a model that grew makes idle ones go.
   */
  private remeasured(entry: Entry, model: LoadedModel, bytes: Bytes): void {
    if (modelOf(entry) !== model || !entry.reservation || entry.reservation.bytes === bytes) return;
    entry.reservation.resize(bytes);
    this.limits.enforce();
  }

  // ---------------------------------------------------------------- limits (limits.ts)

  /** The measured figure replaces the estimate; a model that turns out never to fit is unloaded and refused. */
  private async assertMeasuredFits(entry: Entry, model: LoadedModel): Promise<void> {
    try {
      this.limits.assertCanEverFit(entry, model.memoryBytes);
    } catch (error) {
      await model.dispose();
      throw error;
    }
  }

  // ---------------------------------------------------------------- leases, TTL, unloading

  private lease(entry: ReadyEntry): Lease {
    return new EntryLease(entry, this.leaseEnded);
  }

  /** A lease ended (its entry's count already dropped): the TTL may start, waiting loads may fit, limits may hold again. */
  private readonly leaseEnded = (entry: Entry): void => {
    if (entry.leases > 0) return;
    this.whenIdle(entry);
    this.limits.notify();
    this.limits.enforce();
  };

  private applyKeepAlive(entry: Entry, keepAlive: KeepAlive | undefined): void {
    if (keepAlive === undefined || sameKeepAlive(entry.keepAlive, keepAlive)) return;
    entry.keepAlive = keepAlive;
    entry.idleMs = this.idleMs(entry);
    // A different idle time: the armed expiry no longer says when.
    this.timers.cancelExpiry(entry);
  }

  /** Idle time (ms) before an idle model is unloaded; null = never. */
  private idleMs(entry: Entry): number | null {
    if (this.pins.has(entry.descriptor.key)) return null;
    if (entry.keepAlive !== null) return entry.keepAlive === "forever" ? null : entry.keepAlive.afterSeconds * 1000;
    const ttl = this.pins.ttlSeconds(entry.descriptor.key) ?? this.config.model_ttl_seconds;
    return ttl === 0 ? null : ttl * 1000;
  }

  /**
   * Called when an entry may have become idle: finishes a pending unload, or (re)starts the idle TTL (entry-timers.ts:
   * the expiry timer is armed only when none would fire in time, and checks lazily when it fires).
   */
  private whenIdle(entry: Entry): void {
    if (entry.leases > 0) return;
    // A ready entry is always the one in the map (retiring makes it unloading first); an unloading one still holding
    // its model is unloaded now (`finishUnload` takes the model first, so this runs once).
    if (entry.state === "unloading") {
      if (entry.toDispose) void this.finishUnload(entry);
      return;
    }
    if (entry.state !== "ready") return;
    const now = this.time.monotonic();
    this.stamp(entry, now);
    entry.idleSince = now;
    if (entry.idleMs === 0) void this.retire(entry, "ttl");
    else {
      this.timers.idle(entry);
      this.checkFileWhenIdle(entry);
    }
  }

  /**
   * A model whose file was deleted (or replaced) is unloaded once it is idle — its last lease ended — not at its TTL:
   * its file is compared then, or when the check is next due (every file check stays at most once per
   * `FINGERPRINT_CHECK_INTERVAL_MS`, and hits stay free of I/O). Once per idle spell, so idle models are not polled.
   */
  private checkFileWhenIdle(entry: Entry): void {
    if (!inService(entry)) return;
    if (!entry.checkDue) {
      entry.checkWhenIdle = true;
      return;
    }
    entry.checkWhenIdle = false;
    void this.fileChanged(entry).then((changed) => {
      if (changed) void this.retire(entry, "file_changed");
    });
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
    if (entry.state !== "unloading") {
      this.timers.cancel(entry);
      const wasLoading = entry.state === "loading";
      if (entry.state === "ready") this.readyCount--;
      const unloading = becomeUnloading(entry, reason);
      if (wasLoading) unloading.abort.abort();
      else if (unloading.leases === 0 || force) void this.finishUnload(unloading);
    } else if (force && entry.toDispose) {
      void this.finishUnload(entry);
    }
    return entry.gone.promise;
  }

  private async finishUnload(entry: UnloadingEntry): Promise<void> {
    const model = entry.toDispose;
    if (!model) return;
    entry.toDispose = null;
    const now = this.time.monotonic();
    this.stamp(entry, now);
    const idleSeconds = entry.leases === 0 ? (now - entry.idleSince) / 1000 : 0;
    const residentSeconds = entry.readyAt === null ? 0 : (now - entry.readyAt) / 1000;
    try {
      await model.dispose();
    } catch (error) {
      this.logger?.warn("model did not dispose cleanly", { model: entry.descriptor.name, error: messageOf(error) });
    }
    const reason = entry.retireReason ?? "manual";
    if (this.entries.get(entry.descriptor.key) === entry) this.entries.delete(entry.descriptor.key);
    entry.reservation?.release();
    this.book.recordEviction(reason);
    this.events.emit("evict", {
      name: entry.descriptor.name,
      key: entry.descriptor.key,
      reason,
      idleSeconds,
      residentSeconds,
    });
    entry.gone.resolve();
    this.limits.notify();
  }

  // ---------------------------------------------------------------- warm-up (warmup.ts)

  /** Runs a warm-up now: given models, or ranked by a strategy (default: the configured one). */
  warmup(options: { models?: string[]; strategy?: WarmupStrategy } = {}): Promise<WarmupResult> {
    this.assertOpen();
    return this.warmer.run(options);
  }

  /**
   * The start-up warm-up as it goes: its plan (model names, in order) and how many of them are settled (loaded, skipped
   * or failed). Null until the plan is made; stays once warm-up is over.
   */
  startupWarmupProgress(): WarmupProgress | null {
    return this.warmer.progress();
  }

  /** The warm-up plan: which models, in which order, within the limits (nothing is loaded). */
  warmupPlan(strategy?: WarmupStrategy): Promise<{ plan: string[]; skipped: WarmupResult["skipped"] }> {
    return this.warmer.plan(strategy);
  }

  // ---------------------------------------------------------------- configuration

  /** Resolves `always_warm` and per-model overrides to keys (pins.ts); names that do not resolve are reported, not fatal. */
  private async resolvePins(): Promise<void> {
    this.pins = await Pins.resolve(this.config, (name) => this.models.resolve(name), [...this.book.values()]);
    for (const { name, error } of this.pins.unresolved) {
      this.logger?.warn("a model named in [cache] does not resolve", { model: name, error });
    }
    for (const [key, name] of this.pins.names) this.events.emit("pinned", { name, key });
  }

  // ---------------------------------------------------------------- statistics

  /** The cheap numbers (O(1)): what `/health` and `/metrics` read, without building per-model statistics. */
  summary(): CacheSummary {
    const { hits, misses } = this.book.counters;
    return {
      hits,
      misses,
      hit_rate: hits + misses === 0 ? 0 : hits / (hits + misses),
      loads: this.book.counters.loads,
      load_failures: this.book.counters.load_failures,
      models_loaded: this.readyCount,
      max_cached_models: this.config.max_cached_models,
      memory_bytes: this.ledger.bytes,
      memory_limit_bytes: this.memoryLimit,
      unsaved_changes: this.book.unsaved,
      models_known: this.book.size,
      unknown_model_requests: this.book.counters.unknown_model_requests,
      coalesced: this.book.counters.coalesced,
    };
  }

  stats(): CacheStats {
    this.stampAll();
    const counters = this.book.counters;
    const summary = this.summary();
    return {
      hits: summary.hits,
      misses: summary.misses,
      hit_rate: summary.hit_rate,
      loads: summary.loads,
      load_failures: summary.load_failures,
      evictions: { ...counters.evictions },
      warmups: counters.warmups,
      models_loaded: summary.models_loaded,
      max_cached_models: summary.max_cached_models,
      memory_bytes: summary.memory_bytes,
      memory_limit_bytes: summary.memory_limit_bytes,
      last_save: this.saver.lastSave,
      unsaved_changes: summary.unsaved_changes,
      state_file: this.saver.path,
      models: [...this.book.values()].map((u) => this.modelStats(u)).sort((a, b) => a.name.localeCompare(b.name)),
      unknown_model_requests: summary.unknown_model_requests,
      coalesced: summary.coalesced,
    };
  }

  private modelStats(usage: Usage): ModelStats {
    const entry = this.entries.get(usage.key);
    const now = this.time.now();
    return modelStatsOf(
      this.book.persisted(usage, now, this.pins.has(usage.key)),
      now,
      this.config.usage_half_life_hours,
      {
        loaded: entry?.state === "ready",
        pinned: this.pins.has(usage.key),
        memory_bytes: entry?.reservation?.bytes ?? 0,
        expires_at: iso(this.timers.expiresAt(entry)),
      },
    );
  }

  /** Resident (and loading) models, for `GET /v1/cache/models` and `inferno ps`. */
  loadedModels(): LoadedModelInfo[] {
    this.stampAll();
    return [...this.entries.values()].map((e) => this.info(e)).sort((a, b) => a.name.localeCompare(b.name));
  }

  private info(entry: Entry): LoadedModelInfo {
    const usage = this.book.get(entry.descriptor.key);
    return {
      name: entry.descriptor.name,
      key: entry.descriptor.key,
      format: entry.descriptor.format,
      state: entry.state,
      size_bytes: entry.descriptor.fingerprint.size,
      memory_bytes: entry.reservation?.bytes ?? 0,
      leases: entry.leases,
      pinned: this.pins.has(entry.descriptor.key),
      last_used: iso(usage?.lastUsedAt ?? null),
      expires_at: iso(this.timers.expiresAt(entry)),
      load_ms: entry.state === "loading" ? null : entry.loadMs,
      pid: modelOf(entry)?.pid ?? null,
    };
  }

  // ---------------------------------------------------------------- persistence

  /**
   * Restores counters and per-model statistics (saver.ts), then looks at each model's file: changed → statistics kept,
   * not warmed; missing → kept and marked missing, dropped after `missing_retention_days`. When the models directory
   * itself is not there (unmounted, say), nothing is marked or dropped: one warning, statistics as saved.
   */
  private async restore(): Promise<void> {
    const { state, warning } = await this.saver.restore();
    let missing = 0;
    if (state) {
      const available = this.models.available ? await this.models.available() : true;
      if (!available) {
        this.logger?.warn("the models directory is not available: saved statistics are kept unchanged until it is", {
          models: state.models.length,
        });
      } else {
        const now = this.time.now();
        const retentionMs = this.config.missing_retention_days * DAY_MS;
        for (const saved of state.models) {
          const current = await this.models.fingerprint(saved.key);
          if (!current) {
            if (this.book.markMissing(saved.key, now, retentionMs)) missing++;
            else this.logger?.debug?.("dropping statistics of a model missing for too long", { model: saved.name });
          } else if (!sameFileVersion(current, saved.fingerprint)) {
            this.book.markChanged(saved.key, current);
          } else {
            this.book.markPresent(saved.key);
          }
        }
      }
    }
    this.restored = { models: this.book.size, missing, warning };
    this.events.emit("restore", this.restored);
  }

  /**
   * The statistics and the request log as this process knows them, in the state file's shape (restored history
   * included): what `inferno cache advise` replays.
   */
  snapshot(): CacheState {
    return this.book.snapshot(this.clock.now(), (key) => this.pins.has(key));
  }

  /** Saves the state now (persistence on), one save at a time. Never throws: failures are reported in `last_save`. */
  saveCache(): Promise<LastSave> {
    return this.saver.save();
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
    this.saver.stop();
    this.warmer.abort.abort();
    this.limits.notify();
    await this.warmupDone;
    await Promise.all([...this.entries.values()].map((e) => this.retire(e, "shutdown", true)));
    if (this.saver.path !== null) await this.saver.save();
    if (this.ownsBackends) for (const backend of Object.values(this.backends)) await backend?.dispose();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Subscribes to an event; returns the unsubscribe function. */
  on<E extends keyof CacheEvents>(event: E, listener: (payload: CacheEvents[E]) => void): () => void {
    return this.events.on(event, listener);
  }

  /** Subscribes to every event, each with its `type` (for streams); returns the unsubscribe function. */
  onAny(listener: (event: CacheEvent) => void): () => void {
    return this.events.onAny(listener);
  }
}
