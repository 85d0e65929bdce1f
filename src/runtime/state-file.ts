/**
 * The CLI's file mode: `inferno cache …` without a running server works on `<cache_dir>/cache_state.bin.zst`. Nothing
 * is loaded here, so every operation is about the saved statistics: read them, reset them, drop entries so a server
 * will not warm them, or show the warm-up plan a server would follow.
 */
import { totalmem } from "node:os";
import { resolve as resolvePath } from "node:path";
import { FileStateStore } from "../cache/persistence/file-store.js";
import type { CacheState, PersistedModel } from "../cache/persistence/types.js";
import { planWarmup } from "../cache/policy/warmup.js";
import { emptyCounters, memoryLimitBytes, statsFromState, warmupCandidateOf } from "../cache/state-view.js";
import type { CacheStats, WarmupStrategy } from "../cache/types.js";
import type { InfernoConfig } from "../config/schema.js";
import { ModelNotFound, ModelPinned } from "../errors/index.js";
import { ModelManager } from "../models/manager.js";
import type { StoreEnvironment } from "../models/stores/index.js";
import type { ModelDescriptor } from "../models/types.js";

export interface StateFileOptions {
  /** Wall clock (ms). Default `Date.now`. */
  now?: () => number;
  /** For `max_memory_mb = 0`. Default `os.totalmem()`. */
  systemMemoryBytes?: number;
  /** Where `model_stores` are looked for (variables, home). Default: this process's. */
  environment?: StoreEnvironment;
}

export interface WarmupPlanReport {
  strategy: WarmupStrategy | "given";
  /** Models a starting server would load, in order. */
  plan: string[];
  skipped: Array<{ name: string; reason: string }>;
}

export interface ClearReport {
  removed: string[];
  statisticsReset: boolean;
}

function emptyState(now: number): CacheState {
  return {
    saved_at: now,
    counters: emptyCounters(),
    models: [],
  };
}

export class StateFile {
  readonly store: FileStateStore;
  private readonly now: () => number;
  private readonly systemMemoryBytes: number;
  private readonly environment: StoreEnvironment | undefined;

  constructor(
    private readonly config: InfernoConfig,
    options: StateFileOptions = {},
  ) {
    this.store = new FileStateStore(config.cache.cache_dir);
    this.now = options.now ?? Date.now;
    this.systemMemoryBytes = options.systemMemoryBytes ?? totalmem();
    this.environment = options.environment;
  }

  get path(): string {
    return this.store.path;
  }

  /** The decoded state (null when there is no file). */
  async inspect(): Promise<{ state: CacheState | null; bytes: number | null }> {
    const read = await this.store.read();
    return { state: read?.state ?? null, bytes: read?.bytes ?? null };
  }

  /** SPEC.md's statistics as a stopped cache has them: nothing loaded. */
  async stats(): Promise<CacheStats> {
    const { state, bytes } = await this.inspect();
    return statsFromState(state, {
      now: this.now(),
      config: this.config.cache,
      systemMemoryBytes: this.systemMemoryBytes,
      stateFile: this.path,
      fileBytes: bytes,
      isPinned: (m) => this.alwaysWarmIndex(m) !== null,
    });
  }

  /** Rewrites the file in the current schema version (older versions are migrated). Returns its size. */
  async save(): Promise<{ models: number; bytes: number }> {
    const models = await this.store.update((state) => {
      const next = { ...(state ?? emptyState(this.now())), saved_at: this.now() };
      return { state: next, result: next.models.length };
    });
    return { models, bytes: (await this.store.read())?.bytes ?? 0 };
  }

  /**
   * Removes model entries so a server does not warm them: all (pinned ones only with `force`), or the one named.
   * `stats` also resets the cache counters.
   */
  async clear(options: { model?: string; force?: boolean; stats?: boolean } = {}): Promise<ClearReport> {
    return this.store.update((current) => {
      const state = current ?? emptyState(this.now());
      let targets = state.models;
      if (options.model !== undefined) {
        const model = this.find(state, options.model);
        if (this.alwaysWarmIndex(model) !== null && !options.force) {
          throw new ModelPinned(`${model.name} is pinned (always_warm or pinned = true); use --force to clear it`, {
            details: { model: model.name },
          });
        }
        targets = [model];
      } else if (!options.force) {
        targets = targets.filter((m) => this.alwaysWarmIndex(m) === null);
      }
      const removed = new Set(targets.map((m) => m.key));
      const next: CacheState = {
        saved_at: this.now(),
        counters: options.stats ? emptyState(0).counters : state.counters,
        models: state.models.filter((m) => !removed.has(m.key)),
      };
      return { state: next, result: { removed: targets.map((m) => m.name), statisticsReset: options.stats === true } };
    });
  }

