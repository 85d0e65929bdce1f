/**
 * Warm-up: which models to load before anyone asks (the saved usage ranked by a strategy, `always_warm` first, within
 * the limits — policy/warmup.ts), loading them `warmup_concurrency` at a time without ever evicting, then warming each
 * (`TextModel.warm`: the first generations' one-time costs), and the start-up warm-up's progress for `/health` and
 * `/ready`. It reads the entries through the entry table's `EntryView` and acts only through `WarmupHost`'s two
 * operations, never the cache.
 */
import type { LoadedModel } from "../backends/types.js";
import type { BackendConfig, CacheConfig } from "../config/schema.js";
import { CacheBusy, Disposed, messageOf } from "../errors/index.js";
import { abortable, type EntryView } from "./entry-table.js";
import type { Bytes, ModelDescriptor, ModelSource } from "../models/types.js";
import type { MemoryLedger } from "./limits.js";
import type { ClockReader } from "./clock.js";
import type { CacheEventSource } from "./events.js";
import {
  type WarmupInputs,
  type WarmupLimits,
  type WarmupPlan,
  unmeasured,
  warmupLimits,
  warmupPlan,
} from "./policy/warmup.js";
import { warmupHistoryOf } from "./state-view.js";
import {
  type CacheLogger,
  type WarmupProgress,
  type WarmupResult,
  type WarmupStrategy,
  warmupFailure,
} from "./types.js";
import type { UsageBook } from "./usage.js";

/**
 * The warm-up plan (policy/warmup.ts) with the models never measured estimated first (`estimate`, one at a time): what
 * the live cache and the CLI's file mode both plan with.
 */
export async function planWarmupFrom(
  inputs: Omit<WarmupInputs, "estimates">,
  strategy: WarmupStrategy,
  limits: WarmupLimits,
  estimate: (key: string) => Promise<Bytes>,
): Promise<WarmupPlan> {
  const estimates = new Map<string, Bytes>();
  for (const key of unmeasured(inputs)) estimates.set(key, await estimate(key));
  return warmupPlan({ ...inputs, estimates }, strategy, limits);
}

/**
 * The models a warm-up may load, by key: every model the source lists, and the variants with saved statistics (a
 * preset, or a request's `num_ctx`: the file's key with a `#…` suffix), which no listing holds. A variant is resolved
 * by its saved name (`tiny#ctx=4096` names itself) and kept when that still leads to the same key.
 */
export async function warmupCandidates(
  models: Pick<ModelSource, "list" | "resolve">,
  saved: Iterable<{ key: string; name: string }>,
): Promise<Map<string, ModelDescriptor>> {
  const descriptors = new Map((await models.list()).map((d) => [d.key, d]));
  for (const { key, name } of saved) {
    if (descriptors.has(key) || !key.includes("#")) continue;
    const variant = await models.resolve(name).catch(() => null);
    if (variant?.key === key) descriptors.set(key, variant);
  }
  return descriptors;
}

/** What the warm-up does to the cache: load a model, and wait for the backends to settle. */
export interface WarmupHost {
  /**
   * Loads a model without counting a request and without evicting (throws `CacheBusy` when there is no room); resolves
   * with the loaded model, which the warm-up then warms (`warm`).
   */
  load(descriptor: ModelDescriptor, signal: AbortSignal): Promise<LoadedModel>;
  /**
   * Resolves once the backends' background starts (the spare host replacing the one a load took) are over: the
   * start-up warm-up ends only then, so the first requests after it do not share the CPU with a process start.
   */
  settle(): Promise<void>;
}

export interface WarmerOptions {
  config: Pick<
    CacheConfig,
    | "warmup_strategy"
    | "enable_warmup"
    | "warmup_concurrency"
    | "usage_half_life_hours"
    | "max_cached_models"
    | "restore_window_hours"
  >;
  backendConfig: BackendConfig;
  models: ModelSource;
  book: UsageBook;
  ledger: MemoryLedger;
  memoryLimit: Bytes;
  time: ClockReader;
  entries: EntryView;
  host: WarmupHost;
  events: CacheEventSource;
  logger: CacheLogger | undefined;
}

export class Warmer {
  /** Aborted when the cache closes: the load in flight is cancelled, the rest of the plan skipped. */
  readonly abort = new AbortController();
  private startup: { plan: ModelDescriptor[]; result: WarmupResult; skippedBefore: number } | null = null;

  constructor(private readonly o: WarmerOptions) {}

  /** Runs a warm-up now: given models, or ranked by a strategy (default: the configured one). */
  run(options: { models?: string[]; strategy?: WarmupStrategy } = {}): Promise<WarmupResult> {
    return this.runWith(options, false);
  }

  /** The start-up warm-up (strategy "none" when `enable_warmup` is off); never rejects. */
  async runAtStartup(): Promise<WarmupResult> {
    try {
      const strategy = this.o.config.enable_warmup ? this.o.config.warmup_strategy : "none";
      const result = await this.runWith({ strategy }, true);
      for (const failure of result.failed) this.o.logger?.warn("warm-up could not load a model", { ...failure });
      return result;
    } catch (error) {
      if (!(error instanceof Disposed)) this.o.logger?.warn("warm-up failed", { error: messageOf(error) });
      return { loaded: [], skipped: [], failed: [warmupFailure("*", error, messageOf(error))] };
    }
  }

