/**
 * The library form of the model cache (SPEC.md):
 *
 *   const cache = await ModelCache.new(config.cache, config.backend, new ModelManager(config.models_dir));
 *
 * `ModelCache.new` composes the cache core with the real backends, the state file (when `persist_cache`) and the
 * machine's memory for the automatic limit. The core lives in src/cache (no I/O); this is the one place that wires it
 * to the world for library users. `ModelCache` is also the type of the cache, and `instanceof ModelCache` works.
 */
import { totalmem } from "node:os";
import { createBackends } from "../backends/index.js";
import type { BackendRegistry } from "../backends/types.js";
import { type CacheDependencies, type CacheLogger, ModelCache as CacheCore } from "../cache/model-cache.js";
import { FileStateStore } from "../cache/persistence/file-store.js";
import { StateWorker } from "../cache/persistence/state-worker.js";
import type { StateStore } from "../cache/persistence/types.js";
import { CACHE_EVENT_NAMES, type CacheMetrics } from "../cache/events.js";
import type { Clock } from "../cache/types.js";
import { BadRequest } from "../errors/index.js";
import type { BackendConfig, CacheConfig } from "../config/schema.js";
import type { Bytes, ModelSource } from "../models/types.js";

export interface ModelCacheOptions {
  /**
   * Backends by format. Default: the real ones (`createBackends(backendConfig)`: GGUF in model hosts unless
   * `backend.isolation = "in-process"`), disposed when the cache closes. Backends passed here stay the caller's to
   * dispose.
   */
  backends?: BackendRegistry;
  /** Where state is saved. Default: `<cache_dir>/cache_state.bin.zst` when `persist_cache`, else nothing. */
  store?: StateStore | null;
  /** Default: silent. */
  logger?: CacheLogger;
  /** Default: the system clock. */
  clock?: Clock;
  /** Total memory for `max_memory_mb = 0` (auto = half of it). Default: `os.totalmem()`. */
  systemMemoryBytes?: Bytes;
  /**
   * Listeners for the cache's events, keyed by event name: `{ hit, miss, load, load_failed, evict, save, restore,
   * warmup }`, each optional. They are subscribed before the saved state is restored and warm-up starts, so they also
   * receive the start-up `restore` event and warm-up's loads, which `cache.on(…)` after `new` resolves would miss.
   * Durations in payloads are milliseconds, sizes bytes. Default: none.
   */
  metrics?: CacheMetrics;
}

const OPTION_KEYS: ReadonlyArray<keyof ModelCacheOptions> = [
  "backends",
  "store",
  "logger",
  "clock",
  "systemMemoryBytes",
  "metrics",
];

/**
 * The fourth argument of `ModelCache.new`: the options object, or — the seed's call shape — a listener object
 * (`{ hit, miss, load, evict, … }`) given directly, which is taken as `{ metrics: listeners }`. A key that is neither
 * an option nor an event (a misspelling) is refused with `BadRequest` naming it and the known ones; so is mixing both.
 */
export function cacheOptionsOf(argument: ModelCacheOptions | CacheMetrics | undefined): ModelCacheOptions {
  if (argument === undefined || argument === null) return {};
  if (typeof argument !== "object") {
    throw new BadRequest(
      `ModelCache.new: the fourth argument must be an options object or a listener object; found ${typeof argument}`,
    );
  }
  const keys = Object.keys(argument);
  const isOption = (k: string) => (OPTION_KEYS as readonly string[]).includes(k);
  const isEvent = (k: string) => (CACHE_EVENT_NAMES as readonly string[]).includes(k);
  const unknown = keys.find((k) => !isOption(k) && !isEvent(k));
  if (unknown !== undefined) {
    throw new BadRequest(
      `ModelCache.new: unknown key "${unknown}" in the fourth argument; options are ${OPTION_KEYS.join(", ")}; ` +
        `listeners are ${CACHE_EVENT_NAMES.join(", ")}`,
      { details: { key: unknown } },
    );
  }
  const options = keys.filter(isOption);
  const events = keys.filter(isEvent);
  if (options.length > 0 && events.length > 0) {
    throw new BadRequest(
      `ModelCache.new: the fourth argument mixes options (${options.join(", ")}) and listeners (${events.join(", ")}); ` +
        "put the listeners under metrics",
    );
  }
  return events.length > 0 ? { metrics: argument as CacheMetrics } : (argument as ModelCacheOptions);
}

let sharedWorker: StateWorker | null = null;

/** One state worker per process: decoding and encoding the state file off the event loop (see state-worker.ts). */
function stateWorker(): StateWorker {
  sharedWorker ??= new StateWorker();
  return sharedWorker;
}

/** What a whole save or restore may take beyond `cache.state_timeout_seconds` (each call's bound). */
const SAVE_ROOM_MS = 5_000;

/** The cache dependencies `ModelCache.new` uses, from the options and the defaults. */
export function cacheDependencies(
  cacheConfig: CacheConfig,
  options: ModelCacheOptions = {},
  backendConfig?: BackendConfig,
): CacheDependencies {
  // `cache.state_timeout_seconds` bounds each file-system call of the state file.
  const callTimeoutMs = cacheConfig.state_timeout_seconds * 1000;
  const store =
    options.store !== undefined
      ? options.store
      : cacheConfig.persist_cache
        ? new FileStateStore(cacheConfig.cache_dir, { codec: stateWorker(), fsTimeoutMs: callTimeoutMs })
        : null;
  return {
    backends: options.backends ?? createBackends(backendConfig),
    ownsBackends: options.backends === undefined,
    store,
    logger: options.logger,
    clock: options.clock,
    systemMemoryBytes: options.systemMemoryBytes ?? totalmem(),
    metrics: options.metrics,
    // A whole save or restore: its calls' bound and some room, so a stuck call is the one named.
    storeTimeoutMs: callTimeoutMs + SAVE_ROOM_MS,
  };
}

export type ModelCache = CacheCore;

export const ModelCache = {
  /**
   * Builds a cache with the real backends and the state file (see the module comment); restores the saved state and
   * starts warm-up. `options.metrics` receives every event from the restore on, e.g.
   * `ModelCache.new(c.cache, c.backend, manager, { metrics: { load: (e) => histogram.observe(e.durationMs) } })`;
   * the listener object may also be given directly as the fourth argument (`ModelCache.new(c.cache, c.backend, manager,
   * { load, evict })`). Unknown keys are refused (see `cacheOptionsOf`).
   */
  async new(
    cacheConfig: CacheConfig,
    backendConfig: BackendConfig,
    models: ModelSource,
    options?: ModelCacheOptions | CacheMetrics,
  ): Promise<ModelCache> {
    const deps = cacheDependencies(cacheConfig, cacheOptionsOf(options), backendConfig);
    return CacheCore.create(cacheConfig, backendConfig, models, deps);
  },
  /** The core factory with every dependency given explicitly. */
  create(
    cacheConfig: CacheConfig,
    backendConfig: BackendConfig,
    models: ModelSource,
    deps: CacheDependencies,
  ): Promise<ModelCache> {
    return CacheCore.create(cacheConfig, backendConfig, models, deps);
  },
  [Symbol.hasInstance](value: unknown): boolean {
    return value instanceof CacheCore;
  },
};
