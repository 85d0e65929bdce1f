/**
 * The CLI's file mode: `inferno cache …` without a running server works on `<cache_dir>/cache_state.bin.zst`. Nothing
 * is loaded here, so every operation is about the saved statistics: read them, reset them, drop entries so a server
 * will not warm them, or show the warm-up plan a server would follow.
 */
import { totalmem } from "node:os";
import { resolve as resolvePath } from "node:path";
import { FileStateStore } from "../cache/persistence/file-store.js";
import { mergeRequestLogs } from "../cache/persistence/merge.js";
import type { AdviceReport } from "../cache/sim/advise.js";
import { Pins } from "../cache/limits.js";
import type { CacheState, PersistedModel } from "../cache/persistence/types.js";
import { warmupLimits } from "../cache/policy/warmup.js";
import { emptyCounters, memoryLimitBytes, statsFromState, warmupHistoryOf } from "../cache/state-view.js";
import { planWarmupFrom, warmupCandidates } from "../cache/warmup.js";
import type { CacheStats, WarmupStrategy } from "../cache/types.js";
import type { InfernoConfig } from "../config/schema.js";
import { ModelAmbiguous, ModelNotFound, ModelPinned } from "../errors/index.js";
import { ModelManager } from "../models/manager.js";
import { matchSaved } from "../models/name-index.js";
import type { StoreEnvironment } from "../models/stores/index.js";
import { type ModelDescriptor, sameFileVersion } from "../models/types.js";
import { adviseOn } from "./advice.js";

