/**
 * The composition root: configuration → ModelManager → backends → state store → ModelCache, and the shutdown order
 * that undoes it (the server stops first — see serve.ts —, then the cache saves and unloads, then the backends go).
 */
import type { Writable } from "node:stream";
import { createBackends, disposeBackends } from "../backends/index.js";
import { promptStoreBytes } from "../backends/prompt-store.js";
import type { BackendRegistry } from "../backends/types.js";
import { ModelCache } from "../cache/model-cache.js";
import { Disposed } from "../errors/index.js";
import type { CacheEvents } from "../cache/types.js";
import type { InfernoConfig } from "../config/schema.js";
import { ModelManager } from "../models/manager.js";
import type { StoreEnvironment } from "../models/stores/index.js";
import type { Bytes } from "../models/types.js";
import { totalmem } from "node:os";
import type { AdviceReport } from "../cache/sim/advise.js";
import { fleetSettings } from "../fleet/settings.js";
import { adviseOn, singleFlight } from "./advice.js";
import { DEFAULT_TARGET_HIT_RATE, retarget } from "./fleet-advice.js";
import { FleetNode, FleetStateStore } from "./fleet.js";
import { type InfernoLogger, silentLogger } from "./logger.js";
import { cacheDependencies } from "./model-cache.js";
import { observeLoads, ProgressLine } from "./progress.js";
import type { ServerRuntime } from "./types.js";

export interface RuntimeOptions {
  /** Where the runtime and the cache log. Default: silent. */
  logger?: InfernoLogger;
  /** A terminal stream for the model-load progress line; drawn only when it is a TTY. */
  progress?: Writable & { isTTY?: boolean };
  /**
   * Backends by format. Default: the real ones (`createBackends(config.backend)`: llama.cpp for GGUF — in model hosts
   * unless `backend.isolation = "in-process"` —, ONNX Runtime for ONNX).
   */
  backends?: BackendRegistry;
  /** Total system memory for `max_memory_mb = 0` (auto = half of it). Default: `os.totalmem()`. */
  systemMemoryBytes?: Bytes;
  /** Where `model_stores` are looked for (variables such as `OLLAMA_MODELS`, the home directory). Default: this process's. */
  environment?: StoreEnvironment;
}

/** A running Inferno: configuration, models, cache and logger, closed once with `close()`. */
export class Runtime implements ServerRuntime, AsyncDisposable {
  private closing: Promise<void> | null = null;
  /** This node's fleet once joined (`joinFleet`); null for a single node. */
  fleet: FleetNode | null = null;
  /** The cache's store in a fleet (its saves also go to the fleet once joined); null otherwise. */
  fleetStore: FleetStateStore | null = null;

  constructor(
    readonly config: InfernoConfig,
    readonly models: ModelManager,
    readonly cache: ModelCache,
    readonly logger: InfernoLogger,
    private readonly backends: BackendRegistry,
    private readonly stopLogging: () => void,
    /**
     * The runtimes' one-time start-up (llama.cpp), by format, in milliseconds: started at creation in parallel with the
     * restore and recorded here, apart from every model's load time. Filled in when each start-up ends.
     */
    readonly startupMs: Partial<Record<string, number>> = {},
    /** Total system memory (`max_memory_mb = 0` is half of it; `advise` tries no more than it). */
    private readonly systemMemoryBytes: Bytes = totalmem(),
  ) {}

  /**
   * What other cache settings would have done with the logged requests (cache/sim/advise.ts), on a worker thread. A
   * property, not a method, so a runtime spread into another (`{ ...runtime, config }`) keeps it. One at a time.
   */
  readonly advise = async (options: { targetHitRate?: number } = {}): Promise<AdviceReport> => {
    const report = await this.adviseOnce();
    return report.fleet
      ? { ...report, fleet: retarget(report.fleet, options.targetHitRate ?? DEFAULT_TARGET_HIT_RATE) }
      : report;
  };

  /** One replay at a time (the target hit rate only picks among its rows). In a fleet: the fleet's merged log too. */
  private readonly adviseOnce = singleFlight(async () => {
    const { cache, fleet } = this.config;
    const state = this.fleet && this.fleet.status() === "ok" ? await this.fleet.member.loadUsage() : undefined;
    return adviseOn({
      state: this.cache.snapshot(),
      config: cache,
      systemMemoryBytes: this.systemMemoryBytes,
      ...(state !== undefined && this.fleet
        ? {
            fleet: {
              state,
              nodes: Math.max(1, this.fleet.member.mirror.liveNodes().length),
              config: cache,
              systemMemoryBytes: this.systemMemoryBytes,
              scaleUpRpm: fleet.scale_up_rpm,
              heartbeatMs: fleet.heartbeat_seconds * 1000,
              targetHitRate: DEFAULT_TARGET_HIT_RATE,
            },
          }
        : {}),
    });
  });

