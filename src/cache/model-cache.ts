/**
 * ModelCache: which models are resident, loaded once however many requests want them, held by leases, bounded by
 * count and memory, expired by idle TTL, warmed at start and remembered across restarts.
 *
 * No I/O of its own: backends, the model source, the clock and the state store are injected. This class is the request
 * API: it resolves names, takes the synchronous hit, runs the single flight's load and answers for statistics and
 * persistence. The entries themselves — each model's `Entry` (loading | ready | unloading; a loading entry holds the
 * load's promise and its AbortController, so the entry is the single flight), every transition, leases, timers,
 * admission and unloading — belong to the entry table (entry-table.ts), their one writer. The other rules live in their
 * own modules, reading the table through a narrow view: limits and memory reservations (limits.ts), warm-up
 * (warmup.ts), pins (limits.ts), statistics and the saved record (usage.ts), saving (saver.ts), events (events.ts), and
 * the pure policies (policy/).
 */
import {
  type BackendRegistry,
  capabilityMissing,
  FORMAT_KIND,
  type LoadedModel,
  type PromptStoreEvent,
  type PromptStoreSettings,
  type TokenUsage,
} from "../backends/types.js";
import type { BackendConfig, CacheConfig } from "../config/schema.js";
import { Aborted, BadRequest, ModelLoadFailed, ModelNotFound, ModelPinned, messageOf } from "../errors/index.js";
import { type Bytes, type ModelDescriptor, type ModelSource, sameFileVersion } from "../models/types.js";
import { ClockReader, systemClock } from "./clock.js";
import {
  abortable,
  type Entry,
  EntryTable,
  FINGERPRINT_CHECK_INTERVAL_MS,
  inService,
  leaving,
  modelOf,
  type ReadyEntry,
} from "./entry-table.js";
import { CacheEventSource, checkListener, type CacheEvent, type CacheEvents, type CacheMetrics } from "./events.js";
import { type FleetEviction, MemoryLedger } from "./limits.js";
import type { CacheState, PersistedGgufFacts, StateStore } from "./persistence/types.js";
import { Pins } from "./limits.js";
import { Saver } from "./saver.js";
import { iso, memoryLimitBytes, modelStatsOf } from "./state-view.js";
import {
  type AcquireOptions,
  type CacheLogger,
  type CacheStats,
  type CacheSummary,
  type Clock,
  type KeepAlive,
  type LastSave,
  type Lease,
  type LoadedModelInfo,
  type ModelStats,
  type PromptCacheStats,
  type WarmupProgress,
  type WarmupResult,
  type WarmupStrategy,
} from "./types.js";
import { type Usage, UsageBook, type UseKind } from "./usage.js";
import { Warmer } from "./warmup.js";

export { FINGERPRINT_CHECK_INTERVAL_MS } from "./entry-table.js";
export type { CacheLogger } from "./types.js";

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
const MIB = 1024 * 1024;

const PREFIX_COUNTERS: Record<PromptStoreEvent["action"], keyof PromptCacheStats> = {
  saved: "prefixes_saved",
  restored: "prefixes_restored",
  evicted: "prefixes_evicted",
  quarantined: "prefixes_quarantined",
};

/**
 * The prompt store's settings, when prefixes are to be saved: the prompt cache on, a disk budget, and persistence on
 * (`persist_cache = false` writes nothing to the cache directory).
 */
