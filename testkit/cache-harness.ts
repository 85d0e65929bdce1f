/** Builds a ModelCache on the fake backend, an in-memory model source and a manual clock, for scenario tests. */
import { FakeBackend, type FakeModelBehaviour } from "../src/backends/fake.js";
import type { BackendRegistry } from "../src/backends/types.js";
import { ManualClock } from "../src/cache/clock.js";
import { type CacheLogger, ModelCache } from "../src/cache/model-cache.js";
import { decodeState, encodeState } from "../src/cache/persistence/codec.js";
import { mergeDelta } from "../src/cache/persistence/merge.js";
import type { CacheState, RestoreResult, StateDelta, StateStore } from "../src/cache/persistence/types.js";
import type { CacheMetrics } from "../src/cache/events.js";
import type { CacheEvents } from "../src/cache/types.js";
import { backendSchema, type CacheConfig, cacheSchema } from "../src/config/schema.js";
import { FakeModelSource, type FakeModelSpec } from "./fake-models.js";

import { MIB } from "../src/units.js";

export { MIB };

/** The names of the models the cache holds loaded, in its order. */
export function loadedNames(cache: ModelCache): string[] {
  return cache.loadedModels().map((m) => m.name);
}

/** Two models estimated at 40 MiB each, of which b.gguf measures 80 MiB once loaded (more than its estimate). */
export const B_GROWS_ON_LOAD = {
  models: [
    { name: "a.gguf", estimateBytes: 40 * MIB },
    { name: "b.gguf", estimateBytes: 40 * MIB },
  ],
  behaviours: { "a.gguf": { memoryBytes: 40 * MIB }, "b.gguf": { memoryBytes: 80 * MIB } },
} satisfies HarnessOptions;

/**
 * A state store in memory that goes through the real codec and the real merge ("merge my delta"), and remembers when it
 * was used. Two caches given one store share it like two processes sharing a `cache_dir`.
 */
export class MemoryStateStore implements StateStore {
  readonly path = "memory:cache_state";
  bytes: Uint8Array | null = null;
  saves = 0;
  loads = 0;
  failSaves = false;
  constructor(state?: CacheState) {
    if (state) this.bytes = encodeState(state);
  }
  async load(): Promise<RestoreResult> {
    this.loads++;
    return { state: this.bytes ? decodeState(this.bytes) : null, warning: null };
  }
  async save(delta: StateDelta): Promise<{ bytes: number }> {
    if (this.failSaves) throw new Error("disk full");
    this.saves++;
    this.bytes = encodeState(mergeDelta(this.state, delta));
    return { bytes: this.bytes.length };
  }
  get state(): CacheState | null {
    return this.bytes ? decodeState(this.bytes) : null;
  }
}

export class RecordingLogger implements CacheLogger {
  readonly warnings: string[] = [];
  readonly infos: string[] = [];
  info(msg: string): void {
    this.infos.push(msg);
  }
  warn(msg: string): void {
    this.warnings.push(msg);
  }
}

export interface HarnessOptions {
  models?: Array<FakeModelSpec | string>;
  behaviours?: Record<string, FakeModelBehaviour>;
  defaults?: FakeModelBehaviour;
  cache?: Partial<Omit<CacheConfig, "cache_dir">>;
  store?: StateStore | null;
  busyWaitMs?: number;
  clock?: ManualClock;
  source?: FakeModelSource;
  /** Backends for other formats beside the fake GGUF one (an ONNX fake, say). */
  backends?: Omit<BackendRegistry, "gguf">;
  metrics?: CacheMetrics;
  storeTimeoutMs?: number;
}

export interface Harness {
  cache: ModelCache;
  clock: ManualClock;
  backend: FakeBackend;
  source: FakeModelSource;
  logger: RecordingLogger;
  events: Array<{ event: keyof CacheEvents; payload: unknown }>;
}

export function cacheConfig(overrides: HarnessOptions["cache"] = {}): CacheConfig {
  return { ...cacheSchema.parse({ enable_warmup: false, ...overrides }), cache_dir: "/nonexistent" };
}

export async function harness(options: HarnessOptions = {}): Promise<Harness> {
  const clock = options.clock ?? new ManualClock();
  const source = options.source ?? new FakeModelSource(options.models ?? ["a.gguf", "b.gguf", "c.gguf", "d.gguf"]);
  const backend = new FakeBackend({
    timers: clock,
    models: options.behaviours ?? {},
    defaults: options.defaults ?? { loadMs: 100 },
  });
  const logger = new RecordingLogger();
  const cache = await ModelCache.create(cacheConfig(options.cache), backendSchema.parse({}), source, {
    backends: { gguf: backend, ...options.backends },
    clock,
    logger,
    store: options.store ?? null,
    busyWaitMs: options.busyWaitMs ?? 10_000,
    metrics: options.metrics,
    storeTimeoutMs: options.storeTimeoutMs,
  });
  const events: Harness["events"] = [];
  cache.onAny(({ type, ...payload }) => {
    // Load progress is noise for scenario tests; the load itself is recorded.
    if (type !== "loading") events.push({ event: type, payload });
  });
  return { cache, clock, backend, source, logger, events };
}