  /**
   * Joins the fleet when `fleet.redis_url` is set (a no-op otherwise): called once the server listens on `port`, the
   * port peers dial unless `fleet.advertise_url` says otherwise. Never throws for a Redis outage (the node starts
   * degraded).
   */
  async joinFleet(port: number, version = "unknown"): Promise<void> {
    const settings = fleetSettings(this.config, port);
    if (settings === null || this.fleet !== null || this.closing !== null) return;
    this.fleet = await FleetNode.join({
      settings,
      cache: this.cache,
      models: this.models,
      logger: this.logger,
      version,
      store: this.fleetStore,
      restoreWindowMs: this.config.cache.restore_window_hours * 3600_000,
      halfLifeHours: this.config.cache.usage_half_life_hours,
    });
  }

  /**
   * SIGTERM in a fleet: marks the node draining and loads its models elsewhere before the server stops (a no-op for a
   * single node). Never throws: a drain that fails leaves the node to stop as it would alone.
   */
  async drainFleet(): Promise<void> {
    if (!this.fleet) return;
    try {
      const { moved, left, failed } = await this.fleet.drain();
      this.logger.info(
        { moved, left, failed },
        `fleet: drained: ${moved.length} model(s) now served elsewhere, ${left.length} unused for an hour left to go, ${failed.length} could not move`,
      );
    } catch (error) {
      this.logger.warn({}, `fleet: drain failed: ${(error as Error).message}`);
    }
  }

