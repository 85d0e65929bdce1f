/**
 * ModelCache: which models are resident, loaded once however many requests want them, held by leases, bounded by
 * count and memory, expired by idle TTL, warmed at start and remembered across restarts.
 *
 * No I/O of its own: backends, the model source, the clock and the state store are injected. Each model has at most
 * one `Entry`; the entry itself is the single flight (a loading entry holds the load promise and its AbortController),
 * so there is no separate in-flight map to keep in sync. The rules live in their own modules and this class composes
 * them: pins (pins.ts), statistics and the saved record (usage.ts), saving (saver.ts), events (events.ts), memory
 * reservations (memory.ts), and the pure policies (policy/).
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
import { type Bytes, type Fingerprint, type ModelDescriptor, type ModelSource, sameFileVersion } from "../models/types.js";
import { systemClock } from "./clock.js";
import { CacheEventSource, type CacheEvent, type CacheEvents, type CacheMetrics } from "./events.js";
import { MemoryLedger, type Reservation } from "./memory.js";
import type { CacheState, PersistedGgufFacts, StateStore } from "./persistence/types.js";
import { Pins } from "./pins.js";
import { chooseVictims, type EvictionCandidate, nextInflation } from "./policy/eviction.js";
import { decayedValue } from "./policy/frequency.js";
import { planWarmup, type WarmupCandidate } from "./policy/warmup.js";
import { Saver } from "./saver.js";
import { iso, memoryLimitBytes, modelStatsOf, warmupCandidateOf } from "./state-view.js";
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
  type TimerHandle,
  type WarmupProgress,
  type WarmupResult,
  type WarmupStrategy,
} from "./types.js";
import { type Usage, UsageBook, type UseKind } from "./usage.js";

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

const MIB = 1024 * 1024;
const DAY_MS = 24 * 3600_000;
/** A hit re-checks the model file's size and mtime at most this often (ms), so hits cost no `stat` each. */
export const FINGERPRINT_CHECK_INTERVAL_MS = 5000;
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
  /** Counted against the limits from admission until the model is disposed; releases itself once. */
  reservation: Reservation | null;
  leases: number;
  /** Requests awaiting the load: the fresh model is not evictable until they took their leases. */
  waiters: number;
  /** Request `keep_alive`, replacing the configured TTL until another request sets one. */
  keepAlive: KeepAlive | null;
  /** Monotonic time the model became idle (last lease ended, or a lease-free use); the TTL counts from here. */
  idleSince: number;
  /** The same moment in wall-clock time, for `expires_at` (read once, so repeated reports agree to the millisecond). */
  idleSinceWall: number;
  /** The armed expiry timer and when it fires (monotonic); checked lazily — hits never re-arm it. */
  expiry: { handle: TimerHandle; dueAt: number } | null;
  retireReason: EvictionReason | null;
  /** Resolves once the entry has left the map (unloaded or failed). */
  gone: Deferred;
  /** The file version this entry loaded, and when (monotonic) that was last compared with the file. */
  fingerprint: Fingerprint;
  checkedAt: number;
  loadMs: number | null;
  /** Monotonic time the model became ready. */
  readyAt: number | null;
}

interface ObtainOptions {
  /** Count this as a request (hit/miss/coalesced, last use, frequency). */
  count: boolean;
  /** Evict idle models to make room (warm-up never does). */
  allowEvict: boolean;
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

function validateKeepAlive(keepAlive: KeepAlive | undefined): void {
  if (keepAlive === undefined || keepAlive === "forever") return;
  const seconds = keepAlive?.afterSeconds;
  if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds < 0) {
    throw new BadRequest(`keepAlive must be "forever" or { afterSeconds: N } with N ≥ 0 seconds; found ${JSON.stringify(keepAlive)}`);
  }
}

function sameKeepAlive(a: KeepAlive | null, b: KeepAlive | null): boolean {
  if (a === b) return true;
  if (a === null || b === null || a === "forever" || b === "forever") return false;
  return a.afterSeconds === b.afterSeconds;
}

/** A request's hold on a ready model. A class, not closures: a hit allocates one small object. */
class EntryLease implements Lease {
  private released = false;
  readonly model: LoadedModel;

  constructor(
    private readonly entry: Entry,
    private readonly ended: (entry: Entry) => void,
  ) {
    this.model = entry.model as LoadedModel;
  }