function promptStoreOf(config: CacheConfig): PromptStoreSettings | undefined {
  if (!config.prompt_cache || config.prompt_cache_mb === 0 || !config.persist_cache) return undefined;
  return { cacheDir: config.cache_dir, budgetBytes: config.prompt_cache_mb * MIB };
}
const DEFAULT_BUSY_WAIT_MS = 30_000;
/** Refused prompt prefixes of one model, for one reason, are logged at most once in this long. */
const QUARANTINE_LOG_QUIET_MS = 60_000;

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
  /** Every time the cache reads (clock.ts); `clock` is for its timers. */
  private readonly time: ClockReader;
  private readonly logger: CacheLogger | undefined;
  private readonly backends: BackendRegistry;
  private readonly ownsBackends: boolean;
  private readonly memoryLimit: Bytes;
  private readonly events: CacheEventSource;
  private readonly book: UsageBook;
  private readonly ledger = new MemoryLedger();
  private readonly promptCounts: PromptCacheStats = {
    generations: 0,
    hits: 0,
    cached_tokens: 0,
    evaluated_tokens: 0,
    prefixes_saved: 0,
    prefixes_restored: 0,
    prefixes_evicted: 0,
    prefixes_quarantined: 0,
    disk_bytes: 0,
  };
  /** Where GGUF models save and restore their evaluated prefixes; undefined: nowhere (see `promptStoreOf`). */
  private readonly promptStore: PromptStoreSettings | undefined;
  /** A model's prompt store reported its figures: `disk_bytes` is its own from then on. */
  private promptStoreReported = false;
  /** When a refused prefix was last logged, by model and reason: a scan that refuses many files logs one line. */
  private readonly quarantineLogged = new Map<string, number>();
  /** The entries: their one writer. */
  private readonly table: EntryTable;
  private readonly saver: Saver;
  private readonly warmer: Warmer;
  private closing: Promise<void> | null = null;

  private constructor(
    private readonly config: CacheConfig,
    private readonly backendConfig: BackendConfig,
    private readonly models: ModelSource,
    deps: CacheDependencies,
  ) {
    this.backends = deps.backends;
    this.clock = deps.clock ?? systemClock;
    this.time = new ClockReader(this.clock, FINGERPRINT_CHECK_INTERVAL_MS);
    this.logger = deps.logger;
    this.ownsBackends = deps.ownsBackends ?? false;
    this.memoryLimit = memoryLimitBytes(config, deps.systemMemoryBytes);
    this.promptStore = promptStoreOf(config);
    this.warmupDone = new Promise((resolve) => (this.resolveWarmupDone = resolve));
    this.events = new CacheEventSource((event, error) =>
      this.logger?.warn("a cache event listener threw", { event, error: messageOf(error) }),
    );
    this.events.subscribeAll(deps.metrics ?? {}, (message) => new BadRequest(`metrics: ${message}`));
    this.book = new UsageBook(config.usage_half_life_hours, config.request_log_size);
    const { clock, time, book, events, logger, ledger, memoryLimit } = this;
    this.table = new EntryTable({
      config,
      memoryLimit,
      clock,
      time,
      ledger,
      book,
      events,
      logger,
      models,
      busyWaitMs: deps.busyWaitMs ?? DEFAULT_BUSY_WAIT_MS,
    });
    this.saver = new Saver({
      store: config.persist_cache ? (deps.store ?? null) : null,
      book,
      clock,
      intervalMs: config.persist_interval_seconds * 1000,
      timeoutMs: deps.storeTimeoutMs,
      entries: this.table,
      events,
      logger,
    });
    this.warmer = new Warmer({
      config,
      backendConfig,
      models,
      book,
      ledger,
      memoryLimit,
      time,
      entries: this.table,
      host: {
        load: (descriptor, signal) => this.loadForWarmup(descriptor, signal),
        settle: () => this.settleBackends(),
      },
      events,
      logger,
    });
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
  getModel(name: string, options: AcquireOptions = {}): Promise<LoadedModel> {
    const ready = this.readyFast(name, options);
    if (ready) {
      // No lease: the use ends now (the idle time starts, the use is timed).
      this.table.whenIdle(ready);
      return Promise.resolve(ready.state.model);
    }
    return this.obtainRequested(name, options).then((entry) => {
      this.table.whenIdle(entry);
      return entry.state.model;
    });
  }

  /**
   * Loads (or hits) a model, counts one use, and holds a lease until released. Waits (bounded) when every resident
   * model is leased. A hit on a ready model takes a synchronous path: no lookup awaits, no stat, no timer work.
   */
  acquire(name: string, options: AcquireOptions = {}): Promise<Lease> {
    const ready = this.readyFast(name, options);
    if (ready) return Promise.resolve(this.table.lease(ready));
    return this.obtainRequested(name, options).then((entry) => this.table.lease(entry));
  }

  /**
   * The hit without a single await, clock read or timer: the model source knows the name without I/O (`lookup`), the
   * entry is ready, its file check is not due and the request has nothing the slow path must handle. The use is
   * counted now and timed when it ends. Undefined otherwise.
   */
  private readyFast(name: string, options: AcquireOptions): ReadyEntry | undefined {
    if (this.closing || options.signal?.aborted) return undefined;
    const descriptor = this.models.lookup?.(name);
    if (!descriptor) return undefined;
    const entry = this.table.get(descriptor.key);
    if (!inService(entry) || entry.state.checkDue) return undefined;
    if (options.keepAlive !== undefined) validateKeepAlive(options.keepAlive);
    this.assertCapability(descriptor, options);
    this.table.hit(entry, options.keepAlive);
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
    const entry = descriptor ? this.table.get(descriptor.key) : undefined;
    if (!inService(entry) || this.closing) return null;
    return this.table.lease(entry);
  }

  /** A request's path to a ready entry: counted as a use, room made by eviction, keep_alive applied. */
  private async obtainRequested(name: string, options: AcquireOptions): Promise<ReadyEntry> {
    validateKeepAlive(options.keepAlive);
    const descriptor = await this.resolveCounted(name);
    this.assertCapability(descriptor, options);
    const entry = await this.obtain(descriptor, { count: true, allowEvict: true, signal: options.signal });
    this.table.applyKeepAlive(entry, options.keepAlive);
    return entry;
  }

  /** Refuses, before anything is loaded or evicted, a model that cannot do what the request needs. */
  private assertCapability(descriptor: ModelDescriptor, options: AcquireOptions): void {
    const needed = options.capability;
    if (needed === undefined || FORMAT_KIND[descriptor.format] === needed) return;
    throw capabilityMissing(descriptor, options.task ?? `${needed} generation`);
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

  /**
   * In a fleet, eviction weighs this node's models as a fleet node does (`FleetEviction`): spare copies first, load
   * times as `fleetLoadTimes` settles them. null: a single node.
   */
  setFleet(fleet: FleetEviction | null): void {
    this.table.limits.fleet = fleet;
  }

  /** Preload without counting a request (admin `load` route, `keep_alive`): loads if needed, sets keep-alive. */
  async load(name: string, options: { keepAlive?: KeepAlive; signal?: AbortSignal } = {}): Promise<LoadedModelInfo> {
    validateKeepAlive(options.keepAlive);
    this.assertOpen();
    const descriptor = await this.models.resolve(name);
    const entry = await this.obtain(descriptor, { count: false, allowEvict: true, signal: options.signal });
    this.table.applyKeepAlive(entry, options.keepAlive);
    this.table.whenIdle(entry);
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
    const entry = this.table.get(descriptor.key);
    if (!entry || leaving(entry)) return false;
    await this.table.retire(entry, "manual");
    return true;
  }

  private assertUnpinnedOrForced(key: string, name: string, force: boolean | undefined): void {
    if (this.table.isPinned(key) && !force) {
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
    let targets = [...this.table.values()].filter((e) => !leaving(e));
    let statsKeys: string[] | null = null;
    if (options.model !== undefined) {
      const { key, name } = await this.models.resolve(options.model);
      statsKeys = [key];
      this.assertUnpinnedOrForced(key, name, options.force);
      targets = targets.filter((e) => e.descriptor.key === key);
    } else if (!options.force) {
      targets = targets.filter((e) => !this.table.isPinned(e.descriptor.key));
    }
    await Promise.all(targets.map((e) => this.table.retire(e, "clear")));
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

  /** Counts and times one request (the slow path; the hit path counts in `EntryTable.hit` and times when it ends). */
  private recordUse(descriptor: ModelDescriptor, kind: UseKind): void {
    this.book.recordUse(descriptor, kind, this.time.now(), this.table.limits.inflation);
    if (this.events.wants(kind)) this.events.emit(kind, { name: descriptor.name, key: descriptor.key });
  }

  // ---------------------------------------------------------------- the single flight

  /** The ready entry for a model: joins a load in flight, starts one, or hits. Counts the request once. */
  private async obtain(descriptor: ModelDescriptor, options: ObtainOptions): Promise<ReadyEntry> {
    let counted = !options.count;
    for (;;) {
      this.assertOpen();
      const current = this.table.get(descriptor.key);
      if (current && (await this.table.fileChanged(current))) void this.table.retire(current, "file_changed");
      const entry = this.table.get(descriptor.key);
      if (entry?.state.kind === "unloading") {
        await abortable(entry.gone.promise, options.signal);
        continue;
      }
      if (!counted) {
        const kind = entry?.state.kind;
        this.recordUse(descriptor, kind === "ready" ? "hit" : kind === "loading" ? "coalesced" : "miss");
        counted = true;
      }
      const target = entry ?? this.table.startLoad(descriptor, (loading) => this.runLoad(loading, options.allowEvict));
      // A load that failed synchronously has already settled its entry: its promise still carries the cause.
      if (target.state.kind === "loading" || target !== entry) await this.table.join(target, options.signal);
      if (inService(target) && this.table.get(descriptor.key) === target) return target;
    }
  }

  private async runLoad(entry: Entry, allowEvict: boolean): Promise<LoadedModel> {
    const { descriptor } = entry;
    const { name, key } = descriptor;
    try {
      const backend = this.backends[descriptor.format];
      if (!backend) throw new ModelLoadFailed(`no backend loads ${descriptor.format} models (${descriptor.name})`);
      // Auto `backend.parallel` takes as many sequences as fit the room the limits leave: estimate and load with them.
      const sequences =
        (await this.models.sequences?.(descriptor, this.backendConfig, this.table.limits.room(entry))) ?? null;
      const config = sequences ? { ...this.backendConfig, parallel: sequences.count } : this.backendConfig;
      const [estimate, gguf] = await Promise.all([
        this.models.estimateMemory(descriptor, config),
        this.ggufFacts(descriptor),
      ]);
      await this.table.admit(entry, estimate, allowEvict, sequences);
      // The runtime's one-time start-up (llama.cpp's) is not this model's load time.
      await backend.ready?.(this.backendConfig);
      this.events.emit("loading", { name, key, progress: 0, estimateBytes: estimate });
      const started = this.time.monotonic();
      const onProgress = (progress: number) =>
        this.events.emit("loading", { name, key, progress, estimateBytes: estimate });
      const model = await backend.load(descriptor, {
        backend: config,
        signal: entry.abort.signal,
        onProgress,
        ...(this.promptStore ? { promptStore: this.promptStore } : {}),
      });
      // Until the model is gone: it reports the prefixes it saves while it unloads.
      if (model.kind === "text") model.onPromptStore?.((event) => this.recordPrefix(descriptor, event));
      const loadMs = this.time.monotonic() - started;
      await this.table.assertMeasuredFits(entry, model);
      // Retired while it loaded (or while it was measured): the model never enters service.
      if (!this.table.markReady(entry, model, loadMs, gguf)) {
        await model.dispose();
        throw new Aborted(`loading ${descriptor.name} was cancelled`);
      }
      return model;
    } catch (error) {
      throw this.table.loadFailed(entry, error);
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

  // ---------------------------------------------------------------- warm-up (warmup.ts)

  /** Warm-up's load (`WarmupHost.load`): counts no request and never evicts; the model is idle once loaded. */
  private async loadForWarmup(descriptor: ModelDescriptor, signal: AbortSignal): Promise<LoadedModel> {
    const entry = await this.obtain(descriptor, { count: false, allowEvict: false, signal });
    this.table.whenIdle(entry);
    return entry.state.model;
  }

  /** `WarmupHost.settle`: every backend's background starts are over. */
  private async settleBackends(): Promise<void> {
    await Promise.all(Object.values(this.backends).map((backend) => backend?.settle?.()));
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

  /** Resolves `always_warm` and per-model overrides to keys (limits.ts); names that do not resolve are reported, not fatal. */
  private async resolvePins(): Promise<void> {
    const pins = await Pins.resolve(this.config, (name) => this.models.resolve(name), [...this.book.values()]);
    this.table.usePins(pins);
    for (const { name, error } of pins.unresolved) {
      this.logger?.warn("a model named in [cache] does not resolve", { model: name, error });
    }
    for (const [key, name] of pins.names) this.events.emit("pinned", { name, key });
  }

  // ---------------------------------------------------------------- statistics

  /** Counts one generation's prompt: how much of it the prompt cache held (see `PromptCacheStats`). */
  recordPrompt(usage: TokenUsage): void {
    const cached = usage.cachedPromptTokens ?? 0;
    const counts = this.promptCounts;
    counts.generations++;
    if (cached > 0) counts.hits++;
    counts.cached_tokens += cached;
    counts.evaluated_tokens += usage.promptTokens - cached;
  }

  /**
   * The saved prefixes' bytes on disk as found at start (the runtime reads the directory), until a model's prompt
   * store reports its own figure.
   */
  notePromptDiskBytes(bytes: Bytes): void {
    if (!this.promptStoreReported) this.promptCounts.disk_bytes = bytes;
  }

  /** Counts what a model's prompt store did and tells the `prefix` listeners. */
  private recordPrefix(descriptor: ModelDescriptor, event: PromptStoreEvent): void {
    const counts = this.promptCounts;
    const counter = PREFIX_COUNTERS[event.action];
    if (counter) counts[counter]++;
    counts.disk_bytes = event.diskBytes;
    this.promptStoreReported = true;
    const { action, tokens, bytes, diskBytes } = event;
    const { name, key } = descriptor;
    this.events.emit("prefix", { name, key, action, tokens, bytes, diskBytes, reason: event.reason ?? null });
    // The one line an operator gets for files refused (the request evaluated its prompt as usual): a scan that
    // refuses all of a swapped model's files at once says so once.
    if (action === "quarantined") {
      const said = `${key}\u0000${event.reason ?? ""}`;
      const now = this.time.monotonic();
      if (now - (this.quarantineLogged.get(said) ?? -Infinity) >= QUARANTINE_LOG_QUIET_MS) {
        this.quarantineLogged.set(said, now);
        this.logger?.warn("a saved prompt prefix was refused and moved to prompts/quarantine/", {
          model: name,
          reason: event.reason ?? null,
        });
      }
    }
  }

  /** The cheap numbers (O(1)): what `/health` and `/metrics` read, without building per-model statistics. */
  summary(): CacheSummary {
    const { hits, misses } = this.book.counters;
    return {
      hits,
      misses,
      hit_rate: hits + misses === 0 ? 0 : hits / (hits + misses),
      loads: this.book.counters.loads,
      load_failures: this.book.counters.load_failures,
      models_loaded: this.table.readyCount,
      max_cached_models: this.config.max_cached_models,
      memory_bytes: this.ledger.bytes,
      memory_limit_bytes: this.memoryLimit,
      unsaved_changes: this.book.unsaved,
      models_known: this.book.size,
      unknown_model_requests: this.book.counters.unknown_model_requests,
      coalesced: this.book.counters.coalesced,
      prompt_cache: { ...this.promptCounts },
    };
  }

  stats(): CacheStats {
    this.table.stampAll();
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
      prompt_cache: summary.prompt_cache,
    };
  }

  private modelStats(usage: Usage): ModelStats {
    const entry = this.table.get(usage.key);
    const now = this.time.now();
    const pinned = this.table.isPinned(usage.key);
    return modelStatsOf(this.book.persisted(usage, now, pinned), now, this.config.usage_half_life_hours, {
      loaded: inService(entry),
      pinned,
      memory_bytes: entry?.reservation?.bytes ?? 0,
      expires_at: iso(this.table.expiresAt(entry)),
    });
  }

  /** Resident (and loading) models, for `GET /v1/cache/models` and `inferno ps`. */
  loadedModels(): LoadedModelInfo[] {
    this.table.stampAll();
    return [...this.table.values()].map((e) => this.info(e)).sort((a, b) => a.name.localeCompare(b.name));
  }

  private info(entry: Entry): LoadedModelInfo {
    const usage = this.book.get(entry.descriptor.key);
    return {
      name: entry.descriptor.name,
      key: entry.descriptor.key,
      format: entry.descriptor.format,
      state: entry.state.kind,
      size_bytes: entry.descriptor.fingerprint.size,
      memory_bytes: entry.reservation?.bytes ?? 0,
      leases: entry.leases,
      pinned: this.table.isPinned(entry.descriptor.key),
      last_used: iso(usage?.lastUsedAt ?? null),
      expires_at: iso(this.table.expiresAt(entry)),
      load_ms: entry.state.kind === "loading" ? null : entry.state.loadMs,
      pid: modelOf(entry)?.pid ?? null,
      sequences: entry.sequences?.count ?? null,
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
    return this.book.snapshot(this.clock.now(), (key) => this.table.isPinned(key));
  }

  /** Saves the state now (persistence on), one save at a time. Never throws: failures are reported in `last_save`. */
  saveCache(): Promise<LastSave> {
    return this.saver.save();
  }

  // ---------------------------------------------------------------- lifecycle and events

  private assertOpen(): void {
    this.table.assertOpen();
  }

  /** Final save, unloads everything (reason "shutdown"), stops timers. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.table.close();
    this.saver.stop();
    this.warmer.abort.abort();
    await this.warmupDone;
    await Promise.all([...this.table.values()].map((e) => this.table.retire(e, "shutdown", true)));
    if (this.saver.path !== null) await this.saver.save();
    if (this.ownsBackends) for (const backend of Object.values(this.backends)) await backend?.dispose();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Subscribes to an event; returns the unsubscribe function. An unknown event name is a `BadRequest`. */
  on<E extends keyof CacheEvents>(event: E, listener: (payload: CacheEvents[E]) => void): () => void {
    checkListener(event, listener, (message) => new BadRequest(`on: ${message}`));
    return this.events.on(event, listener);
  }

  /** Subscribes to every event, each with its `type` (for streams); returns the unsubscribe function. */
  onAny(listener: (event: CacheEvent) => void): () => void {
    return this.events.onAny(listener);
  }
}