  /**
   * The start-up warm-up as it goes: its plan (model names, in order) and how many of them are settled (loaded, skipped
   * or failed). Null until the plan is made; stays once warm-up is over.
   */
  progress(): WarmupProgress | null {
    if (!this.startup) return null;
    const { plan, result, skippedBefore } = this.startup;
    const settled = result.loaded.length + result.failed.length + result.skipped.length - skippedBefore;
    return { plan: plan.map((d) => d.name), settled: Math.min(settled, plan.length), loaded: [...result.loaded] };
  }

  /** The warm-up plan: which models, in which order, within the limits (nothing is loaded). */
  async plan(
    strategy: WarmupStrategy = this.o.config.warmup_strategy,
  ): Promise<{ plan: string[]; skipped: WarmupResult["skipped"] }> {
    const { plan, skipped } = await this.rank(strategy);
    return { plan: plan.map((d) => d.name), skipped };
  }

  private async runWith(
    options: { models?: string[]; strategy?: WarmupStrategy },
    startup: boolean,
  ): Promise<WarmupResult> {
    const result: WarmupResult = { loaded: [], skipped: [], failed: [] };
    let plan: ModelDescriptor[];
    if (options.models) {
      plan = [];
      for (const name of options.models) {
        try {
          plan.push(await this.o.models.resolve(name));
        } catch (error) {
          result.failed.push(warmupFailure(name, error, messageOf(error)));
        }
      }
    } else {
      const ranked = await this.rank(options.strategy ?? this.o.config.warmup_strategy);
      plan = ranked.plan;
      result.skipped.push(...ranked.skipped);
    }
    if (startup) this.startup = { plan, result, skippedBefore: result.skipped.length };
    const loaded = await this.load(plan, result);
    // At start-up the backends settle first (see `settleBackends`), so the models are warmed on a machine that runs
    // nothing else of Inferno's, and the last thing before `/ready` answers 200.
    if (startup) await abortable(this.o.host.settle(), this.abort.signal).catch(() => undefined);
    for (const model of loaded) await this.warm(model);
    this.o.events.emit("warmup", result);
    return result;
  }

  private async rank(strategy: WarmupStrategy): Promise<{ plan: ModelDescriptor[]; skipped: WarmupResult["skipped"] }> {
    const { models, book, config } = this.o;
    const { pins } = this.o.entries;
    const usages = [...book.values()];
    const descriptors = await warmupCandidates(models, usages);
    const now = this.o.time.now();
    const room = this.o.memoryLimit > 0 ? this.o.memoryLimit : Infinity;
    const ranked = await planWarmupFrom(
      {
        history: usages.map((u) =>
          warmupHistoryOf(book.persisted(u, now, pins.has(u.key)), now, config.usage_half_life_hours),
        ),
        pinned: pins.alwaysWarm,
        files: new Map([...descriptors.values()].map((d) => [d.key, d.name])),
        changed: new Set(usages.filter((u) => u.fileChanged).map((u) => u.key)),
        resident: new Set([...descriptors.keys()].filter((key) => this.o.entries.stateOf(key) !== undefined)),
      },
      strategy,
      warmupLimits(config, now, this.o.memoryLimit, this.o.ledger),
      // Auto `parallel` estimated with the sequences that fit the limit, as the load will take them.
      (key) => models.estimateMemory(descriptors.get(key) as ModelDescriptor, this.o.backendConfig, room),
    );
    return { plan: ranked.plan.map((c) => descriptors.get(c.key) as ModelDescriptor), skipped: ranked.skipped };
  }

  /**
   * Loads the plan, `warmup_concurrency` at a time, in order; resolves with the models it loaded. Loading or loaded
   * models are no-ops.
   */
  private async load(plan: ModelDescriptor[], result: WarmupResult): Promise<LoadedModel[]> {
    const loaded: LoadedModel[] = [];
    let next = 0;
    const worker = async () => {
      while (next < plan.length && !this.abort.signal.aborted && !this.o.entries.closing) {
        const descriptor = plan[next++] as ModelDescriptor;
        const model = await this.loadOne(descriptor, result);
        if (model) loaded.push(model);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.o.config.warmup_concurrency, plan.length) }, worker));
    return loaded;
  }

  /**
   * Warms a model the warm-up loaded (its first generations' one-time costs paid now, not by the first request: see
   * `TextModel.warm`), so `/ready` answers 200 only once they are paid. Best effort: a model that cannot be warmed
   * (unloaded meanwhile, its host crashed) still counts as loaded — the request that needs it will say what is wrong.
   */
  private async warm(model: LoadedModel): Promise<void> {
    if (model.kind !== "text" || !model.warm || model.disposed || this.abort.signal.aborted) return;
    try {
      await model.warm(this.abort.signal);
    } catch (error) {
      if (!this.abort.signal.aborted && !(error instanceof Disposed))
        this.o.logger?.warn("warm-up could not warm a model", {
          model: model.descriptor.name,
          error: messageOf(error),
        });
    }
  }

  private async loadOne(descriptor: ModelDescriptor, result: WarmupResult): Promise<LoadedModel | null> {
    const { name, key } = descriptor;
    const state = this.o.entries.stateOf(key);
    if (state !== undefined) {
      result.skipped.push({ name, reason: state === "ready" ? "already loaded" : "already loading" });
      return null;
    }
    try {
      const model = await this.o.host.load(descriptor, this.abort.signal);
      result.loaded.push(name);
      this.o.book.recordWarmup();
      return model;
    } catch (error) {
      if (error instanceof CacheBusy) result.skipped.push({ name, reason: "no room without evicting another model" });
      else if (this.abort.signal.aborted) result.skipped.push({ name, reason: "the cache is closing" });
      else result.failed.push(warmupFailure(name, error, messageOf(error)));
      return null;
    }
  }
}