  get descriptor(): ModelDescriptor {
    return this.entry.descriptor;
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.entry.leases--;
    this.ended(this.entry);
  }

  [Symbol.dispose](): void {
    this.release();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.release();
  }
}

function errorCode(error: unknown): string {
  return error instanceof InfernoError ? error.code : "model_load_failed";
}

export class ModelCache implements AsyncDisposable {
  /** Resolves when the start-up warm-up (started by `create`) has finished. Never rejects. */
  readonly warmupDone: Promise<WarmupResult>;
  /**
   * What the start-up restore found (the `restore` event fires inside `create`, before anyone can subscribe, so the
   * result is kept here too): models restored, how many of them have no file now, and the warning, if any.
   */
  restored: CacheEvents["restore"] = { models: 0, missing: 0, warning: null };
  private resolveWarmupDone!: (result: WarmupResult) => void;

  private readonly clock: Clock;
  private readonly logger: CacheLogger | undefined;
  private readonly backends: BackendRegistry;
  private readonly busyWaitMs: number;
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
  /** Model key → monotonic time until which loads are refused after a failure. */
  private readonly cooldowns = new Map<string, number>();
  /** Model key → monotonic time of its last crash: a second crash soon after starts the load-failure cooldown. */
  private readonly crashes = new Map<string, number>();
  private readonly capacityWaiters = new Set<() => void>();
  private inflation = 0;
  private readonly warmupAbort = new AbortController();
  private closing: Promise<void> | null = null;

  private constructor(
    private readonly config: CacheConfig,
    private readonly backendConfig: BackendConfig,
    private readonly models: ModelSource,
    deps: CacheDependencies,
  ) {
    this.backends = deps.backends;
    this.clock = deps.clock ?? systemClock;
    this.logger = deps.logger;
    this.busyWaitMs = deps.busyWaitMs ?? DEFAULT_BUSY_WAIT_MS;
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
      onSave: (save) => this.events.emit("save", save),
      warn: (message, fields) => this.logger?.warn(message, fields),
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
    void cache.startupWarmup().then((result) => cache.resolveWarmupDone(result));
    return cache;
  }

  // ---------------------------------------------------------------- requests

  /** Loads (or hits) a model and counts one use. Holds no lease: prefer acquire/withModel for requests. */
  getModel(name: string, options: AcquireOptions = {}): Promise<LoadedModel> {
    const ready = this.readyFast(name, options);
    if (ready) {
      if (ready.leases === 0 && ready.expiry === null) this.whenIdle(ready);
      return Promise.resolve(ready.model as LoadedModel);
    }
    return this.obtainRequested(name, options).then((entry) => {
      this.whenIdle(entry);
      return entry.model as LoadedModel;
    });
  }

  /**
   * Loads (or hits) a model, counts one use, and holds a lease until released. Waits (bounded) when every resident
   * model is leased. A hit on a ready model takes a synchronous path: no lookup awaits, no stat, no timer work.
   */
  acquire(name: string, options: AcquireOptions = {}): Promise<Lease> {
    const ready = this.readyFast(name, options);
    if (ready) return Promise.resolve(this.lease(ready));
    return this.obtainRequested(name, options).then((entry) => this.lease(entry));
  }

  /**
   * The hit without a single await: the model source knows the name without I/O (`lookup`), the entry is ready, its
   * file check is not due and the request has nothing the slow path must handle. Undefined otherwise.
   */
  private readyFast(name: string, options: AcquireOptions): Entry | undefined {
    if (this.closing || options.signal?.aborted) return undefined;
    const descriptor = this.models.lookup?.(name);
    if (!descriptor) return undefined;
    const entry = this.entries.get(descriptor.key);
    if (!entry || entry.state !== "ready" || entry.retireReason !== null) return undefined;
    const now = this.clock.monotonic();
    if (now - entry.checkedAt >= FINGERPRINT_CHECK_INTERVAL_MS) return undefined;
    if (options.keepAlive !== undefined) validateKeepAlive(options.keepAlive);
    this.assertCapability(descriptor, options);
    entry.idleSinceWall = this.recordUse(descriptor, "hit");
    this.applyKeepAlive(entry, options.keepAlive);
    // A use: the idle time counts from now (the armed expiry, if any, finds that out when it fires).
    entry.idleSince = now;
    return entry;
  }