/** Whether the file there now differs from the version a saved model's statistics describe (false when it is gone). */
function fileChanged(saved: PersistedModel, file: ModelDescriptor | undefined): boolean {
  return file !== undefined && !sameFileVersion(saved.fingerprint, file.fingerprint);
}

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
    this.store = new FileStateStore(config.cache.cache_dir, { fsTimeoutMs: config.cache.state_timeout_seconds * 1000 });
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

  /** SPEC.md's statistics as a stopped cache has them: nothing loaded. Pins resolve exactly as a server's do. */
  async stats(): Promise<CacheStats> {
    const { state, bytes } = await this.inspect();
    const pins = await this.pins(state);
    return statsFromState(state, {
      now: this.now(),
      config: this.config.cache,
      systemMemoryBytes: this.systemMemoryBytes,
      stateFile: this.path,
      fileBytes: bytes,
      isPinned: (m) => pins.has(m.key),
    });
  }

  private manager(): ModelManager {
    return ModelManager.fromConfig(this.config, this.environment);
  }

  /** The configured pins as keys (cache/limits.ts: the live cache's own rule), saved entries standing in for missing files. */
  private async pins(state: CacheState | null): Promise<Pins> {
    const manager = this.manager();
    return Pins.resolve(this.config.cache, (name) => manager.resolve(name), state?.models ?? []);
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
    const pins = await this.pins((await this.inspect()).state);
    const key = options.model === undefined ? null : await this.keyOf(options.model);
    return this.store.update((current) => {
      const state = current ?? emptyState(this.now());
      let targets = state.models;
      if (options.model !== undefined) {
        const model = this.find(state, options.model, key);
        this.assertUnpinnedOrForced(pins, model, options.force);
        targets = [model];
      } else if (!options.force) {
        targets = targets.filter((m) => !pins.has(m.key));
      }
      const removed = new Set(targets.map((m) => m.key));
      const next: CacheState = {
        saved_at: this.now(),
        counters: options.stats ? emptyState(0).counters : state.counters,
        models: state.models.filter((m) => !removed.has(m.key)),
      };
      // The removed models' requests go with their statistics; resetting every statistic empties the log.
      const log =
        options.stats && options.model === undefined
          ? undefined
          : mergeRequestLogs(state.request_log, null, Infinity, removed);
      if (log) next.request_log = log;
      return { state: next, result: { removed: targets.map((m) => m.name), statisticsReset: options.stats === true } };
    });
  }

  /** Removes one model's entry (its statistics) so a starting server does not warm it. A pinned model needs `force`. */
  async evict(name: string, options: { force?: boolean } = {}): Promise<string> {
    const pins = await this.pins((await this.inspect()).state);
    const key = await this.keyOf(name);
    return this.store.update((current) => {
      const state = current ?? emptyState(this.now());
      const model = this.find(state, name, key);
      this.assertUnpinnedOrForced(pins, model, options.force);
      const next: CacheState = {
        saved_at: this.now(),
        counters: state.counters,
        models: state.models.filter((m) => m.key !== model.key),
      };
      const log = mergeRequestLogs(state.request_log, null, Infinity, new Set([model.key]));
      if (log) next.request_log = log;
      return { state: next, result: model.name };
    });
  }

  private assertUnpinnedOrForced(pins: Pins, model: PersistedModel, force: boolean | undefined): void {
    if (pins.has(model.key) && !force) {
      throw new ModelPinned(`${model.name} is pinned (always_warm or pinned = true); use --force to remove it`, {
        details: { model: model.name },
      });
    }
  }

  /** What other cache settings would have done with the saved request log (cache/sim/advise.ts). */
  async advise(): Promise<AdviceReport> {
    const { state } = await this.inspect();
    return adviseOn({ state, config: this.config.cache, systemMemoryBytes: this.systemMemoryBytes });
  }

  /** The plan a starting server would follow (given models in order, or ranked by a strategy). Loads nothing. */
  async warmupPlan(options: { models?: string[]; strategy?: WarmupStrategy } = {}): Promise<WarmupPlanReport> {
    const { state } = await this.inspect();
    const manager = this.manager();
    if (options.models) {
      const plan: string[] = [];
      const skipped: WarmupPlanReport["skipped"] = [];
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
    const saved = state?.models ?? [];
    const byKey = await warmupCandidates(manager, saved).catch(() => new Map<string, ModelDescriptor>());
    const descriptors = [...byKey.values()];
    const pins = await this.pins(state);
    const now = this.now();
    const limit = memoryLimitBytes(this.config.cache, this.systemMemoryBytes);
    const room = limit > 0 ? limit : Infinity;
    const ranked = await planWarmupFrom(
      {
        history: saved.map((m) => warmupHistoryOf(m, now, this.config.cache.usage_half_life_hours)),
        pinned: pins.alwaysWarm,
        files: new Map(descriptors.map((d) => [d.key, d.name])),
        // Nothing is loaded here: a file that differs from the version the statistics describe is what changed.
        changed: new Set(saved.filter((m) => fileChanged(m, byKey.get(m.key))).map((m) => m.key)),
        resident: new Set(),
      },
      strategy,
      warmupLimits(this.config.cache, now, limit),
      // Auto `parallel` estimated with the sequences that fit the limit, as a server's load would take them.
      (key) => manager.estimateMemory(byKey.get(key) as ModelDescriptor, this.config.backend, room).catch(() => 0),
    );
    return { strategy, plan: ranked.plan.map((c) => c.name), skipped: ranked.skipped };
  }

  /** The key a name resolves to, as a server would resolve it (null when no file answers to it now). */
  private async keyOf(name: string): Promise<string | null> {
    return this.manager()
      .resolve(name)
      .then((d) => d.key)
      .catch(() => null);
  }

  /**
   * A saved model by the key the name resolves to now, else as the model manager would match it among the saved models
   * (`matchSaved`: key, path, path without extension, file name, stem — the names `/v1/models` lists), else by its path
   * relative to the models directory.
   */
  private find(state: CacheState, name: string, resolvedKey: string | null): PersistedModel {
    const byKey = state.models.find((m) => m.key === resolvedKey);
    if (byKey) return byKey;
    const matches = matchSaved(name, state.models);
    if (matches.length > 1) {
      const names = matches.map((m) => m.name);
      throw new ModelAmbiguous(
        `model name "${name}" is ambiguous in the cache state: it matches ${names.join(", ")}; use one of these names`,
        { details: { name, candidates: names } },
      );
    }
    const asPath = resolvePath(this.config.models_dir, name);
    const model = matches[0] ?? state.models.find((m) => m.key === asPath);
    if (!model) {
      throw new ModelNotFound(`the cache state ${this.path} has no entry for ${JSON.stringify(name)}`, {
        details: { name, entries: state.models.map((m) => m.name) },
      });
    }
    return model;
  }
}