  /** Removes one model's entry (its statistics) so a starting server does not warm it. */
  async evict(name: string): Promise<string> {
    return this.store.update((current) => {
      const state = current ?? emptyState(this.now());
      const model = this.find(state, name);
      return {
        state: { ...state, saved_at: this.now(), models: state.models.filter((m) => m.key !== model.key) },
        result: model.name,
      };
    });
  }

  /** The plan a starting server would follow (given models in order, or ranked by a strategy). Loads nothing. */
  async warmupPlan(options: { models?: string[]; strategy?: WarmupStrategy } = {}): Promise<WarmupPlanReport> {
    const { state } = await this.inspect();
    const manager = ModelManager.fromConfig(this.config, this.environment);
    const skipped: WarmupPlanReport["skipped"] = [];
    if (options.models) {
      const plan: string[] = [];
      for (const name of options.models) {
        try {
          plan.push((await manager.resolve(name)).name);
        } catch (error) {
          skipped.push({ name, reason: (error as Error).message });
        }
      }
      return { strategy: "given", plan, skipped };
    }
    const strategy = options.strategy ?? this.config.cache.warmup_strategy;
    const descriptors = await manager.list().catch(() => [] as ModelDescriptor[]);
    const byKey = new Map(descriptors.map((d) => [d.key, d]));
    const saved = new Map((state?.models ?? []).map((m) => [m.key, m]));
    const pinnedKeys = await this.pinnedKeys(manager);
    const candidates = [];
    for (const key of new Set([...saved.keys(), ...pinnedKeys.keys()])) {
      const descriptor = byKey.get(key);
      const model = saved.get(key) ?? null;
      if (!descriptor) {
        skipped.push({ name: model?.name ?? key, reason: "model file not found" });
        continue;
      }
      const changed = model !== null && (model.fingerprint.size !== descriptor.fingerprint.size || model.fingerprint.mtimeMs !== descriptor.fingerprint.mtimeMs);
      candidates.push(
        warmupCandidateOf(descriptor, model, {
          now: this.now(),
          halfLifeHours: this.config.cache.usage_half_life_hours,
          alwaysWarmIndex: pinnedKeys.get(key) ?? null,
          estimateBytes: model?.metadata.memory_bytes ?? (await manager.estimateMemory(descriptor, this.config.backend).catch(() => 0)),
          fileChanged: changed,
        }),
      );
    }
    const ranked = planWarmup(candidates, strategy, {
      now: this.now(),
      maxModels: this.config.cache.max_cached_models,
      memoryLimitBytes: memoryLimitBytes(this.config.cache, this.systemMemoryBytes),
      restoreWindowMs: this.config.cache.restore_window_hours * 3600_000,
      residentCount: 0,
      residentBytes: 0,
    });
    return { strategy, plan: ranked.plan.map((c) => c.name), skipped: [...skipped, ...ranked.skipped] };
  }

  /** A saved model by name, key, or path relative to the models directory. */
  private find(state: CacheState, name: string): PersistedModel {
    const asPath = resolvePath(this.config.models_dir, name);
    const model = state.models.find((m) => m.name === name || m.key === name || m.key === asPath);
    if (!model) {
      throw new ModelNotFound(`the cache state ${this.path} has no entry for ${JSON.stringify(name)}`, {
        details: { name, entries: state.models.map((m) => m.name) },
      });
    }
    return model;
  }

  /** Position in `always_warm` of a saved model (by name or path), Infinity for `pinned = true`, or null. */
  private alwaysWarmIndex(model: Pick<PersistedModel, "name" | "key">): number | null {
    const matches = (name: string) => name === model.name || resolvePath(this.config.models_dir, name) === model.key;
    const index = this.config.cache.always_warm.findIndex(matches);
    if (index >= 0) return index;
    const pinned = Object.entries(this.config.cache.models).some(([name, o]) => o.pinned === true && matches(name));
    return pinned ? Infinity : null;
  }

  private async pinnedKeys(manager: ModelManager): Promise<Map<string, number>> {
    const keys = new Map<string, number>();
    const named = [
      ...this.config.cache.always_warm.map((name, index) => ({ name, index })),
      ...Object.entries(this.config.cache.models)
        .filter(([, o]) => o.pinned === true)
        .map(([name]) => ({ name, index: Infinity })),
    ];
    for (const { name, index } of named) {
      const descriptor = await manager.resolve(name).catch(() => null);
      if (descriptor && !keys.has(descriptor.key)) keys.set(descriptor.key, index);
    }
    return keys;
  }
}