  /** Final save, unload every model (reason `shutdown`), dispose the backends. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private async shutdown(): Promise<void> {
    try {
      // Leaving first: peers stop routing here before the models go; the last usage reaches the fleet before it.
      if (this.fleet) await this.cache.saveCache().catch(() => undefined);
      await this.fleet?.close().catch((error: unknown) => this.logger.warn({}, `fleet: ${(error as Error).message}`));
      await this.cache.close();
      const { last_save: save, state_file: stateFile } = this.cache.stats();
      if (save.ok === false) this.logger.warn({ error: save.error }, "the cache state could not be saved");
      else if (save.ok === true)
        this.logger.info({ state_file: stateFile, bytes: save.bytes }, `saved the cache state to ${stateFile}`);
    } finally {
      this.stopLogging();
      await disposeBackends(this.backends);
    }
  }
}

/**
 * Logs what the cache does that its own logger does not: loads, evictions, the warm-up summary, saves. (Failures —
 * failed loads, failed saves, a refused state file — the cache reports itself through the logger it is given.)
 * Returns the unsubscribe function.
 */
/** How many entries of a list a log line names; the rest are counted (`… and N more`). */
const LOGGED_ENTRIES = 20;

function firstFew<T>(list: readonly T[]): Array<T | string> {
  return list.length <= LOGGED_ENTRIES
    ? [...list]
    : [...list.slice(0, LOGGED_ENTRIES), `… and ${list.length - LOGGED_ENTRIES} more`];
}

function logCacheEvents(cache: ModelCache, logger: InfernoLogger, progress: ProgressLine | null): () => void {
  const clearProgress = () => progress?.clear();
  const handlers: { [E in keyof CacheEvents]?: (payload: CacheEvents[E]) => void } = {
    load: ({ name, durationMs, memoryBytes }) => {
      clearProgress();
      logger.info({ model: name, ms: Math.round(durationMs), memory_bytes: memoryBytes }, `loaded ${name}`);
    },
    load_failed: clearProgress,
    evict: ({ name, reason }) => logger.info({ model: name, reason }, `unloaded ${name} (${reason})`),
    warmup: ({ loaded, skipped, failed }) => {
      if (loaded.length + skipped.length + failed.length === 0) return;
      // A saved state may name up to 100,000 models: the log line names the first few of each list, not all.
      logger.info(
        { loaded: firstFew(loaded), skipped: firstFew(skipped), failed: firstFew(failed) },
        `warm-up: ${loaded.length} loaded, ${failed.length} failed, ${skipped.length} skipped`,
      );
    },
    save: ({ ok, bytes }) => {
      if (ok) logger.debug({ bytes }, "cache state saved");
    },
  };
  const offs = Object.entries(handlers).map(([event, handler]) =>
    cache.on(event as keyof CacheEvents, handler as (payload: unknown) => void),
  );
  return () => {
    for (const off of offs) off();
  };
}

function cacheLogger(logger: InfernoLogger) {
  return {
    info: (message: string, fields?: Record<string, unknown>) => logger.info(fields ?? {}, message),
    warn: (message: string, fields?: Record<string, unknown>) => logger.warn(fields ?? {}, message),
    debug: (message: string, fields?: Record<string, unknown>) => logger.debug(fields ?? {}, message),
  };
}

/** Builds the runtime for a loaded configuration. The cache restores its saved state and starts warm-up in the background. */
export async function createRuntime(config: InfernoConfig, options: RuntimeOptions = {}): Promise<Runtime> {
  const logger = options.logger ?? silentLogger();
  const models = ModelManager.fromConfig(config, options.environment);
  const progress = options.progress?.isTTY ? new ProgressLine(options.progress) : null;
  const real = options.backends ?? createBackends(config.backend);
  const backends = progress ? observeLoads(real, progress.update) : real;
  const startupMs: Partial<Record<string, number>> = {};
  const started = startBackends(real, config, logger, startupMs);
  let cache: ModelCache;
  let fleetStore: FleetStateStore | null = null;
  try {
    const deps = cacheDependencies(config.cache, {
      backends,
      logger: cacheLogger(logger),
      systemMemoryBytes: options.systemMemoryBytes,
    });
    // In a fleet, saves also go to the fleet's merged statistics once the node joined (runtime/fleet.ts).
    if (deps.store && fleetSettings(config) !== null) deps.store = fleetStore = new FleetStateStore(deps.store);
    // In a fleet the fleet's warm-up places the used models across the nodes (runtime/fleet-warmup.ts): a node warms
    // only its pinned models on its own, so no model loads on every node at a fleet start.
    const fleetWarmsUp = fleetSettings(config) !== null && config.cache.warmup_strategy !== "none";
    const cacheConfig = fleetWarmsUp ? { ...config.cache, warmup_strategy: "priority" as const } : config.cache;
    cache = await ModelCache.create(cacheConfig, config.backend, models, deps);
  } catch (error) {
    await started;
    await disposeBackends(real);
    throw error;
  }
  const stopLogging = logCacheEvents(cache, logger, progress);
  if (config.cache.prompt_cache_mb > 0) {
    const found = await promptStoreBytes(config.cache.cache_dir).catch(() => 0);
    cache.notePromptDiskBytes(found);
  }
  const { models: known, state_file: stateFile } = cache.stats();
  if (known.length > 0) {
    logger.info(
      { models: known.length, state_file: stateFile },
      `restored the usage statistics of ${known.length} model(s)`,
    );
  }
  const runtime = new Runtime(
    config,
    models,
    cache,
    logger,
    real,
    stopLogging,
    startupMs,
    options.systemMemoryBytes ?? totalmem(),
  );
  runtime.fleetStore = fleetStore;
  return runtime;
}

/**
 * Starts each backend's runtime now (llama.cpp's start-up takes 0.5–2 s), in parallel with the restore, so the first
 * load does not carry it; its time is logged and recorded apart. A failure is logged; the loads then report it.
 */
function startBackends(
  backends: BackendRegistry,
  config: InfernoConfig,
  logger: InfernoLogger,
  startupMs: Partial<Record<string, number>>,
): Promise<void> {
  const starts = Object.entries(backends).map(async ([format, backend]) => {
    if (!backend?.ready) return;
    // Without a spare model host (`backend.spare_host = false`) nothing is started ahead: each load starts its host.
    if (format === "gguf" && config.backend.isolation === "process" && !config.backend.spare_host) return;
    const t0 = performance.now();
    try {
      await backend.ready(config.backend);
      startupMs[format] = performance.now() - t0;
      logger.debug({ format, ms: Math.round(startupMs[format] ?? 0) }, `${format} runtime started`);
    } catch (error) {
      // A runtime closed while it started (Ctrl-C at start) failed nothing: a quiet line for --verbose only.
      const level = error instanceof Disposed ? "debug" : "warn";
      logger[level]({ format, error: (error as Error).message }, `the ${format} runtime could not start`);
    }
  });
  return Promise.all(starts).then(() => undefined);
}