  /** A request's path to a ready entry: counted as a use, room made by eviction, keep_alive applied. */
  private async obtainRequested(name: string, options: AcquireOptions): Promise<Entry> {
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

  /** Counts one request; returns the wall-clock time it was counted at. */
  private recordUse(descriptor: ModelDescriptor, kind: UseKind): number {
    const now = this.clock.now();
    this.book.recordUse(descriptor, kind, now, this.inflation);
    const { name, key } = descriptor;
    if (this.events.wants(kind)) this.events.emit(kind, { name, key });
    return now;
  }

  private recordLoad(entry: Entry, model: LoadedModel, loadMs: number, gguf: PersistedGgufFacts | null): void {
    this.book.recordLoad(entry.descriptor, { fingerprint: entry.fingerprint, loadMs, memoryBytes: model.memoryBytes, gguf });
    const { name, key } = entry.descriptor;
    this.events.emit("load", { name, key, durationMs: loadMs, memoryBytes: model.memoryBytes });
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
        this.recordUse(descriptor, entry?.state === "ready" ? "hit" : entry?.state === "loading" ? "coalesced" : "miss");
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

  /** Whether a ready entry's file changed: compared at most once per interval per model (a hit costs no stat). */
  private async fileChanged(entry: Entry): Promise<boolean> {
    if (entry.state !== "ready" || entry.retireReason !== null) return false;
    const now = this.clock.monotonic();
    if (now - entry.checkedAt < FINGERPRINT_CHECK_INTERVAL_MS) return false;
    entry.checkedAt = now;
    const current = await this.models.fingerprint(entry.descriptor.key);
    if (current && sameFileVersion(current, entry.fingerprint)) return false;
    if (current) this.book.recordFileVersion(entry.descriptor.key, current);
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
    const known = this.book.get(descriptor.key)?.fingerprint;
    const entry: Entry = {
      descriptor,
      state: "loading",
      promise: Promise.resolve(null as never),
      abort: new AbortController(),
      model: null,
      reservation: null,
      leases: 0,
      waiters: 0,
      keepAlive: null,
      idleSince: now,
      idleSinceWall: this.clock.now(),
      expiry: null,
      retireReason: null,
      gone: deferred(),
      // The newer of what resolve saw and what a file check last saw (a cached descriptor may be older).
      fingerprint: known && known.mtimeMs > descriptor.fingerprint.mtimeMs ? known : descriptor.fingerprint,
      checkedAt: now,
      loadMs: null,
      readyAt: null,
    };
    this.entries.set(descriptor.key, entry);
    entry.promise = this.runLoad(entry, allowEvict);
    entry.promise.catch(() => {});
    return entry;
  }

  private async runLoad(entry: Entry, allowEvict: boolean): Promise<LoadedModel> {
    const { descriptor } = entry;
    const { name, key } = descriptor;
    try {
      const backend = this.backends[descriptor.format];
      if (!backend) throw new ModelLoadFailed(`no backend loads ${descriptor.format} models (${descriptor.name})`);
      const [estimate, gguf] = await Promise.all([
        this.models.estimateMemory(descriptor, this.backendConfig),
        this.ggufFacts(descriptor),
      ]);
      await this.admit(entry, estimate, allowEvict);
      // The runtime's one-time start-up (llama.cpp's) is not this model's load time.
      await backend.ready?.(this.backendConfig);
      this.events.emit("loading", { name, key, progress: 0, estimateBytes: estimate });
      const started = this.clock.monotonic();
      const onProgress = (progress: number) => this.events.emit("loading", { name, key, progress, estimateBytes: estimate });
      const model = await backend.load(descriptor, { backend: this.backendConfig, signal: entry.abort.signal, onProgress });
      const loadMs = this.clock.monotonic() - started;
      if (entry.abort.signal.aborted) {
        await model.dispose();
        throw new Aborted(`loading ${descriptor.name} was cancelled`);
      }
      await this.assertMeasuredFits(entry, model);
      entry.model = model;
      entry.reservation?.resize(model.memoryBytes);
      entry.loadMs = loadMs;
      entry.state = "ready";
      entry.readyAt = this.clock.monotonic();
      entry.idleSince = entry.readyAt;
      entry.idleSinceWall = this.clock.now();
      this.readyCount++;
      this.recordLoad(entry, model, loadMs, gguf);
      void model.crashed?.then((error) => this.crashed(entry, model, error));
      model.onMemoryChange?.((bytes) => this.remeasured(entry, model, bytes));
      if (entry.waiters === 0) this.whenIdle(entry);
      this.enforceLimits();
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
    entry.reservation?.release();
    entry.gone.resolve();
    this.notifyCapacity();
    if (entry.abort.signal.aborted) return new Aborted(`loading ${name} was cancelled (${entry.retireReason ?? "aborted"})`);
    if (error instanceof ModelTooLarge || error instanceof CacheBusy || error instanceof Disposed) return error;
    this.book.recordLoadFailure(key);
    const cooldownMs = this.config.load_failure_cooldown_seconds * 1000;
    if (cooldownMs > 0) this.cooldowns.set(key, this.clock.monotonic() + cooldownMs);
    const typed =
      error instanceof InfernoError
        ? error
        : new ModelLoadFailed(`could not load ${name}: ${messageOf(error)}`, { cause: error, details: { model: name } });
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
    if (entry.model !== model) return;
    const { name, key } = entry.descriptor;
    const now = this.clock.monotonic();
    const cooldownMs = this.config.load_failure_cooldown_seconds * 1000;
    const previous = this.crashes.get(key);
    this.crashes.set(key, now);
    const repeated = previous !== undefined && now - previous < cooldownMs;
    if (repeated) this.cooldowns.set(key, now + cooldownMs);
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
    if (entry.model !== model || !entry.reservation || entry.reservation.bytes === bytes) return;
    entry.reservation.resize(bytes);
    this.enforceLimits();
  }

  // ---------------------------------------------------------------- limits

  private isPinned(entry: Entry): boolean {
    return this.pins.has(entry.descriptor.key);
  }

  private admittedEntries(): Entry[] {
    return [...this.entries.values()].filter((e) => e.reservation !== null && !e.reservation.released);
  }

  /** Refuses a model that could not fit even with every evictable model gone (pinned models never go). */
  private assertCanEverFit(entry: Entry, bytes: Bytes): void {
    const pinnedOthers = this.admittedEntries().filter((e) => e !== entry && this.isPinned(e) && e.retireReason === null);
    const pinnedBytes = pinnedOthers.reduce((sum, e) => sum + (e.reservation?.bytes ?? 0), 0);
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

  /** How far over the limits the cache would be with `extra` more models of `bytes` in total (0, 0: as it is now). */
  private shortfall(extra: number, bytes: Bytes): { count: number; bytes: Bytes } {
    return {
      count: this.ledger.count + extra - this.config.max_cached_models,
      bytes: this.memoryLimit > 0 ? this.ledger.bytes + bytes - this.memoryLimit : 0,
    };
  }

  private evictionCandidates(except: Entry | null): EvictionCandidate[] {
    const now = this.clock.now();
    return this.admittedEntries()
      .filter((e) => e !== except && e.state === "ready" && e.retireReason === null && e.leases === 0 && e.waiters === 0 && !this.isPinned(e))
      .map((e) => {
        const usage = this.book.get(e.descriptor.key);
        return {
          key: e.descriptor.key,
          lastUsedAt: usage?.lastUsedAt ?? null,
          memoryBytes: e.reservation?.bytes ?? 0,
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
      const shortfall = this.shortfall(1, estimate);
      if (shortfall.count <= 0 && shortfall.bytes <= 0) {
        entry.reservation = this.ledger.reserve(estimate);
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

  /**
   * Brings both limits back as far as idle models allow. Called after every load, lease release and keep-alive change,
   * so a model measured larger than its estimate while others were leased is made up for as soon as a lease ends.
   */
  private enforceLimits(): void {
    const over = this.shortfall(0, 0);
    if (over.count <= 0 && over.bytes <= 0) return;
    // Models already on their way out hold their reservations until disposed (a model host takes a moment to end):
    // they are as good as gone, or every lease released meanwhile would evict one more model.
    const leaving = this.admittedEntries().filter((e) => e.retireReason !== null);
    const count = over.count - leaving.length;
    const bytes = over.bytes - leaving.reduce((sum, e) => sum + (e.reservation?.bytes ?? 0), 0);
    if (count <= 0 && bytes <= 0) return;
    void this.evictFor({ count: Math.max(0, count), bytes: Math.max(0, bytes) }, null).then((done) => {
      if (!done) this.logger?.debug?.("over the cache limits until leased models are released", { over_models: count, over_bytes: bytes });
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
    return new EntryLease(entry, this.leaseEnded);
  }

  /** A lease ended (its entry's count already dropped): the TTL may start, waiting loads may fit, limits may hold again. */
  private readonly leaseEnded = (entry: Entry): void => {
    if (entry.leases > 0) return;
    this.whenIdle(entry);
    if (this.capacityWaiters.size > 0) this.notifyCapacity();
    this.enforceLimits();
  };

  private applyKeepAlive(entry: Entry, keepAlive: KeepAlive | undefined): void {
    if (keepAlive === undefined || sameKeepAlive(entry.keepAlive, keepAlive)) return;
    entry.keepAlive = keepAlive;
    // A different idle time: the armed expiry no longer says when.
    this.cancelExpiry(entry);
  }

  /** Idle time (ms) before an idle model is unloaded; null = never. */
  private idleMs(entry: Entry): number | null {
    if (this.isPinned(entry)) return null;
    if (entry.keepAlive !== null) return entry.keepAlive === "forever" ? null : entry.keepAlive.afterSeconds * 1000;
    const ttl = this.pins.ttlSeconds(entry.descriptor.key) ?? this.config.model_ttl_seconds;
    return ttl === 0 ? null : ttl * 1000;
  }

  /**
   * Called when an entry may have become idle: finishes a pending unload, or (re)starts the idle TTL. The expiry timer
   * is armed only when none would fire in time; when it fires it checks whether the model really idled long enough.
   */
  private whenIdle(entry: Entry): void {
    if (entry.leases > 0 || this.entries.get(entry.descriptor.key) !== entry) return;
    if (entry.state === "unloading" && entry.model) {
      void this.finishUnload(entry);
      return;
    }
    if (entry.state !== "ready") return;
    entry.idleSince = this.clock.monotonic();
    entry.idleSinceWall = this.clock.now();
    const idleMs = this.idleMs(entry);
    if (idleMs === null) {
      this.cancelExpiry(entry);
      return;
    }
    if (idleMs === 0) {
      void this.retire(entry, "ttl");
      return;
    }
    this.armExpiry(entry, entry.idleSince + idleMs);
  }

  private armExpiry(entry: Entry, dueAt: number): void {
    if (entry.expiry && entry.expiry.dueAt <= dueAt) return;
    this.cancelExpiry(entry);
    const handle = this.clock.setTimeout(() => this.expire(entry), Math.max(0, dueAt - this.clock.monotonic()));
    handle.unref?.();
    entry.expiry = { handle, dueAt };
  }

  /** The expiry timer fired: unload if the model idled its full time, else wait for the rest of it. */
  private expire(entry: Entry): void {
    entry.expiry = null;
    if (entry.state !== "ready" || entry.retireReason !== null || entry.leases > 0) return;
    const idleMs = this.idleMs(entry);
    if (idleMs === null) return;
    const now = this.clock.monotonic();
    const dueAt = entry.idleSince + idleMs;
    if (now < dueAt) {
      this.armExpiry(entry, dueAt);
      return;
    }
    const { name, key } = entry.descriptor;
    this.events.emit("expired", { name, key, idleSeconds: (now - entry.idleSince) / 1000 });
    void this.retire(entry, "ttl");
  }

  private cancelExpiry(entry: Entry): void {
    if (!entry.expiry) return;
    this.clock.clearTimeout(entry.expiry.handle);
    entry.expiry = null;
  }

  /** Wall-clock time (ms) an idle model will be unloaded, or null (leased, pinned, no TTL, not ready). */
  private expiresAt(entry: Entry | undefined): number | null {
    if (!entry || entry.state !== "ready" || entry.retireReason !== null || entry.leases > 0) return null;
    const idleMs = this.idleMs(entry);
    if (idleMs === null) return null;
    return entry.idleSinceWall + idleMs;
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
        if (entry.state === "ready") this.readyCount--;
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
    const now = this.clock.monotonic();
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
    this.events.emit("evict", { name: entry.descriptor.name, key: entry.descriptor.key, reason, idleSeconds, residentSeconds });
    entry.gone.resolve();
    this.notifyCapacity();
  }
  // ---------------------------------------------------------------- warm-up

  /** Runs a warm-up now: given models, or ranked by a strategy (default: the configured one). */
  async warmup(options: { models?: string[]; strategy?: WarmupStrategy } = {}): Promise<WarmupResult> {
    return this.warmupWith(options, false);
  }

  /**
   * The start-up warm-up as it goes: its plan (model names, in order) and how many of them are settled (loaded, skipped
   * or failed). Null until the plan is made; stays once warm-up is over.
   */
  startupWarmupProgress(): WarmupProgress | null {
    if (!this.startupWarmupState) return null;
    const { plan, result, skippedBefore } = this.startupWarmupState;
    const settled = result.loaded.length + result.failed.length + result.skipped.length - skippedBefore;
    return { plan: plan.map((d) => d.name), settled: Math.min(settled, plan.length), loaded: [...result.loaded] };
  }

  private startupWarmupState: { plan: ModelDescriptor[]; result: WarmupResult; skippedBefore: number } | null = null;

  private async warmupWith(options: { models?: string[]; strategy?: WarmupStrategy }, startup: boolean): Promise<WarmupResult> {
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
    if (startup) this.startupWarmupState = { plan, result, skippedBefore: result.skipped.length };
    await this.runWarmup(plan, result);
    this.events.emit("warmup", result);
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
    const keys = new Set([...this.book.keys(), ...this.pins.keys()]);
    const candidates: WarmupCandidate[] = [];
    const skipped: WarmupResult["skipped"] = [];
    for (const key of keys) {
      const descriptor = descriptors.get(key);
      const usage = this.book.get(key);
      if (!descriptor) {
        skipped.push({ name: usage?.name ?? key, reason: "model file not found" });
        continue;
      }
      if (this.entries.has(key)) continue;
      const saved = usage ? this.book.persisted(usage, now, this.pins.has(key)) : null;
      candidates.push(
        warmupCandidateOf(descriptor, saved, {
          now,
          halfLifeHours: this.config.usage_half_life_hours,
          alwaysWarmIndex: this.pins.alwaysWarmIndex(key),
          estimateBytes: usage?.memoryBytes ?? (await this.models.estimateMemory(descriptor, this.backendConfig)),
          fileChanged: usage?.fileChanged ?? false,
        }),
      );
    }
    const ranked = planWarmup(candidates, strategy, {
      now,
      maxModels: this.config.max_cached_models,
      memoryLimitBytes: this.memoryLimit,
      restoreWindowMs: this.config.restore_window_hours * 3600_000,
      residentCount: this.ledger.count,
      residentBytes: this.ledger.bytes,
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
      this.book.recordWarmup();
    } catch (error) {
      if (error instanceof CacheBusy) result.skipped.push({ name, reason: "no room without evicting another model" });
      else if (this.warmupAbort.signal.aborted) result.skipped.push({ name, reason: "the cache is closing" });
      else result.failed.push({ name, error: messageOf(error) });
    }
  }

  private async startupWarmup(): Promise<WarmupResult> {
    try {
      const strategy = this.config.enable_warmup ? this.config.warmup_strategy : "none";
      const result = await this.warmupWith({ strategy }, true);
      for (const failure of result.failed) this.logger?.warn("warm-up could not load a model", { ...failure });
      return result;
    } catch (error) {
      if (!(error instanceof Disposed)) this.logger?.warn("warm-up failed", { error: messageOf(error) });
      return { loaded: [], skipped: [], failed: [{ name: "*", error: messageOf(error) }] };
    }
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
    const now = this.clock.now();
    return modelStatsOf(this.book.persisted(usage, now, this.pins.has(usage.key)), now, this.config.usage_half_life_hours, {
      loaded: entry?.state === "ready",
      pinned: this.pins.has(usage.key),
      memory_bytes: entry?.reservation?.bytes ?? 0,
      expires_at: iso(this.expiresAt(entry)),
    });
  }

  /** Resident (and loading) models, for `GET /v1/cache/models` and `inferno ps`. */
  loadedModels(): LoadedModelInfo[] {
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
      pinned: this.isPinned(entry),
      last_used: iso(usage?.lastUsedAt ?? null),
      expires_at: iso(this.expiresAt(entry)),
      load_ms: entry.loadMs,
      pid: entry.model?.pid ?? null,
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
        const now = this.clock.now();
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
    this.warmupAbort.abort();
    this.notifyCapacity();
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
